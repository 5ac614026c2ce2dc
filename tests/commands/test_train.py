"""``tune train`` on synthetic data: the retrain uses the whole training set, tests once, and
registers a model whose logged test accuracy is what the saved model scores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.support.paths import ROOT
from tests.support.scripted import ScriptedTrainer, describe_scripted
from tests.support.spaces import tiny_space, write_space
from tune.commands.compare import compare_study
from tune.commands.run import RunOverrides, run_study
from tune.commands.train import train_config
from tune.contract import DEFAULT_OBJECTIVE, TEST_ACCURACY
from tune.data.sources import load_dataset
from tune.engine.config import Origin, SearchSpace, dump_space
from tune.errors import SpaceError
from tune.paths import mlflow_database
from tune.tracking.tracker import REGIME_TAG, ROLE_TAG, SOURCE_TRIAL_TAG

pytestmark = pytest.mark.integration

SOURCE = "synthetic:400"
ORIGIN = Origin(study="proof", trial=4, rank=1, objective=1.0, regime="balanced", reason="scripted")


def write_config(path: Path, epochs: int) -> Path:
    space = SearchSpace.model_validate(
        tiny_space(
            data={
                "source": SOURCE,
                "validation_size": 100,
                "train_subset": 150,
                "clean_train_size": 100,
            },
            training={"epochs": epochs},
        )
    )
    fixed = space.with_fixed(
        {"l2_conv": 0.0, "l2_dense": 0.001, "dropout": 0.25}, study_name="proof-best", origin=ORIGIN
    )
    path.write_text(dump_space(fixed))
    return path


def saved_model_accuracy(version_source: str) -> float:
    """A fresh, safe-mode load of the registered model, scored on the test set."""
    (saved,) = Path(urlparse(version_source).path).glob("*.keras")
    test = load_dataset(SOURCE)
    predicted = (
        keras.saving.load_model(saved, safe_mode=True)
        .predict(test.x_test, verbose=0)
        .argmax(axis=1)
    )
    return float(np.mean(predicted == test.y_test))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("train")
    config = write_config(root / "best.yaml", epochs=2)
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", str(root / "mlruns"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        retrains = train_config(
            config,
            data=None,
            seeds=2,
            epochs=None,
            full=False,
            tracking_uri=None,
            echo=lines.append,
        )
        yield {"retrains": retrains, "lines": lines, "root": root,
               "client": MlflowClient(f"sqlite:///{mlflow_database().resolve()}")}


def test_the_retrain_uses_the_whole_training_set_not_the_tuning_subset(trained: dict) -> None:
    assert (
        trained["lines"][0]
        == "retraining on 300 training images, 100 held out, then testing once on 80"
    )


def test_each_seed_registers_a_version_whose_test_accuracy_is_the_saved_models(
    trained: dict,
) -> None:
    client, retrains = trained["client"], trained["retrains"]
    versions = sorted(client.search_model_versions("name='proof'"), key=lambda v: int(v.version))
    assert [int(v.version) for v in versions] == [r.version for r in retrains] == [1, 2]
    for version, retrain in zip(versions, retrains):
        run = client.get_run(version.run_id)
        assert version.run_id == retrain.run_id and run.info.status == "FINISHED"
        logged = run.data.metrics[TEST_ACCURACY]
        assert float(version.tags[TEST_ACCURACY]) == pytest.approx(logged, abs=1e-6)
        assert saved_model_accuracy(version.source) == pytest.approx(logged, abs=1e-6)


def test_the_run_is_traced_to_its_trial_with_curves_and_a_diagnosis(trained: dict) -> None:
    client = trained["client"]
    for retrain in trained["retrains"]:
        run = client.get_run(retrain.run_id)
        assert run.data.tags[ROLE_TAG] == "retrain" and run.data.tags[SOURCE_TRIAL_TAG] == "4"
        assert run.data.tags[REGIME_TAG] == retrain.diagnosis.regime
        assert (
            len(client.get_metric_history(retrain.run_id, DEFAULT_OBJECTIVE.metric))
            == retrain.tested_epochs
            == 2
        )
        assert run.data.params["l2_dense"] == "0.001" and run.data.params["data.source"] == SOURCE
    accuracies = [r.test_accuracy for r in trained["retrains"]]
    mean, spread = np.mean(accuracies), np.std(accuracies, ddof=1)
    assert trained["lines"][-1] == f"test accuracy {mean:.4f} ± {spread:.4f} (std over 2 seeds)"


def test_a_config_that_still_searches_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SpaceError,
        match="searches \\['dropout', 'l2_conv', 'l2_dense'\\]; tune train takes a fixed config",
    ):
        train_config(
            ROOT / "search_spaces" / "quick.yaml",
            data=SOURCE,
            seeds=1,
            epochs=1,
            full=False,
            tracking_uri=None,
        )


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A scripted study (no real training), then the real comparison of its best config."""
    root = tmp_path_factory.mktemp("compare")
    space = write_space(
        root / "space.yaml",
        tiny_space(
            study={"name": "duel", "trials": 3, "pruner": {"type": "none"}},
            data={"source": SOURCE, "validation_size": 100, "clean_train_size": 100},
            training={"epochs": 2},
            regularization={
                "l2_conv": 0.0,
                "l2_dense": 0.001,
                "dropout": {"type": "float", "low": 0.0, "high": 0.9},
            },
        ),
    )
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", str(root / "mlruns"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("TUNE_STORAGE", raising=False)
        study = run_study(
            space,
            RunOverrides(),
            storage=None,
            tracking_uri=None,
            echo=lambda line: None,
            trainer=ScriptedTrainer(),
            describer=describe_scripted,
        )
        arms = compare_study(
            "duel",
            storage=None,
            tracking_uri=None,
            seeds=1,
            epochs=None,
            data=None,
            echo=lines.append,
        )
        yield {"study": study, "arms": arms, "lines": lines, "root": root,
               "client": MlflowClient(f"sqlite:///{mlflow_database().resolve()}")}


