"""Everything written to MLflow: one experiment per study, a parent run per ``tune run`` (worker),
one nested child run per trial.

The client and run ids are passed around explicitly (no ``mlflow.start_run`` global state), so
several studies or workers in one process cannot log into each other's runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.default_experiment import DEFAULT_EXPERIMENT_ID
from optuna.trial import TrialState

from tune.contract import BEST_EPOCH, GAP_LOSS, VAL_ACCURACY, Curves, Objective, at_best
from tune.engine.diagnosis import Diagnosis
from tune.engine.objective import TrialEnd
from tune.paths import artifacts_dir, mlflow_database
from tune.runtime.liveness import Worker
from tune.runtime.locks import file_lock

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.entities import Experiment

# MLflow's own variable for where runs go, honoured as every MLflow tool honours it.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "tune.role"
STUDY_TAG = "tune.study"
TRIAL_TAG = "tune.trial_number"
STATE_TAG = "tune.trial_state"
REGIME_TAG = "tune.regime"
REASON_TAG = "tune.diagnosis"
FAILURE_TAG = "tune.failure"
WORKER_TAG = "tune.worker"
BEST_TAG = "tune.best"  # "true" on the study's best trial so far, and on no other run
BEST_TRIAL_TAG = "tune.best_trial"
BEST_RUN_TAG = "tune.best_run_id"
NOTE_TAG = "mlflow.note.content"  # the run page's Description, rendered as Markdown
# MLflow 3 opens an experiment without this tag in its GenAI mode, on an empty "Traces" page;
# "custom_model_development" is the UI's "Machine learning" kind, which opens on the runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# The runs page opens on this view (MLflow's "shared view", an experiment tag): the trials' key
# numbers, searched parameters and filter tags as columns, which MLflow shows none of by default.
RUNS_VIEW = "trials"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW}"
DIAGNOSIS_PREFIX = "diagnosis."
OBJECTIVE_METRIC = "objective"  # the trial's value: the study's objective at the kept epoch
_KEY_METRICS = (OBJECTIVE_METRIC, at_best(VAL_ACCURACY), BEST_EPOCH, at_best(GAP_LOSS))
_RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}
_MAX_PARAM_LENGTH = 6000
_MAX_TAG_LENGTH = 5000  # MLflow's limit is 8000 on current servers; a traceback's end says most
LEARNING_CURVE_FILE = "learning_curve.png"
SOURCE_TRIAL_TAG = "tune.source_trial"
SEED_TAG = "tune.seed"
# The model a parent run tunes: where it came from, its hash, its size and its layer table.
MODEL_SOURCE_TAG, MODEL_SHA256_TAG = "tune.model.source", "tune.model.sha256"
MODEL_PARAMETERS, MODEL_LAYERS_FILE = "model.parameters", "model_layers.md"
MODEL_FOLDER = "model"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a SQLite database in the store folder (MLflow 3 has
    no file store any more)."""
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{mlflow_database().resolve()}"


def runs_page(ui_url: str, experiment_id: str) -> str:
    """The address of a study's runs in the MLflow UI, in its machine-learning mode whatever the
    UI showed last, with the trials' columns."""
    return (
        f"{ui_url}/#/experiments/{experiment_id}/runs?viewStateShareKey={RUNS_VIEW}"
        "&workflowType=machine_learning"
    )


def run_page(ui_url: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_url}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def _runs_view(params: Iterable[str]) -> str:
    """The view as the UI stores it: column keys written ``group.`name```."""
    columns = [
        *(f"metrics.`{name}`" for name in _KEY_METRICS),
        *(f"params.`{name}`" for name in params),
        *(f"tags.`{name}`" for name in (STATE_TAG, REGIME_TAG, BEST_TAG)),
    ]
    return json.dumps({"selectedColumns": columns})


def study_names(tracking_uri: str) -> list[str]:
    """Every experiment but MLflow's own default: the studies, each with the retrains and
    comparisons of its configs."""
    with _first_use_lock(tracking_uri):
        experiments = MlflowClient(tracking_uri).search_experiments()
    return [e.name for e in experiments if e.experiment_id != DEFAULT_EXPERIMENT_ID]


