"""The diagnosis on real training: a trial forced to underfit (huge lambda) and one forced to
overfit (no regularization, tiny training set, many epochs) get the right labels, everywhere the
user looks: the Optuna trial, the MLflow run, the report and its plots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.support.processes import tune_cli
from tests.support.spaces import tiny_space, write_space
from tune.runtime.storage import open_storage
from tune.tracking.tracker import ROLE_TAG

pytestmark = pytest.mark.integration

STUDY = "regimes"
UNDERFIT = {"l2_conv": 5.0, "l2_dense": 5.0, "dropout": 0.0}
OVERFIT = {"l2_conv": 0.0, "l2_dense": 0.0, "dropout": 0.0}


def run_forced(root: Path, name: str, enqueue: list[dict]) -> subprocess.CompletedProcess[str]:
    """A study of exactly the ``enqueue`` trials on a tiny training set, trained for real."""
    space = tiny_space(
        study={
            "name": name,
            "trials": len(enqueue),
            "baseline": False,
            "enqueue": enqueue,
            "pruner": {"type": "none"},
        },
        data={
            "source": "synthetic:3000",
            "train_subset": 100,
            "validation_size": 300,
            "clean_train_size": 100,
        },
        training={"epochs": 30, "batch_size": 8},
        regularization={
            "l2_conv": {"type": "categorical", "choices": [0.0, 5.0]},
            "l2_dense": {"type": "categorical", "choices": [0.0, 5.0]},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        },
    )
    env = {"TUNE_STORE_DIR": str(root / "mlruns"), "MLFLOW_TRACKING_URI": ""}
    run = tune_cli("run", str(write_space(root / f"{name}.yaml", space)), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def regimes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("regimes")
    run = run_forced(root, STUDY, [UNDERFIT, OVERFIT])
    study = optuna.load_study(
        study_name=STUDY, storage=open_storage(f"journal:{root / 'mlruns/optuna/journal.log'}")
    )
    return {
        "root": root,
        "run": run,
        "study": study,
        "client": MlflowClient(f"sqlite:///{root / 'mlruns/mlflow.db'}"),
    }


def trial_with(study: optuna.Study, params: dict) -> optuna.trial.FrozenTrial:
    return next(t for t in study.trials if t.params == params)


@pytest.mark.parametrize(
    ("params", "regime"), [(UNDERFIT, "over-regularized"), (OVERFIT, "under-regularized")]
)
def test_forced_regimes_are_diagnosed(regimes: dict, params: dict, regime: str) -> None:
    trial = trial_with(regimes["study"], params)
    assert trial.user_attrs["regime"] == regime, trial.user_attrs["diagnosis"]["reason"]
    numbers = trial.user_attrs["diagnosis"]
    if regime == "under-regularized":
        assert (
            numbers["final_gap_loss"] > 0.5
            and numbers["clean_train_accuracy"] > numbers["val_accuracy"] + 0.2
        )
    else:
        assert numbers["clean_train_accuracy"] < 0.3 and abs(numbers["final_gap_accuracy"]) < 0.05
    run = regimes["client"].get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["tune.regime"] == regime
    assert run.data.metrics["diagnosis.final_gap_loss"] == pytest.approx(numbers["final_gap_loss"])


def test_report_files_exist_and_are_logged(regimes: dict) -> None:
    folder = regimes["root"] / "mlruns" / "reports" / STUDY
    expected = {
        "report.html",
        "interactive.html",
        "learning_curves.png",
        "slices.png",
        "optimization_history.png",
        "intermediate_values.png",
    }
    assert expected <= {p.name for p in folder.iterdir()}
    html = (folder / "report.html").read_text()
    assert "under-regularized" in html and "over-regularized" in html
    client = regimes["client"]
    experiment = client.get_experiment_by_name(STUDY)
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'study'")
    logged = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "report")}
    assert expected <= logged
    assert f"report: {folder / 'report.html'}" in regimes["run"].stdout
    assert (
        "under-regularized: 1" in regimes["run"].stdout
        and "over-regularized: 1" in regimes["run"].stdout
    )


def test_report_command_rebuilds_it(regimes: dict) -> None:
    env = {"TUNE_STORE_DIR": str(regimes["root"] / "mlruns"), "MLFLOW_TRACKING_URI": ""}
    html = regimes["root"] / "mlruns" / "reports" / STUDY / "report.html"
    html.unlink()
    result = tune_cli("report", STUDY, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert html.exists() and "best: trial" in result.stdout


def test_the_recommendation_points_the_right_way_on_real_training(regimes: dict) -> None:
    """The overfitting trial wins on validation loss, so the study is told to regularize more;
    a study of the underfitting trial alone is told to lower every penalty it searched."""
    assert "recommendation: more regularization" in " ".join(regimes["run"].stdout.split())
    over = " ".join(run_forced(regimes["root"], "overregularized", [UNDERFIT]).stdout.split())
    assert "recommendation: less regularization: lower l2_conv (5 -> beyond the searched 5" in over
    assert (
        "lower l2_dense (5 -> beyond the searched 5" in over
        and "dropout" not in over.split("recommendation:")[1][:200]
    )
