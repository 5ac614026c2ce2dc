"""One contract, two trackers: every test here runs against the MLflow ``Tracker`` (on a real
SQLite tracking store) and against the in-memory ``RecordingTracker`` that the engine's tests use,
and reads what each stored through one small reader per implementation. If the two drift apart,
the engine's fast tests stop saying anything about ``tune run``; these tests catch the drift."""

from __future__ import annotations

import inspect
import json
import os
import socket
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.support.tracking import RecordingTracker
from tune.contract import DEFAULT_OBJECTIVE, OBJECTIVES, VAL_ACCURACY, Curves, Objective
from tune.engine.diagnosis import Diagnosis
from tune.engine.objective import TrialEnd, TrialTracker
from tune.paths import STORE_ENV
from tune.runtime.liveness import Worker
from tune.tracking.tracker import (
    BEST_RUN_TAG,
    BEST_TAG,
    BEST_TRIAL_TAG,
    FAILURE_TAG,
    LEARNING_CURVE_FILE,
    NOTE_TAG,
    OBJECTIVE_METRIC,
    PARENT_TAG,
    REASON_TAG,
    REGIME_TAG,
    ROLE_TAG,
    RUNS_VIEW_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
    WORKER_TAG,
    Tracker,
    run_page,
)

MAXIMIZE = OBJECTIVES[VAL_ACCURACY]
AnyTracker = Tracker | RecordingTracker


@dataclass(frozen=True)
class RunView:
    """A run as either store holds it: tune's own tags (and the parent link and note) only, each
    metric's history in step order, artifact paths relative to the run."""

    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]
    artifacts: frozenset[str]

    def last(self, key: str) -> float:
        return self.metrics[key][-1][1]