def _trial_run_name(study_name: str, number: int, *words: str) -> str:
    """Reads like the trial's line in the terminal: ``cifar10 #12 COMPLETE balanced``."""
    return " ".join((study_name, f"#{number}", *words))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _flatten(values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def param_texts(params: Mapping[str, object]) -> dict[str, str]:
    """Params as MLflow keeps them: flattened (``study.sampler.seed``) and as text, cut to what a
    param may hold; what a run found again is compared with."""
    return {key: str(value)[:_MAX_PARAM_LENGTH] for key, value in _flatten(params).items()}


@contextmanager
def _first_use_lock(tracking_uri: str) -> Iterator[None]:
    """MLflow creates a SQLite database's tables on first use; two workers starting together would
    both try, and one would fail. A file lock beside the database lets one go first."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    with file_lock(Path(f"{tracking_uri.removeprefix('sqlite:///')}.lock")):
        yield


class CurveDrawer(Protocol):
    """Draws a trial's learning curves with its verdict
    (``tune.report.curves.learning_curve_figure``): passed in by the commands, so the tracker
    never imports the report or, unless asked to draw, matplotlib."""

    def __call__(
        self, curves: Curves, *, title: str, diagnosis: Diagnosis, objective: Objective
    ) -> Figure: ...


class Tracker:
    """MLflow writer for one study."""

    def __init__(
        self,
        study_name: str,
        tracking_uri: str | None = None,
        *,
        draw_curves: CurveDrawer | None = None,
    ) -> None:
        self.study_name = study_name
        self.draw_curves = draw_curves
        self.tracking_uri = tracking_uri or default_tracking_uri()
        with _first_use_lock(self.tracking_uri):
            self.client = MlflowClient(self.tracking_uri)
            self.experiment_id = self._experiment(study_name)

    def _artifact_location(self, study_name: str) -> str | None:
        """Local databases keep artifacts beside them in the store folder; a tracking server
        decides for itself."""
        if not self.tracking_uri.startswith("sqlite:"):
            return None
        return artifacts_dir(study_name).resolve().as_uri()

    def _experiment(self, study_name: str) -> str:
        """Experiments made before ``tune`` set their kind and view get them on their next use."""
        tags = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND, RUNS_VIEW_TAG: _runs_view(())}
        found = self.client.get_experiment_by_name(study_name)
        if found is None:
            try:
                return self.client.create_experiment(
                    study_name, self._artifact_location(study_name), tags=tags
                )
            except MlflowException as exc:  # a worker on another machine created it first
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # the other worker's experiment, there now
            found = cast("Experiment", self.client.get_experiment_by_name(study_name))
        for key, value in tags.items():
            if key not in found.tags:
                self.client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id

    def show_params(self, params: Iterable[str]) -> None:
        """Add the searched parameters to the runs page's columns, once the study knows them."""
        self.client.set_experiment_tag(self.experiment_id, RUNS_VIEW_TAG, _runs_view(params))

    def _start(
        self,
        run_name: str,
        parent_id: str | None,
        params: Mapping[str, object],
        tags: Mapping[str, str],
    ) -> str:
        """A run with its params, nested under ``parent_id`` when there is one."""
        link = {PARENT_TAG: parent_id} if parent_id else {}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={**link, **tags})
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def start_parent(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        """Tagged with its worker, so a later worker can tell whether it still lives."""
        return self._start(
            run_name, None, params, {ROLE_TAG: "study", WORKER_TAG: Worker.this().to_json(), **tags}
        )

    def start_trial(
        self, parent_id: str, number: int, params: Mapping[str, Any], study_name: str
    ) -> str:
        tags = {ROLE_TAG: "trial", TRIAL_TAG: str(number), STUDY_TAG: study_name}
        return self._start(_trial_run_name(study_name, number), parent_id, params, tags)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, text) for key, text in param_texts(params).items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        stamp = _now_ms()
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), stamp, step) for k, v in metrics.items()]
        )

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_file(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def log_diagnosis(
        self, run_id: str, diagnosis: Diagnosis, curves: Curves, title: str, objective: Objective
    ) -> None:
        """The regime as a tag to filter on, its numbers as metrics to sort by, and the learning
        curves with the verdict drawn on them (by ``draw_curves``), so the run page shows why the
        trial got it."""
        self.log_metrics(
            run_id, {f"{DIAGNOSIS_PREFIX}{key}": value for key, value in diagnosis.numbers.items()}
        )
        self.set_tags(run_id, {REGIME_TAG: diagnosis.regime, REASON_TAG: diagnosis.reason})
        if curves and self.draw_curves is not None:
            figure = self.draw_curves(curves, title=title, diagnosis=diagnosis, objective=objective)
            self.client.log_figure(run_id, figure, LEARNING_CURVE_FILE)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def finish_trial(self, run_id: str, end: TrialEnd) -> None:
        """Record how the trial ended, and why if it failed, in the run's name, tags and status;
        pruned trials show as KILLED in the MLflow UI. A completed trial that beats the study's
        best so far takes the best tag."""
        failure = {FAILURE_TAG: end.failure[-_MAX_TAG_LENGTH:]} if end.failure else {}
        self.set_tags(run_id, {STATE_TAG: end.state.name, **failure})
        if end.value is not None:
            self.log_metrics(run_id, {OBJECTIVE_METRIC: end.value})
            if self._beats_best(end.value, end.objective):
                self.mark_best(run_id, end.objective)
        self.client.update_run(
            run_id, name=_trial_run_name(self.study_name, end.number, end.state.name, end.regime)
        )
        self.client.set_terminated(run_id, _RUN_STATUS[end.state])

    def _best_runs(self) -> list[Run]:
        return self.client.search_runs([self.experiment_id], f"tags.`{BEST_TAG}` = 'true'")

    def _beats_best(self, value: float, objective: Objective) -> bool:
        """Strictly better only: on a tie the first trial keeps the tag, as Optuna keeps it best."""
        held = [run.data.metrics.get(OBJECTIVE_METRIC) for run in self._best_runs()]
        return all(other is None or objective.key(value) < objective.key(other) for other in held)

    def mark_best(self, run_id: str, objective: Objective | None = None) -> None:
        """The tag goes onto the new best before it leaves the others, so a filter on it always
        finds a run. Workers that finish together may each tag their trial: with ``objective``,
        each keeps the tag on the best run of one reading of the tagged runs (the earliest on a
        tie) and takes it off only the others it read, so the best of all keeps it."""
        self.set_tags(run_id, {BEST_TAG: "true"})
        tagged = self._best_runs()

        def rank(run: Run) -> tuple[float, int]:
            value = run.data.metrics.get(OBJECTIVE_METRIC)
            return (
                objective.key(value) if objective and value is not None else float("inf"),
                run.info.start_time,
            )

        keep = run_id if objective is None or not tagged else min(tagged, key=rank).info.run_id
        for run in tagged:
            if run.info.run_id == keep:
                continue
            try:
                self.client.delete_tag(run.info.run_id, BEST_TAG)
            except MlflowException as exc:  # another worker took it off first
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise

    def log_best(
        self, parent_id: str, number: int, run_id: str | None, metrics: Mapping[str, float]
    ) -> None:
        """The parent run's row shows the best trial's numbers in the trials' own columns, and its
        page links to that trial's run."""
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
        """A retrain of a fixed config, nested under the study's parent run or a comparison."""
        return self._start(run_name, parent_id, params, {ROLE_TAG: "retrain", **tags})

    def start_comparison(self, parent_id: str | None, params: Mapping[str, Any]) -> str:
        return self._start("compare", parent_id, params, {ROLE_TAG: "compare"})

    def register_model(
        self, run_id: str, model_path: Path, name: str, tags: Mapping[str, str]
    ) -> int:
        """The saved model, logged with its run, as the next version of the registered model
        ``name``; returns the version number."""
        self.client.log_artifact(run_id, str(model_path), MODEL_FOLDER)
        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:  # another retrain registered it first
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{MODEL_FOLDER}"
        # MLflow's annotation asks for a dict; it only reads the tags' items
        return int(self.client.create_model_version(name, source, run_id=run_id, tags=tags).version)  # type: ignore[arg-type]

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def close_dead_trial(self, run_id: str | None, failure: str) -> None:
        """The MLflow side of a trial whose worker died: its run FAILED with the reason, and the
        dead worker's parent run KILLED."""
        if run_id is None:
            return
        run = self.client.get_run(run_id)
        if run.info.status == "RUNNING":
            self.set_tags(run_id, {FAILURE_TAG: failure})
            self.client.set_terminated(run_id, "FAILED")
        parent = run.data.tags.get(PARENT_TAG)
        if parent and self.client.get_run(parent).info.status == "RUNNING":
            self._close_dead_parent(parent, failure)

    def close_dead_parents(self) -> None:
        """Parent runs of workers on this host that died between trials or while reporting."""
        query = f"tags.`{ROLE_TAG}` = 'study' and attributes.status = 'RUNNING'"
        for run in self.client.search_runs([self.experiment_id], query):
            worker = Worker.from_json(run.data.tags.get(WORKER_TAG))
            if worker is not None and worker.host == Worker.this().host and worker.gone():
                self._close_dead_parent(run.info.run_id, f"its worker {worker} died")

    def _close_dead_parent(self, parent_id: str, failure: str) -> None:
        """KILLED, with any trial run the worker created but died before Optuna recorded: such a
        run has no trial pointing at it, so only its parent can find it."""
        self.close_open_children(parent_id, failure)
        self.client.set_terminated(parent_id, "KILLED")

    def close_open_children(self, parent_id: str, failure: str) -> None:
        """A run stopped between creating a trial's MLflow run and recording it (Ctrl-C at the
        wrong moment) must not stay RUNNING for ever."""
        query = f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.status = 'RUNNING'"
        for run in self.client.search_runs([self.experiment_id], query):
            self.set_tags(run.info.run_id, {FAILURE_TAG: failure})
            self.client.set_terminated(run.info.run_id, "FAILED")

    def latest_parent(self) -> str | None:
        """The newest parent run of the study, where export and report artifacts belong."""
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{ROLE_TAG}` = 'study'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None
