"""``tune train`` on synthetic data: the retrain uses the whole training set, tests once, and
registers a model whose logged test accuracy is what the saved model scores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import keras
import numpy as np
import pytest
from conftest import ROOT, tiny_space
from mlflow.tracking import MlflowClient

from tune.commands.train import train_config
from tune.contract import OBJECTIVE, TEST_ACCURACY
from tune.data.sources import load_dataset
from tune.engine.space import Origin, SearchSpace, dump_space
from tune.errors import SpaceError
from tune.paths import mlflow_database
from tune.tracking.tracker import REGIME_TAG, ROLE_TAG, SOURCE_TRIAL_TAG

SOURCE = "synthetic:400"
ORIGIN = Origin(study="proof", trial=4, rank=1, objective=1.0, regime="balanced", reason="scripted")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("train")
    space = SearchSpace.model_validate(tiny_space(
        data={"source": SOURCE, "validation_size": 100, "train_subset": 150, "clean_train_size": 100},
        training={"epochs": 2},
    ))
    fixed = space.with_fixed({"l2_conv": 0.0, "l2_dense": 0.001, "dropout": 0.25}, study_name="proof-best", origin=ORIGIN)
    config = root / "best.yaml"
    config.write_text(dump_space(fixed))
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", str(root / "mlruns"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        retrains = train_config(config, data=None, seeds=2, epochs=None, tracking_uri=None, echo=lines.append)
        yield {"retrains": retrains, "lines": lines, "root": root,
               "client": MlflowClient(f"sqlite:///{mlflow_database().resolve()}")}


def test_the_retrain_uses_the_whole_training_set_not_the_tuning_subset(trained: dict) -> None:
    assert trained["lines"][0] == "proof: retraining on 300 training images, 100 held out, then testing once on 80"


def test_each_seed_registers_a_version_whose_test_accuracy_is_the_saved_models(trained: dict) -> None:
    client, retrains = trained["client"], trained["retrains"]
    versions = sorted(client.search_model_versions("name='proof'"), key=lambda v: int(v.version))
    assert [int(v.version) for v in versions] == [r.version for r in retrains] == [1, 2]
    test = load_dataset(SOURCE)
    for version, retrain in zip(versions, retrains):
        run = client.get_run(version.run_id)
        assert version.run_id == retrain.run_id and run.info.status == "FINISHED"
        logged = run.data.metrics[TEST_ACCURACY]
        assert float(version.tags[TEST_ACCURACY]) == pytest.approx(logged, abs=1e-6)
        (saved,) = Path(urlparse(version.source).path).glob("*.keras")
        model = keras.saving.load_model(saved, safe_mode=True)
        predicted = model.predict(test.x_test, verbose=0).argmax(axis=1)
        assert float(np.mean(predicted == test.y_test)) == pytest.approx(logged, abs=1e-6)


def test_the_run_is_traced_to_its_trial_with_curves_and_a_diagnosis(trained: dict) -> None:
    client = trained["client"]
    for retrain in trained["retrains"]:
        run = client.get_run(retrain.run_id)
        assert run.data.tags[ROLE_TAG] == "retrain" and run.data.tags[SOURCE_TRIAL_TAG] == "4"
        assert run.data.tags[REGIME_TAG] == retrain.diagnosis.regime
        assert len(client.get_metric_history(retrain.run_id, OBJECTIVE)) == retrain.tested.training.epochs_run == 2
        assert run.data.params["l2_dense"] == "0.001" and run.data.params["data.source"] == SOURCE
    accuracies = [r.tested.test_accuracy for r in trained["retrains"]]
    assert trained["lines"][-1] == f"test accuracy {np.mean(accuracies):.4f} ± {np.std(accuracies, ddof=1):.4f} (std over 2 seeds)"


def test_a_config_that_still_searches_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="searches \\['dropout', 'l2_conv', 'l2_dense'\\]; tune train takes a fixed config"):
        train_config(ROOT / "search_spaces" / "quick.yaml", data=SOURCE, seeds=1, epochs=1, tracking_uri=None)
