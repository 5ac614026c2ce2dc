"""What the MLflow UI shows a person, read back from a real SQLite tracking store: the experiment
kind, run names, summary metrics as columns, and the best tag that follows the best trial."""

from __future__ import annotations

import json
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.support.scripted import EPOCHS, SPLITS, ScriptedTrainer, regularized_curves
from tests.support.spaces import tiny_space
from tune.commands.report import publish_report
from tune.contract import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    VAL_ACCURACY,
    Objective,
    TrialAttr,
)
from tune.engine.config import SearchSpace
from tune.engine.objective import TrialContext, TrialEnd, make_objective
from tune.runtime.liveness import Worker
from tune.tracking.tracker import (
    BEST_RUN_TAG,
    BEST_TAG,
    BEST_TRIAL_TAG,
    EXPERIMENT_KIND_TAG,
    FAILURE_TAG,
    MODEL_TRAINING_KIND,
    NOTE_TAG,
    OBJECTIVE_METRIC,
    REGIME_TAG,
    RUNS_VIEW_TAG,
    STATE_TAG,
    WORKER_TAG,
    Tracker,
    run_page,
    runs_page,
    study_names,
)

STUDY = "tracked"
MAXIMIZE = OBJECTIVES[VAL_ACCURACY]


@pytest.fixture
def uri(stores: Path) -> str:
    return f"sqlite:///{stores / 'mlflow.db'}"


def finish(tracker: Tracker, parent: str, number: int, state: TrialState, value: float | None,
           objective: Objective = DEFAULT_OBJECTIVE) -> str:
    run_id = tracker.start_trial(parent, number, {"dropout": 0.1 * number}, STUDY)
    tracker.finish_trial(run_id, TrialEnd(number, state, "balanced", objective, value, None))
    return run_id


def columns(experiment_tags: dict[str, str]) -> list[str]:
    """The runs page's columns, as the UI reads them from the view ``tune ui`` links to."""
    return json.loads(experiment_tags[RUNS_VIEW_TAG])["selectedColumns"]


def best_runs(client: MlflowClient, tracker: Tracker) -> list[str]:
    return [
        run.info.run_id
        for run in client.search_runs([tracker.experiment_id], f"tags.`{BEST_TAG}` = 'true'")
    ]


def test_every_experiment_opens_on_model_training_runs(uri: str) -> None:
    """MLflow 3 shows an experiment without a kind in its GenAI mode, on an empty traces page."""
    client = MlflowClient(uri)
    older = client.create_experiment("made-before-kinds")
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(older).tags
    for name in (STUDY, "made-before-kinds"):
        experiment = client.get_experiment(Tracker(name, uri).experiment_id)
        assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
        assert columns(experiment.tags) == [
            f"metrics.`{OBJECTIVE_METRIC}`",
            "metrics.`best_val_accuracy`",
            "metrics.`best_epoch`",
            "metrics.`best_gap_loss`",
            f"tags.`{STATE_TAG}`",
            f"tags.`{REGIME_TAG}`",
            f"tags.`{BEST_TAG}`",
        ]
    assert sorted(study_names(uri)) == sorted([STUDY, "made-before-kinds"]), (
        "MLflow's Default is no study"
    )
    assert runs_page("http://127.0.0.1:5000", older) == (
        f"http://127.0.0.1:5000/#/experiments/{older}/runs?viewStateShareKey=trials&workflowType=machine_learning")