def test_compare_retrains_the_seed_baseline_and_the_best_config_on_the_same_seeds(
    compared: dict,
) -> None:
    baseline, best = compared["arms"]
    assert (baseline.label, best.label) == ("seed 000 baseline", "best config")
    assert len(baseline.test_accuracies) == len(best.test_accuracies) == 1
    client = compared["client"]
    experiment = client.get_experiment_by_name("duel")
    (comparison,) = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'compare'")
    retrains = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'retrain'")
    assert len(retrains) == 2 and {run.data.tags["mlflow.parentRunId"] for run in retrains} == {
        comparison.info.run_id
    }
    by_name = {run.info.run_name: run for run in retrains}
    assert by_name["duel-baseline-seed0"].data.params["l2_dense"] == "0.001"
    assert by_name["duel-baseline-seed0"].data.params["dropout"] == "0.5"
    assert by_name["duel-best-seed0"].data.params["dropout"] == str(
        compared["study"].best_params["dropout"]
    )
    assert comparison.data.metrics[f"best.{TEST_ACCURACY}"] == pytest.approx(
        np.mean(best.test_accuracies)
    )
    assert comparison.data.metrics[f"baseline.{TEST_ACCURACY}"] == pytest.approx(
        np.mean(baseline.test_accuracies)
    )
    assert {a.path for a in client.list_artifacts(comparison.info.run_id)} == {
        "comparison.md",
        "comparison.png",
    }
    assert [int(v.version) for v in client.search_model_versions("name='duel'")] == [1]
    assert len(client.search_model_versions("name='duel-baseline'")) == 1


def test_compare_prints_the_table_a_team_reads(compared: dict) -> None:
    table = [line for line in compared["lines"] if line.startswith("| ")]
    header, _rule, baseline, best = "\n".join(table).splitlines()
    assert (
        header
        == "| config | test accuracy | test loss | gap (nats) | diagnosis | wall time per seed |"
    )
    (accuracy,) = compared["arms"][1].test_accuracies
    assert best.startswith(f"| best config | {accuracy:.4f} | ")
    assert baseline.startswith("| seed 000 baseline | ")
    assert (
        compared["root"] / "mlruns" / "reports" / "duel" / "comparison.png"
    ).stat().st_size > 5_000


def test_full_retrains_on_training_plus_validation_for_the_epochs_the_validation_run_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_STORE_DIR", str(tmp_path / "mlruns"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = write_config(tmp_path / "best.yaml", epochs=3)
    (retrain,) = train_config(
        config,
        data=None,
        seeds=1,
        epochs=None,
        full=True,
        tracking_uri=None,
        echo=lambda line: None,
    )
    client = MlflowClient(f"sqlite:///{mlflow_database().resolve()}")
    run = client.get_run(retrain.run_id)
    chosen = int(run.data.metrics["best_epoch"])
    assert run.data.params["full"] == "True" and 1 <= chosen <= 3
    assert retrain.tested_epochs == run.data.metrics["tested_epochs"] == chosen
    assert len(client.get_metric_history(retrain.run_id, DEFAULT_OBJECTIVE.metric)) == 3, (
        "the validation run's curves"
    )
    (version,) = client.search_model_versions("name='proof'")
    assert saved_model_accuracy(version.source) == pytest.approx(
        run.data.metrics[TEST_ACCURACY], abs=1e-6
    )