def _own(tags: dict[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in tags.items()
        if key.startswith("tune.") or key in (PARENT_TAG, NOTE_TAG)
    }


def _by_step(history: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return sorted(history, key=lambda point: point[0])


class Reader:
    """What a test needs of a store, over one tracker of one study."""

    tracker: AnyTracker

    def run(self, run_id: str) -> RunView: ...
    def run_ids(self) -> set[str]: ...
    def versions(self, name: str) -> list[tuple[int, str, dict[str, str]]]: ...
    def shown_params(self) -> list[str]: ...

    def best(self) -> list[str]:
        return sorted(
            run_id for run_id in self.run_ids() if self.run(run_id).tags.get(BEST_TAG) == "true"
        )


class MlflowReader(Reader):
    def __init__(self, tracker: Tracker) -> None:
        self.tracker, self.client = tracker, MlflowClient(tracker.tracking_uri)

    def run(self, run_id: str) -> RunView:
        run = self.client.get_run(run_id)
        metrics = {
            key: _by_step([(m.step, m.value) for m in self.client.get_metric_history(run_id, key)])
            for key in run.data.metrics
        }
        return RunView(
            run.info.run_name,
            run.info.status,
            dict(run.data.params),
            metrics,
            _own(run.data.tags),
            frozenset(self._artifacts(run_id, None)),
        )

    def _artifacts(self, run_id: str, path: str | None) -> Iterator[str]:
        for item in self.client.list_artifacts(run_id, path):
            yield from self._artifacts(run_id, item.path) if item.is_dir else (item.path,)

    def run_ids(self) -> set[str]:
        return {run.info.run_id for run in self.client.search_runs([self.tracker.experiment_id])}

    def versions(self, name: str) -> list[tuple[int, str, dict[str, str]]]:
        found = self.client.search_model_versions(f"name='{name}'")
        return sorted((int(v.version), v.run_id, dict(v.tags)) for v in found)

    def shown_params(self) -> list[str]:
        view = self.client.get_experiment(self.tracker.experiment_id).tags[RUNS_VIEW_TAG]
        columns = json.loads(view)["selectedColumns"]
        return [
            column.removeprefix("params.`").removesuffix("`")
            for column in columns
            if column.startswith("params.")
        ]


class MemoryReader(Reader):
    def __init__(self, tracker: RecordingTracker) -> None:
        self.tracker = tracker

    def run(self, run_id: str) -> RunView:
        run = self.tracker.runs[run_id]
        metrics = {key: _by_step(history) for key, history in run.metrics.items()}
        return RunView(
            run.name,
            run.status,
            dict(run.params),
            metrics,
            _own(run.tags),
            frozenset(run.artifacts),
        )

    def run_ids(self) -> set[str]:
        return set(self.tracker.runs)

    def versions(self, name: str) -> list[tuple[int, str, dict[str, str]]]:
        return [(v.version, v.run_id, v.tags) for v in self.tracker.models.get(name, [])]

    def shown_params(self) -> list[str]:
        return self.tracker.shown_params


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite tracking store for the module (creating its tables takes seconds); each test
    gets a study, an experiment, of its own in it."""
    root = tmp_path_factory.mktemp("contract")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(STORE_ENV, str(root / "mlruns"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield f"sqlite:///{root / 'mlflow.db'}"


@dataclass
class Drawn:
    """A curve drawer that remembers what it was asked to draw."""

    calls: list[tuple[Curves, str, Diagnosis, Objective]]

    def __call__(
        self, curves: Curves, *, title: str, diagnosis: Diagnosis, objective: Objective
    ) -> Figure:
        self.calls.append((curves, title, diagnosis, objective))
        figure = Figure(figsize=(2, 2))
        figure.add_subplot().plot(curves[objective.metric])
        return figure


Make = Callable[..., Reader]


@pytest.fixture(params=["mlflow", "memory"])
def make(request: pytest.FixtureRequest) -> Make:
    """``make(draw_curves=None)``: a tracker of a new study, with its reader."""
    study = f"contract-{uuid.uuid4().hex[:8]}"

    def build(draw_curves: Drawn | None = None) -> Reader:
        if request.param == "mlflow":
            uri = request.getfixturevalue("mlflow_store")
            return MlflowReader(Tracker(study, uri, draw_curves=draw_curves))
        return MemoryReader(RecordingTracker(study, draw_curves=draw_curves))

    return build


@pytest.fixture
def store(make: Make) -> Reader:
    return make()


def end(
    number: int,
    state: TrialState,
    value: float | None,
    objective: Objective = DEFAULT_OBJECTIVE,
    regime: str = "balanced",
    failure: str | None = None,
) -> TrialEnd:
    return TrialEnd(number, state, regime, objective, value, failure)


def finished_trial(store: Reader, parent: str, number: int, state: TrialState, value: float | None,
                   objective: Objective = DEFAULT_OBJECTIVE) -> str:
    run_id = store.tracker.start_trial(
        parent, number, {"dropout": 0.1 * number}, store.tracker.study_name
    )
    store.tracker.finish_trial(run_id, end(number, state, value, objective))
    return run_id


def newer() -> None:
    """MLflow orders runs by their start time in milliseconds: a run started after this is newer."""
    time.sleep(0.005)


# --- the surface ---


def _public(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def _shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """Each parameter's name, kind and default."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_in_memory_tracker_has_every_public_method_of_tracker_with_the_same_signature() -> None:
    tracker, memory = _public(Tracker), _public(RecordingTracker)
    assert sorted(set(tracker) - set(memory)) == [], (
        "methods of Tracker the in-memory tracker lacks"
    )
    for name, method in tracker.items():
        assert _shape(memory[name]) == _shape(method), name
        assert typing.get_type_hints(memory[name]) == typing.get_type_hints(method), name
    names_and_kinds = [(name, kind) for name, kind, _ in _shape(Tracker.__init__)]
    assert [(name, kind) for name, kind, _ in _shape(RecordingTracker.__init__)] == names_and_kinds


def test_both_trackers_have_every_method_the_engine_declares_with_its_parameters() -> None:
    declared = _public(TrialTracker)
    assert {"start_trial", "log_metrics", "log_diagnosis", "finish_trial"} <= set(declared)
    for name, method in declared.items():
        assert _shape(getattr(Tracker, name)) == _shape(method), f"Tracker.{name}"
        assert _shape(getattr(RecordingTracker, name)) == _shape(method), f"RecordingTracker.{name}"


def test_a_tracker_names_its_study_and_store(store: Reader) -> None:
    tracker = store.tracker
    assert tracker.study_name.startswith("contract-")
    assert tracker.experiment_id and tracker.tracking_uri
    assert store.run_ids() == set() and tracker.latest_parent() is None


# --- runs and what they hold ---


def test_a_parent_run_holds_its_params_flattened_its_tags_and_its_worker(store: Reader) -> None:
    parent = store.tracker.start_parent(
        "worker-1", {"study": {"trials": 4, "name": "x"}, "seed": 3}, {"tune.extra": "yes"}
    )
    run = store.run(parent)
    assert (run.name, run.status) == ("worker-1", "RUNNING")
    assert run.params == {"study.trials": "4", "study.name": "x", "seed": "3"}
    assert run.tags == {ROLE_TAG: "study", WORKER_TAG: Worker.this().to_json(), "tune.extra": "yes"}
    assert store.tracker.latest_parent() == parent


def test_a_trial_run_is_nested_named_and_tagged_with_its_number_and_study(store: Reader) -> None:
    parent = store.tracker.start_parent("worker", {}, {})
    run_id = store.tracker.start_trial(parent, 12, {"dropout": 0.3, "flip": True}, "studied")
    run = store.run(run_id)
    assert (run.name, run.status) == ("studied #12", "RUNNING"), (
        "named for the study it was started for"
    )
    assert run.params == {"dropout": "0.3", "flip": "True"}
    assert run.tags == {
        ROLE_TAG: "trial",
        TRIAL_TAG: "12",
        STUDY_TAG: "studied",
        PARENT_TAG: parent,
    }
    assert store.tracker.latest_parent() == parent, "a trial is no parent"


def test_metrics_keep_every_step_and_params_and_tags_read_back_as_text(store: Reader) -> None:
    tracker = store.tracker
    run_id = tracker.start_trial(tracker.start_parent("worker", {}, {}), 0, {}, "s")
    for step, value in enumerate([0.9, 0.7, 0.8]):
        tracker.log_metrics(run_id, {"val_data_loss": value, "gap_loss": value / 10}, step=step)
    tracker.log_metrics(run_id, {"best_epoch": 2})
    tracker.log_params(run_id, {"data": {"source": "synthetic:600"}, "long": "x" * 7000})
    tracker.set_tags(run_id, {"tune.note": 1.5, "tune.flag": True})
    run = store.run(run_id)
    assert run.metrics["val_data_loss"] == [(0, 0.9), (1, 0.7), (2, 0.8)]
    assert run.metrics["gap_loss"] == [
        (0, pytest.approx(0.09)),
        (1, pytest.approx(0.07)),
        (2, pytest.approx(0.08)),
    ]
    assert run.metrics["best_epoch"] == [(0, 2.0)]
    assert run.params["data.source"] == "synthetic:600" and run.params["long"] == "x" * 6000
    assert (run.tags["tune.note"], run.tags["tune.flag"]) == ("1.5", "True")


def test_a_diagnosis_is_its_numbers_as_metrics_its_regime_and_reason_as_tags_and_a_figure(
    make: Make,
) -> None:
    drawn = Drawn([])
    store = make(draw_curves=drawn)
    tracker = store.tracker
    run_id = tracker.start_trial(tracker.start_parent("worker", {}, {}), 0, {}, "s")
    curves = {DEFAULT_OBJECTIVE.metric: [0.9, 0.8]}
    for step, value in enumerate(curves[DEFAULT_OBJECTIVE.metric]):
        tracker.log_metrics(run_id, {DEFAULT_OBJECTIVE.metric: value}, step=step)
    diagnosis = Diagnosis(
        "under-regularized",
        "validation loss rose 30% above its minimum",
        {"epochs": 2.0, "final_gap_loss": 0.6},
    )
    tracker.log_diagnosis(run_id, diagnosis, curves, "s trial 0 (complete)", DEFAULT_OBJECTIVE)
    run = store.run(run_id)
    assert run.metrics["diagnosis.epochs"] == [(0, 2.0)] and run.metrics[
        "diagnosis.final_gap_loss"
    ] == [(0, 0.6)]
    assert (run.tags[REGIME_TAG], run.tags[REASON_TAG]) == (diagnosis.regime, diagnosis.reason)
    assert run.artifacts == {LEARNING_CURVE_FILE}
    assert drawn.calls == [(curves, "s trial 0 (complete)", diagnosis, DEFAULT_OBJECTIVE)]


def test_without_curves_or_a_drawer_a_diagnosis_draws_nothing(make: Make) -> None:
    drawn = Drawn([])
    with_drawer, without = make(draw_curves=drawn), make()
    diagnosis = Diagnosis("inconclusive", "no epoch finished", {})
    for store, curves in ((with_drawer, {}), (without, {DEFAULT_OBJECTIVE.metric: [0.5]})):
        tracker = store.tracker
        run_id = tracker.start_trial(tracker.start_parent("worker", {}, {}), 0, {}, "s")
        if curves:
            tracker.log_metrics(run_id, {DEFAULT_OBJECTIVE.metric: 0.5})
        tracker.log_diagnosis(run_id, diagnosis, curves, "t", DEFAULT_OBJECTIVE)
        run = store.run(run_id)
        assert run.artifacts == frozenset() and run.tags[REGIME_TAG] == "inconclusive"
    assert drawn.calls == []


def test_text_and_files_land_where_they_are_put(store: Reader, tmp_path: Path) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    (tmp_path / "space.yaml").write_text("study: {}\n")
    tracker.log_file(parent, tmp_path / "space.yaml", "space")
    tracker.log_file(parent, tmp_path / "space.yaml")
    tracker.log_text(parent, "| a | b |\n", "model_layers.md")
    assert store.run(parent).artifacts == {"space/space.yaml", "space.yaml", "model_layers.md"}


# --- how trials end, and the best tag ---


def test_each_end_of_a_trial_names_tags_and_closes_its_run(store: Reader) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    done, cut, failed = (tracker.start_trial(parent, n, {"dropout": 0.1}, "s") for n in (0, 1, 2))
    failure = (
        "Traceback (most recent call last):\n" + "x" * 6000 + "\nValueError: the end says most"
    )
    tracker.finish_trial(done, end(0, TrialState.COMPLETE, 0.8))
    tracker.finish_trial(cut, end(1, TrialState.PRUNED, None, regime="over-regularized"))
    tracker.finish_trial(
        failed, end(2, TrialState.FAIL, None, regime="inconclusive", failure=failure)
    )
    study = tracker.study_name
    complete, pruned, fail = store.run(done), store.run(cut), store.run(failed)
    assert (complete.name, complete.status) == (f"{study} #0 COMPLETE balanced", "FINISHED")
    assert complete.tags[STATE_TAG] == "COMPLETE" and complete.metrics[OBJECTIVE_METRIC] == [
        (0, 0.8)
    ]
    assert complete.tags[BEST_TAG] == "true" and FAILURE_TAG not in complete.tags
    assert (pruned.name, pruned.status) == (f"{study} #1 PRUNED over-regularized", "KILLED")
    assert (
        pruned.tags[STATE_TAG] == "PRUNED"
        and OBJECTIVE_METRIC not in pruned.metrics
        and BEST_TAG not in pruned.tags
    )
    assert (fail.name, fail.status) == (f"{study} #2 FAIL inconclusive", "FAILED")
    assert fail.tags[FAILURE_TAG] == failure[-5000:] and fail.tags[FAILURE_TAG].endswith(
        "the end says most"
    )
    assert store.best() == [done]


@pytest.mark.parametrize(("objective", "values"), [
    (DEFAULT_OBJECTIVE, [0.9, 0.7, 0.8, 0.7]),  # a loss: lower wins, and a tie keeps the first
    (MAXIMIZE, [0.5, 0.7, 0.6, 0.7]),  # an accuracy: higher wins
])
def test_the_best_tag_moves_to_a_better_trial_only(
    store: Reader, objective: Objective, values: list[float]
) -> None:
    parent = store.tracker.start_parent("worker", {}, {})
    trials, holders = [], []
    for number, value in enumerate(values):
        trials.append(finished_trial(store, parent, number, TrialState.COMPLETE, value, objective))
        (holder,) = store.best()
        holders.append(trials.index(holder))
    finished_trial(store, parent, len(values), TrialState.FAIL, None, objective)
    assert holders == [0, 1, 1, 1] and store.best() == [trials[1]]


def test_marking_the_best_among_several_tagged_keeps_the_best_valued_one(store: Reader) -> None:
    """What two workers that finished together leave: both runs tagged. With the objective, the
    best value keeps the tag (the earlier run on a tie); without it, the run named keeps it."""
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    runs = []
    for number, value in enumerate([0.6, 0.4, 0.5, 0.4]):
        runs.append(tracker.start_trial(parent, number, {}, "s"))
        tracker.log_metrics(runs[-1], {OBJECTIVE_METRIC: value})
        newer()
    for run_id in runs:
        tracker.set_tags(run_id, {BEST_TAG: "true"})
    tracker.mark_best(runs[2], DEFAULT_OBJECTIVE)
    assert store.best() == [runs[1]], "the lowest loss, the first of the two at 0.4"
    tracker.mark_best(runs[0])
    assert store.best() == [runs[0]], "no objective: the run named takes the tag from every other"


def test_the_parent_holds_the_best_trials_numbers_and_links_to_its_run(store: Reader) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    first = finished_trial(store, parent, 0, TrialState.COMPLETE, 0.5)
    second = finished_trial(store, parent, 1, TrialState.COMPLETE, 0.7)
    tracker.log_best(parent, 1, second, {OBJECTIVE_METRIC: 0.7, "best_epoch": 4})
    home = store.run(parent)
    assert (home.last(OBJECTIVE_METRIC), home.last("best_epoch")) == (0.7, 4.0)
    assert home.tags[BEST_TRIAL_TAG] == "1" and home.tags[BEST_RUN_TAG] == second
    link = run_page("", tracker.experiment_id, second)
    assert home.tags[NOTE_TAG] == f"Best trial: [{tracker.study_name} #1]({link})"
    assert store.best() == [second] and first not in store.best()


def test_a_best_trial_without_a_run_is_named_without_a_link(store: Reader) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    held = finished_trial(store, parent, 0, TrialState.COMPLETE, 0.5)
    tracker.log_best(parent, 3, None, {OBJECTIVE_METRIC: 0.4})
    home = store.run(parent)
    assert (
        home.tags[BEST_TRIAL_TAG] == "3"
        and BEST_RUN_TAG not in home.tags
        and NOTE_TAG not in home.tags
    )
    assert store.best() == [held], "no run named: the tag stays where it was"


def test_the_searched_params_become_columns(store: Reader) -> None:
    store.tracker.show_params(["dropout", "l2_conv"])
    assert store.shown_params() == ["dropout", "l2_conv"]


# --- closing what an interrupted or dead worker left ---


def test_closing_open_children_fails_only_the_running_trials_of_that_parent(store: Reader) -> None:
    tracker = store.tracker
    parent, other = tracker.start_parent("worker", {}, {}), tracker.start_parent("other", {}, {})
    done = finished_trial(store, parent, 0, TrialState.COMPLETE, 0.5)
    open_ = tracker.start_trial(parent, 1, {}, "s")
    elsewhere = tracker.start_trial(other, 2, {}, "s")
    tracker.close_open_children(parent, "interrupted")
    assert (
        store.run(open_).status == "FAILED" and store.run(open_).tags[FAILURE_TAG] == "interrupted"
    )
    assert store.run(done).status == "FINISHED" and FAILURE_TAG not in store.run(done).tags
    assert store.run(elsewhere).status == "RUNNING" and store.run(parent).status == "RUNNING"
    tracker.finish_run(parent, "KILLED")
    tracker.finish_run(other)
    assert (store.run(parent).status, store.run(other).status) == ("KILLED", "FINISHED")


def test_a_dead_trial_fails_and_its_parent_is_killed_with_every_trial_it_left_open(
    store: Reader,
) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    done = finished_trial(store, parent, 0, TrialState.COMPLETE, 0.5)
    dead, unrecorded = (
        tracker.start_trial(parent, 1, {}, "s"),
        tracker.start_trial(parent, 2, {}, "s"),
    )
    tracker.close_dead_trial(None, "nothing to close")
    assert store.run(dead).status == store.run(parent).status == "RUNNING"
    tracker.close_dead_trial(dead, "its worker h:1 died")
    for run_id in (dead, unrecorded):
        assert (
            store.run(run_id).status == "FAILED"
            and store.run(run_id).tags[FAILURE_TAG] == "its worker h:1 died"
        )
    assert store.run(parent).status == "KILLED"
    assert store.run(done).status == "FINISHED" and FAILURE_TAG not in store.run(done).tags


def test_a_finished_trial_of_a_dead_worker_stays_finished_but_its_parent_is_killed(
    store: Reader,
) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    done = finished_trial(store, parent, 0, TrialState.COMPLETE, 0.5)
    tracker.close_dead_trial(done, "its worker h:1 died")
    assert store.run(done).status == "FINISHED" and FAILURE_TAG not in store.run(done).tags
    assert store.run(parent).status == "KILLED"


def test_only_parents_of_dead_workers_on_this_host_are_closed(store: Reader) -> None:
    tracker = store.tracker
    this_host = socket.gethostname()
    names = ("dead", "finished", "alive", "elsewhere")
    dead, finished, alive, elsewhere = (tracker.start_parent(name, {}, {}) for name in names)
    gone = Worker(this_host, os.getpid(), 0.0).to_json()  # this pid, but a process started earlier
    for parent in (dead, finished):
        tracker.set_tags(parent, {WORKER_TAG: gone})
    tracker.set_tags(elsewhere, {WORKER_TAG: Worker("other-host", 1, 0.0).to_json()})
    left = tracker.start_trial(dead, 0, {}, "s")
    running = tracker.start_trial(alive, 1, {}, "s")
    tracker.finish_run(finished)
    tracker.close_dead_parents()
    assert store.run(dead).status == "KILLED"
    assert store.run(left).status == "FAILED" and "died" in store.run(left).tags[FAILURE_TAG]
    assert store.run(left).tags[FAILURE_TAG].startswith(f"its worker {this_host}:{os.getpid()}")
    assert store.run(finished).status == "FINISHED", (
        "a worker that finished its run is not dead to it"
    )
    assert [store.run(run_id).status for run_id in (alive, running, elsewhere)] == ["RUNNING"] * 3


def test_the_latest_parent_is_the_newest_study_run(store: Reader) -> None:
    tracker = store.tracker
    first = tracker.start_parent("first", {}, {})
    newer()
    second = tracker.start_parent("second", {}, {})
    newer()
    tracker.start_retrain(second, "retrain", {}, {})
    tracker.start_comparison(None, {})
    assert tracker.latest_parent() == second
    tracker.finish_run(second)
    assert tracker.latest_parent() == second, "finished or not"
    assert first != second


# --- retrains, comparisons and registered models ---


def test_retrains_and_comparisons_are_nested_runs_with_their_roles(store: Reader) -> None:
    tracker = store.tracker
    parent = tracker.start_parent("worker", {}, {})
    comparison = tracker.start_comparison(parent, {"seeds": 2})
    retrain = tracker.start_retrain(comparison, "best-seed0", {"dropout": 0.25}, {"tune.seed": "0"})
    alone = tracker.start_retrain(None, "alone-seed1", {}, {})
    compared, retrained = store.run(comparison), store.run(retrain)
    assert (compared.name, compared.params, compared.tags) == (
        "compare",
        {"seeds": "2"},
        {ROLE_TAG: "compare", PARENT_TAG: parent},
    )
    assert (retrained.name, retrained.params) == ("best-seed0", {"dropout": "0.25"})
    assert retrained.tags == {ROLE_TAG: "retrain", "tune.seed": "0", PARENT_TAG: comparison}
    assert PARENT_TAG not in store.run(alone).tags
    assert store.run_ids() == {parent, comparison, retrain, alone}


def test_each_registered_model_is_the_next_version_with_its_file_logged(
    store: Reader, tmp_path: Path
) -> None:
    tracker = store.tracker
    runs = [tracker.start_retrain(None, f"seed{seed}", {}, {}) for seed in (0, 1)]
    model = tmp_path / "net.keras"
    model.write_bytes(b"weights")
    name = f"{tracker.study_name}-model"
    versions = [
        tracker.register_model(run_id, model, name, {"test_accuracy": f"0.{seed}"})
        for seed, run_id in enumerate(runs)
    ]
    assert versions == [1, 2]
    assert store.versions(name) == [
        (1, runs[0], {"test_accuracy": "0.0"}),
        (2, runs[1], {"test_accuracy": "0.1"}),
    ]
    assert all(store.run(run_id).artifacts == {"model/net.keras"} for run_id in runs)