def test_a_finished_trial_run_is_named_tagged_and_valued(uri: str) -> None:
    tracker = Tracker(STUDY, uri)
    parent = tracker.start_parent("worker", {}, {})
    running = tracker.start_trial(parent, 12, {"dropout": 0.3}, STUDY)
    client = MlflowClient(uri)
    assert client.get_run(running).info.run_name == f"{STUDY} #12"
    tracker.finish_trial(
        running, TrialEnd(12, TrialState.COMPLETE, "balanced", DEFAULT_OBJECTIVE, 0.8, None)
    )
    pruned = finish(tracker, parent, 13, TrialState.PRUNED, None)
    done, cut = client.get_run(running), client.get_run(pruned)
    assert done.info.run_name == f"{STUDY} #12 COMPLETE balanced" and done.info.status == "FINISHED"
    assert done.data.metrics[OBJECTIVE_METRIC] == 0.8 and done.data.params["dropout"] == "0.3"
    assert done.data.tags[STATE_TAG] == "COMPLETE" and done.data.tags[BEST_TAG] == "true"
    assert cut.info.run_name == f"{STUDY} #13 PRUNED balanced" and cut.info.status == "KILLED"
    assert OBJECTIVE_METRIC not in cut.data.metrics and BEST_TAG not in cut.data.tags


