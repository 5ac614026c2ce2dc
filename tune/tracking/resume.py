"""What an interrupted ``tune compare`` or ``tune prove`` left in MLflow, found again, so that
running the command again carries on: the comparison run it was filling, and every retrain it
finished, which is not trained again.

A retrain counts as finished when its run is FINISHED and its model has a registered version
(``tune train`` registers the model before it finishes the run). It is found by what it was asked
to be: nested under the same comparison run, with the same seed and exactly the params the
retrain would log now (the config, its model, epochs and data), registered under the same name.
A changed config, or one run under another comparison, is trained anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlflow.entities import Run

from tune.contract import RETRAIN_SECONDS, TEST_ACCURACY, TEST_LOSS, TESTED_EPOCHS
from tune.engine.diagnosis import Diagnosis
from tune.tracking.tracker import (
    DIAGNOSIS_PREFIX,
    PARENT_TAG,
    REASON_TAG,
    REGIME_TAG,
    ROLE_TAG,
    SEED_TAG,
    Tracker,
    param_texts,
)

# What a finished retrain must have logged to stand in for training it again.
_SCORES = (TEST_ACCURACY, TEST_LOSS, TESTED_EPOCHS, RETRAIN_SECONDS)


@dataclass(frozen=True)
class StoredRetrain:
    """A finished retrain as MLflow holds it: its run, its registered version, its metrics (the
    last value of each) and its diagnosis."""

    run_id: str
    version: int
    metrics: dict[str, float]
    diagnosis: Diagnosis


def comparison_run(tracker: Tracker, parent_id: str | None, params: Mapping[str, object]) -> str:
    """The study's newest comparison run with exactly these params (the same seeds, epochs, data
    and best trial), whether it finished or was interrupted, set RUNNING again until it finishes;
    else a new one under ``parent_id``."""
    wanted = param_texts(params)
    for run in tracker.client.search_runs(
        [tracker.experiment_id],
        f"tags.`{ROLE_TAG}` = 'compare'",
        order_by=["attributes.start_time DESC"],
    ):
        if run.data.params == wanted:
            tracker.client.update_run(run.info.run_id, status="RUNNING")
            return run.info.run_id
    return tracker.start_comparison(parent_id, params)


def finished_retrain(
    tracker: Tracker,
    parent_id: str,
    seed: int,
    params: Mapping[str, object],
    registered_as: str,
) -> StoredRetrain | None:
    """The newest finished retrain of this seed and these params under ``parent_id`` whose model
    is registered as ``registered_as``, or None."""
    query = (
        f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{ROLE_TAG}` = 'retrain' "
        f"and tags.`{SEED_TAG}` = '{seed}' and attributes.status = 'FINISHED'"
    )
    wanted = param_texts(params)
    for run in tracker.client.search_runs(
        [tracker.experiment_id], query, order_by=["attributes.start_time DESC"]
    ):
        if run.data.params != wanted or not _scored(run):
            continue
        version = _registered_version(tracker, run.info.run_id, registered_as)
        if version is not None:
            return StoredRetrain(run.info.run_id, version, dict(run.data.metrics), _diagnosis(run))
    return None


def _registered_version(tracker: Tracker, run_id: str, name: str) -> int | None:
    versions = tracker.client.search_model_versions(f"run_id = '{run_id}'")
    return next((int(v.version) for v in versions if v.name == name), None)


def _scored(run: Run) -> bool:
    return all(key in run.data.metrics for key in _SCORES)


def _diagnosis(run: Run) -> Diagnosis:
    """As ``Tracker.log_diagnosis`` wrote it: the regime and reason as tags, the numbers as
    metrics under ``diagnosis.``."""
    numbers = {
        key.removeprefix(DIAGNOSIS_PREFIX): value
        for key, value in run.data.metrics.items()
        if key.startswith(DIAGNOSIS_PREFIX)
    }
    return Diagnosis(run.data.tags[REGIME_TAG], run.data.tags[REASON_TAG], numbers)
