"""`tune run` / `tune export` end to end on synthetic data: what lands in Optuna and MLflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.support.paths import ROOT
from tests.support.processes import processes_in, tune_cli
from tests.support.spaces import tiny_space, write_space
from tune.engine.config import load_space
from tune.runtime.storage import open_storage
from tune.tracking.tracker import LEARNING_CURVE_FILE, PARENT_TAG, ROLE_TAG, STATE_TAG
from tune.training.tf_logs import is_noise

pytestmark = pytest.mark.integration

STUDY = "e2e"
TRIALS = 6
EPOCHS = 3


def e2e_space() -> dict:
    return tiny_space(
        study={
            "name": STUDY, "trials": TRIALS,
            "sampler": {"type": "random", "seed": 3},
            "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        },
        training={"epochs": EPOCHS},
        regularization={
            # 3.0 cannot fit anything: the median pruner must stop those trials after epoch 1
            "l2_conv": 0.0,
            "l2_dense": {"type": "categorical", "choices": [0.0001, 0.001, 3.0]},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25},
        },
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real study, shared by the assertions below (training is the slow part); its output
    is captured, not a terminal, as under ``make workers``."""
    root = tmp_path_factory.mktemp("e2e")
    # TensorFlow's log level left to tune, as a user's shell leaves it, and oneDNN on whatever
    # the CPU, so that its start-up line is there to be filtered
    env = {"TUNE_STORE_DIR": str(root / "mlruns"), "MLFLOW_TRACKING_URI": "",
           "TF_CPP_MIN_LOG_LEVEL": "", "TF_ENABLE_ONEDNN_OPTS": "1"}
    space = write_space(root / "space.yaml", e2e_space())
    run = tune_cli("run", str(space), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    export = tune_cli("export", STUDY, "--out", str(root / "best.yaml"), env=env)
    assert export.returncode == 0, export.stderr[-3000:]
    journal = root / "mlruns" / "optuna" / "journal.log"
    study = optuna.load_study(study_name=STUDY, storage=open_storage(f"journal:{journal}"))
    client = MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    return {"root": root, "env": env, "space": space, "run": run, "study": study, "client": client}


def runs_of(client: MlflowClient, role: str) -> list:
    experiment = client.get_experiment_by_name(STUDY)
    return client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{role}'")


def test_trials_are_stored_with_baseline_first_and_some_pruned(finished: dict) -> None:
    trials = finished["study"].trials
    assert len(trials) == TRIALS
    assert (
        trials[0].params == {"l2_dense": 0.001, "dropout": 0.5}
        and trials[0].user_attrs["baseline"] is True
    )
    states = {t.state for t in trials}
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states
    for trial in trials:
        assert trial.user_attrs["regime"] in (
            "under-regularized",
            "over-regularized",
            "balanced",
            "inconclusive",
        )
        epochs = len(trial.intermediate_values)
        assert 1 <= epochs <= EPOCHS
        assert len(trial.user_attrs["curves"]["val_data_loss"]) == epochs
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value == pytest.approx(min(trial.intermediate_values.values()))


def test_mlflow_has_a_parent_run_and_a_child_per_trial(finished: dict) -> None:
    client, study = finished["client"], finished["study"]
    (parent,) = runs_of(client, "study")
    assert parent.info.status == "FINISHED"
    assert len(parent.data.tags["tune.git_commit"]) >= 7
    assert parent.data.tags["tune.version.optuna"] == optuna.__version__
    assert parent.data.params["study.trials"] == str(TRIALS)
    assert "search_space.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = {int(r.data.tags["tune.trial_number"]): r for r in runs_of(client, "trial")}
    assert sorted(children) == [t.number for t in study.trials]
    for trial in study.trials:
        child = children[trial.number]
        assert child.data.tags[PARENT_TAG] == parent.info.run_id
        assert child.data.tags[STATE_TAG] == trial.state.name
        assert child.info.status == {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}[trial.state.name]
        assert child.data.params["l2_dense"] == str(trial.params["l2_dense"])
        assert child.data.tags["tune.regime"] == trial.user_attrs["regime"]
        history = client.get_metric_history(child.info.run_id, "val_data_loss")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        assert [m.value for m in history] == pytest.approx(
            [trial.intermediate_values[s] for s in sorted(trial.intermediate_values)]
        )
        for key in (
            "val_loss",
            "loss",
            "accuracy",
            "val_accuracy",
            "data_loss",
            "clean_train_loss",
            "gap_loss",
        ):
            assert len(client.get_metric_history(child.info.run_id, key)) == len(history), key
        assert LEARNING_CURVE_FILE in {a.path for a in client.list_artifacts(child.info.run_id)}



def test_a_real_trial_prints_no_tensorflow_noise(finished: dict) -> None:
    """Real trials through the command line print TensorFlow's start-up chatter nowhere (the fork
    server's trial processes inherit its filtered stderr), and their lines stay plain."""
    result = finished["run"]
    output = result.stdout + result.stderr
    assert not [line for line in output.splitlines() if is_noise(line)], output[-3000:]
    assert "oneDNN" not in output
    control = r"[\x00-\x08\x0b-\x1f\x7f]"
    assert not re.search(control, result.stdout), "no control characters in a log"
    line = rf"^trial   0  COMPLETE val_data_loss=\d\.\d{{4}}  epochs={EPOCHS} "
    assert re.search(line, result.stdout, re.MULTILINE)
    assert f"export the best trial: tune export {STUDY}\n" in result.stdout


# MLflow's own format ("2026/12/07 19:57:57 INFO mlflow...") or tune's ("INFO alembic...")
STORE_INFO = re.compile(r"^(?:\S+ \S+ )?INFO (?:mlflow|alembic)\.", re.MULTILINE)


def test_tune_train_on_a_fresh_store_prints_no_tensorflow_or_mlflow_chatter(
    finished: dict,
) -> None:
    """``tune train`` loads TensorFlow in its own process, and creates MLflow's database."""
    fresh = {**finished["env"], "TUNE_STORE_DIR": str(finished["root"] / "fresh")}
    train = tune_cli("train", str(finished["root"] / "best.yaml"), "--epochs", "1", env=fresh)
    assert train.returncode == 0, train.stderr[-3000:]
    output = train.stdout + train.stderr
    assert not [line for line in output.splitlines() if is_noise(line)], output[-3000:]
    assert "oneDNN" not in output and not STORE_INFO.findall(train.stderr), train.stderr[-3000:]
    assert "test accuracy" in train.stdout


def test_penalty_free_loss_is_what_is_optimized(finished: dict) -> None:
    client, study = finished["client"], finished["study"]
    child = next(r for r in runs_of(client, "trial") if r.data.tags["tune.trial_number"] == "0")
    keras_val = [m.value for m in client.get_metric_history(child.info.run_id, "val_loss")]
    data_val = [m.value for m in client.get_metric_history(child.info.run_id, "val_data_loss")]
    assert all(k > d for k, d in zip(keras_val, data_val)), (
        "with l2=1e-3 Keras's val_loss includes the penalty"
    )
    assert study.trials[0].value == pytest.approx(min(data_val))


def test_export_is_the_best_trial_and_runs(finished: dict) -> None:
    study, root = finished["study"], finished["root"]
    exported = load_space(root / "best.yaml")
    assert exported.searched() == {}
    assert {k: exported.params()[k] for k in study.best_trial.params} == study.best_trial.params
    assert exported.data == load_space(finished["space"]).data
    (parent,) = runs_of(finished["client"], "study")
    assert [a.path for a in finished["client"].list_artifacts(parent.info.run_id, "export")] == [
        "export/best.yaml"
    ]
    rerun = tune_cli("run", str(root / "best.yaml"), "--trials", "1", env=finished["env"])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    best = optuna.load_study(
        study_name=f"{STUDY}-best",
        storage=open_storage(f"journal:{root / 'mlruns/optuna/journal.log'}"),
    )
    assert best.trials[0].params == {} and best.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_running_again_resumes_the_study(finished: dict) -> None:
    again = tune_cli("run", str(finished["space"]), "--trials", "1", env=finished["env"])
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(
        study_name=STUDY,
        storage=open_storage(f"journal:{finished['root'] / 'mlruns/optuna/journal.log'}"),
    )
    assert len(study.trials) == TRIALS + 1
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 1, (
        "the baseline is enqueued once"
    )
    assert len(runs_of(finished["client"], "study")) == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            yaml.safe_dump(tiny_space(regularization={"dropout": 1.5})).encode(),
            "regularization.dropout: must be < 1, got 1.5",
        ),
        (bytes(range(256)), "not a text file: byte 128 is not UTF-8"),
    ],
    ids=["out-of-range", "binary"],
)
def test_bad_space_exits_2_and_creates_no_store(
    stores: Path, tmp_path: Path, content: bytes, problem: str
) -> None:
    space = tmp_path / "bad.yaml"
    space.write_bytes(content)
    result = tune_cli("run", str(space))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {space}: {problem}"
    assert not stores.exists()


def test_missing_data_exits_2_creates_no_store_and_leaves_no_process(
    stores: Path, tmp_path: Path
) -> None:
    """The fork server, started before the data loads so TensorFlow imports meanwhile, goes with
    the command: it holds the command's stdout and stderr, which a pipe would otherwise wait on."""
    space = write_space(tmp_path / "space.yaml", tiny_space())
    command = [sys.executable, "-m", "tune", "run", str(space), "--data", str(tmp_path / "nowhere")]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT) as tune:
        assert tune.wait(timeout=120) == 2
        assert processes_in(stores) == []
        assert "nowhere" in tune.communicate()[1]
    assert not stores.exists()


def test_export_of_unknown_study_names_it(stores: Path) -> None:
    result = tune_cli("export", "no_such_study")
    assert (
        result.returncode == 2 and "no_such_study" in result.stderr and "not found" in result.stderr
    )
