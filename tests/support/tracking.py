"""``tune.tracking.tracker.Tracker`` in memory: the same runs, names, statuses, params, metrics,
tags, artifacts and model versions, kept in dictionaries instead of an MLflow store, so the
objective, the study and the commands' recording logic are tested in milliseconds.

``tests/tracking/test_tracker_contract.py`` runs the same tests against this tracker and the
MLflow one, and checks that this one has every public method of ``Tracker`` with the same
signature; a method added to ``Tracker`` fails that test until it is added here too.

Beyond what ``Tracker`` does, it checks two promises of the engine: a trial is diagnosed once,
with curves for every epoch it logged, and its run is finished once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from tune.contract import Curves, Objective
from tune.engine.diagnosis import Diagnosis
from tune.engine.objective import TrialEnd
from tune.runtime.liveness import Worker
from tune.tracking.tracker import (
    BEST_RUN_TAG,
    BEST_TAG,
    BEST_TRIAL_TAG,
    DIAGNOSIS_PREFIX,
    FAILURE_TAG,
    LEARNING_CURVE_FILE,
    MODEL_FOLDER,
    NOTE_TAG,
    OBJECTIVE_METRIC,
    PARENT_TAG,
    REASON_TAG,
    REGIME_TAG,
    ROLE_TAG,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
    WORKER_TAG,
    CurveDrawer,
    run_page,
)

RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}
MAX_PARAM_LENGTH = 6000  # what Tracker keeps of a param's text
MAX_TAG_LENGTH = 5000  # and of a failure's


@dataclass
class RecordedRun:
    """One run as the MLflow tracker would store it; for a trial, also what the engine handed over
    (``diagnosis``, ``title``, ``state``, ``failure``)."""

    run_id: str
    name: str
    parent: str | None
    number: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    status: str = "RUNNING"
    started: int = 0
    diagnosis: Diagnosis | None = None
    title: str | None = None
    state: TrialState | None = None
    failure: str | None = None

    def series(self, key: str) -> list[float]:
        return [value for _, value in self.metrics.get(key, [])]

    def latest(self, key: str) -> float | None:
        """The metric's last value, as MLflow shows it on the run."""
        values = self.series(key)
        return values[-1] if values else None


@dataclass
class ModelVersion:
    name: str
    version: int
    run_id: str
    source: str
    tags: dict[str, str]


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _trial_run_name(study_name: str, number: int, *words: str) -> str:
    return " ".join((study_name, f"#{number}", *words))