# SQLAlchemy notes the removal that found the tag already gone: the race this test stages.
@pytest.mark.filterwarnings("ignore:DELETE statement on table 'tags'")
def test_two_workers_beating_the_best_at_once_leave_the_tag_on_the_better(
    uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both found they beat the tagged trial, then each took the tag off every run but its own: the
    second removal of a tag failed the second worker's trial, or neither kept the tag. Here both
    decide before either tags, every time."""
    first = Tracker(STUDY, uri)
    held = finish(first, first.start_parent("worker", {}, {}), 0, TrialState.COMPLETE, 0.9)
    both_decided = threading.Barrier(2, timeout=10)
    beats = Tracker._beats_best

    def decide_then_wait(tracker: Tracker, value: float, objective: Objective) -> bool:
        found = beats(tracker, value, objective)
        both_decided.wait()
        return found

    monkeypatch.setattr(Tracker, "_beats_best", decide_then_wait)
    workers = [Tracker(STUDY, uri) for _ in range(2)]
    parents = [worker.start_parent("worker", {}, {}) for worker in workers]
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(finish, workers, parents, [1, 2], [TrialState.COMPLETE] * 2, [0.5, 0.4])
        )
    assert best_runs(MlflowClient(uri), first) == [runs[1]]
    assert held not in best_runs(MlflowClient(uri), first)


def dead_parent(tracker: Tracker) -> str:
    """A parent run whose worker, on this host, is gone: this pid, but a process started earlier."""
    parent = tracker.start_parent("worker", {}, {})
    tracker.set_tags(parent, {WORKER_TAG: Worker(socket.gethostname(), os.getpid(), 0.0).to_json()})
    return parent


@pytest.mark.parametrize(
    "recorded", [True, False], ids=["via-its-recorded-trial", "between-trials"]
)
def test_a_dead_workers_parent_is_killed_with_every_trial_run_it_left_open(
    uri: str, recorded: bool
) -> None:
    """Killed between creating a trial's run and recording its id in Optuna, a worker leaves a run
    that no trial points at: it is found through its parent, whichever way the parent is found."""
    tracker = Tracker(STUDY, uri)
    parent = dead_parent(tracker)
    done = finish(tracker, parent, 0, TrialState.COMPLETE, 0.5)
    unrecorded = tracker.start_trial(parent, 2, {"dropout": 0.2}, STUDY)
    if recorded:
        tracker.close_dead_trial(
            tracker.start_trial(parent, 1, {"dropout": 0.1}, STUDY), "its worker died"
        )
    tracker.close_dead_parents()
    client = MlflowClient(uri)
    assert client.get_run(parent).info.status == "KILLED"
    assert (
        client.get_run(done).info.status == "FINISHED"
        and FAILURE_TAG not in client.get_run(done).data.tags
    )
    left = client.get_run(unrecorded)
    assert left.info.status == "FAILED" and "died" in left.data.tags[FAILURE_TAG]
    assert {run.info.status for run in client.search_runs([tracker.experiment_id])} <= {
        "FINISHED",
        "FAILED",
        "KILLED",
    }


def test_a_live_workers_parent_and_runs_are_left_alone(uri: str) -> None:
    tracker = Tracker(STUDY, uri)
    parent = tracker.start_parent("worker", {}, {})
    running = tracker.start_trial(parent, 0, {"dropout": 0.1}, STUDY)
    tracker.close_dead_parents()
    client = MlflowClient(uri)
    assert [client.get_run(run).info.status for run in (parent, running)] == ["RUNNING", "RUNNING"]


@pytest.mark.parametrize(("objective", "values"), [
    (DEFAULT_OBJECTIVE, [0.9, 0.7, 0.8, 0.7]),  # a loss: lower wins, and a tie keeps the first
    (MAXIMIZE, [0.5, 0.7, 0.6, 0.7]),  # an accuracy: higher wins
])
def test_the_best_tag_moves_to_a_better_trial_only(
    uri: str, objective: Objective, values: list[float]
) -> None:
    tracker = Tracker(STUDY, uri)
    parent = tracker.start_parent("worker", {}, {})
    client = MlflowClient(uri)
    holders = []
    for number, value in enumerate(values):
        finish(tracker, parent, number, TrialState.COMPLETE, value, objective)
        (holder,) = best_runs(client, tracker)
        holders.append(client.get_run(holder).data.tags["tune.trial_number"])
    finish(tracker, parent, len(values), TrialState.FAIL, None, objective)
    (holder,) = best_runs(client, tracker)
    assert (
        holders == ["0", "1", "1", "1"]
        and client.get_run(holder).data.tags["tune.trial_number"] == "1"
    )


def test_the_parent_run_holds_the_best_trial_numbers_and_links_to_its_run(
    stores: Path, uri: str
) -> None:
    """Through the real objective and report: whatever the order the trials ended in, Optuna's
    best is the one tagged, and the parent's columns are its numbers."""
    space = SearchSpace.model_validate(
        tiny_space(
            training={"epochs": EPOCHS},
            regularization={"dropout": {"type": "float", "low": 0.0, "high": 0.9}},
        )
    )
    tracker = Tracker(STUDY, uri)
    parent = tracker.start_parent("worker", {}, {})
    study = optuna.create_study(study_name=STUDY)
    for dropout in (
        0.9,
        0.5,
        0.1,
        0.4,
    ):  # over-, well, under-regularized, then a worse balanced one
        study.enqueue_trial({"dropout": dropout})
    objective = make_objective(
        TrialContext(space, SPLITS, STUDY, parent, 0), tracker, ScriptedTrainer()
    )
    study.optimize(objective, n_trials=4)
    publish_report(study, tracker, parent)

    client = MlflowClient(uri)
    best = study.best_trial
    best_run = best.user_attrs[TrialAttr.RUN_ID]
    assert best_runs(client, tracker) == [best_run] and best.params["dropout"] == 0.5
    trial = client.get_run(best_run)
    assert trial.info.run_name == f"{STUDY} #{best.number} COMPLETE {trial.data.tags[REGIME_TAG]}"
    curves = regularized_curves(0.5)
    kept = curves[DEFAULT_OBJECTIVE.metric].index(best.value)
    expected = {
        OBJECTIVE_METRIC: best.value,
        "best_val_accuracy": curves[VAL_ACCURACY][kept],
        "best_epoch": kept + 1,
        "best_gap_loss": curves["val_data_loss"][kept] - curves["clean_train_loss"][kept],
    }
    for key, value in expected.items():
        assert trial.data.metrics[key] == pytest.approx(value), key
    home = client.get_run(parent)
    for key, value in expected.items():
        assert home.data.metrics[key] == pytest.approx(value, abs=1e-6), key
    assert (
        home.data.tags[BEST_TRIAL_TAG] == str(best.number)
        and home.data.tags[BEST_RUN_TAG] == best_run
    )
    assert f"]({run_page('', tracker.experiment_id, best_run)})" in home.data.tags[NOTE_TAG]
    assert "report/report.html" in [a.path for a in client.list_artifacts(parent, "report")]
    assert "params.`dropout`" in columns(client.get_experiment(tracker.experiment_id).tags)