class RecordingTracker:
    """``tune.tracking.tracker.Tracker`` in memory, for one study."""

    def __init__(
        self,
        study_name: str = "scripted",
        tracking_uri: str | None = None,
        *,
        draw_curves: CurveDrawer | None = None,
    ) -> None:
        self.study_name = study_name
        self.draw_curves = draw_curves
        self.tracking_uri = tracking_uri or "memory:"
        self.experiment_id = f"memory-{study_name}"
        self.runs: dict[str, RecordedRun] = {}
        self.models: dict[str, list[ModelVersion]] = {}
        self.shown_params: list[str] = []
        self._order = itertools.count()

    # --- what the tests read ---

    def of_trial(self, number: int) -> RecordedRun:
        (run,) = [run for run in self.runs.values() if run.number == number]
        return run

    def best_runs(self) -> list[str]:
        return [run.run_id for run in self.runs.values() if run.tags.get(BEST_TAG) == "true"]

    # --- Tracker's surface ---

    def show_params(self, params: Iterable[str]) -> None:
        self.shown_params = list(params)

    def _start(
        self,
        run_name: str,
        parent_id: str | None,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        number: int | None = None,
        key: str | None = None,
    ) -> str:
        order = next(self._order)
        run_id = key if key and key not in self.runs else f"run-{order}"
        link = {PARENT_TAG: parent_id} if parent_id else {}
        self.runs[run_id] = RecordedRun(run_id, run_name, parent_id, number, tags={**link, **tags},
                                        started=order)
        self.log_params(run_id, params)
        return run_id

    def start_parent(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        return self._start(
            run_name, None, params, {ROLE_TAG: "study", WORKER_TAG: Worker.this().to_json(), **tags}
        )

    def start_trial(
        self, parent_id: str, number: int, params: Mapping[str, Any], study_name: str
    ) -> str:
        tags = {ROLE_TAG: "trial", TRIAL_TAG: str(number), STUDY_TAG: study_name}
        return self._start(_trial_run_name(study_name, number), parent_id, params, tags, number,
                           key=f"{study_name}-run-{number}")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self.runs[run_id].params.update(
            {key: str(value)[:MAX_PARAM_LENGTH] for key, value in _flatten(params).items()}
        )

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self.runs[run_id].metrics.setdefault(key, []).append((step, float(value)))

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.runs[run_id].tags.update({key: str(value) for key, value in tags.items()})

    def log_file(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.runs[run_id].artifacts[f"{folder}/{path.name}" if folder else path.name] = (
            path.read_bytes()
        )

    def log_diagnosis(
        self, run_id: str, diagnosis: Diagnosis, curves: Curves, title: str, objective: Objective
    ) -> None:
        run = self.runs[run_id]
        assert run.diagnosis is None, "a trial is diagnosed once"
        assert len(curves.get(objective.metric, [])) == len(
            run.metrics.get(objective.metric, [])
        ), "the curves of every epoch"
        run.diagnosis, run.title = diagnosis, title
        self.log_metrics(
            run_id, {f"{DIAGNOSIS_PREFIX}{key}": value for key, value in diagnosis.numbers.items()}
        )
        self.set_tags(run_id, {REGIME_TAG: diagnosis.regime, REASON_TAG: diagnosis.reason})
        if curves and self.draw_curves is not None:
            figure = self.draw_curves(curves, title=title, diagnosis=diagnosis, objective=objective)
            run.artifacts[LEARNING_CURVE_FILE] = repr(figure).encode()

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.runs[run_id].artifacts[artifact_file] = text.encode()

    def finish_trial(self, run_id: str, end: TrialEnd) -> None:
        run = self.runs[run_id]
        assert run.state is None, "a run is finished once"
        run.state, run.failure = end.state, end.failure
        failure = {FAILURE_TAG: end.failure[-MAX_TAG_LENGTH:]} if end.failure else {}
        self.set_tags(run_id, {STATE_TAG: end.state.name, **failure})
        if end.value is not None:
            self.log_metrics(run_id, {OBJECTIVE_METRIC: end.value})
            if self._beats_best(end.value, end.objective):
                self.mark_best(run_id, end.objective)
        run.name = _trial_run_name(self.study_name, end.number, end.state.name, end.regime)
        run.status = RUN_STATUS[end.state]

    def _tagged_best(self) -> list[RecordedRun]:
        return [run for run in self.runs.values() if run.tags.get(BEST_TAG) == "true"]

    def _beats_best(self, value: float, objective: Objective) -> bool:
        held = [run.latest(OBJECTIVE_METRIC) for run in self._tagged_best()]
        return all(other is None or objective.key(value) < objective.key(other) for other in held)

    def mark_best(self, run_id: str, objective: Objective | None = None) -> None:
        self.set_tags(run_id, {BEST_TAG: "true"})
        tagged = self._tagged_best()

        def rank(run: RecordedRun) -> tuple[float, int]:
            value = run.latest(OBJECTIVE_METRIC)
            return (
                objective.key(value) if objective and value is not None else float("inf"),
                run.started,
            )

        keep = run_id if objective is None or not tagged else min(tagged, key=rank).run_id
        for run in tagged:
            if run.run_id != keep:
                del run.tags[BEST_TAG]

    def log_best(
        self, parent_id: str, number: int, run_id: str | None, metrics: Mapping[str, float]
    ) -> None:
        self.log_metrics(parent_id, metrics)
        tags = {BEST_TRIAL_TAG: str(number)}
        if run_id is not None:
            self.mark_best(run_id)
            link = run_page("", self.experiment_id, run_id)
            tags |= {
                BEST_RUN_TAG: run_id,
                NOTE_TAG: f"Best trial: [{_trial_run_name(self.study_name, number)}]({link})",
            }
        self.set_tags(parent_id, tags)

    def start_retrain(
        self,
        parent_id: str | None,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> str:
        return self._start(run_name, parent_id, params, {ROLE_TAG: "retrain", **tags})

    def start_comparison(self, parent_id: str | None, params: Mapping[str, Any]) -> str:
        return self._start("compare", parent_id, params, {ROLE_TAG: "compare"})

    def register_model(
        self, run_id: str, model_path: Path, name: str, tags: Mapping[str, str]
    ) -> int:
        self.log_file(run_id, model_path, MODEL_FOLDER)
        versions = self.models.setdefault(name, [])
        versions.append(
            ModelVersion(
                name, len(versions) + 1, run_id, f"memory:{run_id}/{MODEL_FOLDER}", dict(tags)
            )
        )
        return versions[-1].version

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.runs[run_id].status = status

    def close_dead_trial(self, run_id: str | None, failure: str) -> None:
        if run_id is None:
            return
        run = self.runs[run_id]
        if run.status == "RUNNING":
            self.set_tags(run_id, {FAILURE_TAG: failure})
            run.status = "FAILED"
        if run.parent and self.runs[run.parent].status == "RUNNING":
            self._close_dead_parent(run.parent, failure)

    def close_dead_parents(self) -> None:
        for run in list(self.runs.values()):
            if run.tags.get(ROLE_TAG) != "study" or run.status != "RUNNING":
                continue
            worker = Worker.from_json(run.tags.get(WORKER_TAG))
            if worker is not None and worker.host == Worker.this().host and worker.gone():
                self._close_dead_parent(run.run_id, f"its worker {worker} died")

    def _close_dead_parent(self, parent_id: str, failure: str) -> None:
        self.close_open_children(parent_id, failure)
        self.runs[parent_id].status = "KILLED"

    def close_open_children(self, parent_id: str, failure: str) -> None:
        for run in self.runs.values():
            if run.parent == parent_id and run.status == "RUNNING":
                self.set_tags(run.run_id, {FAILURE_TAG: failure})
                run.status = "FAILED"

    def latest_parent(self) -> str | None:
        parents = [run for run in self.runs.values() if run.tags.get(ROLE_TAG) == "study"]
        return max(parents, key=lambda run: run.started).run_id if parents else None

