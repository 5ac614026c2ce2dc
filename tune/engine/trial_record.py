"""What each trial stores on its Optuna record besides params and value: its regime, the
diagnosis behind it and its learning curves. Written once per trial by ``tune.engine.objective``
and read back by the run summary, the export and the report, so a study can be reported on from
its storage alone, without MLflow or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from tune.contract import HONEST_CURVES, Curves, Objective, TrialAttr
from tune.engine.diagnosis import INCONCLUSIVE, Diagnosis

_REASON = "reason"
NO_COMPLETED_TRIAL = "no completed trial"
NOT_RECORDED = "no diagnosis recorded: the trial ended before it could be diagnosed"


def store(trial: optuna.Trial, diagnosis: Diagnosis, curves: Curves, failure: str | None) -> None:
    """Curves are rounded to 6 digits: enough for plots, and the journal stays small. Optuna keeps
    no reason for a failed trial, so ``failure`` says why it failed."""
    if failure is not None:
        trial.set_user_attr(TrialAttr.FAILURE, failure)
    trial.set_user_attr(TrialAttr.REGIME, diagnosis.regime)
    trial.set_user_attr(TrialAttr.DIAGNOSIS, {_REASON: diagnosis.reason, **diagnosis.numbers})
    trial.set_user_attr(
        TrialAttr.CURVES, {k: [round(v, 6) for v in vs] for k, vs in curves.items()}
    )


def trial_failure(trial: FrozenTrial) -> str | None:
    return trial.user_attrs.get(TrialAttr.FAILURE)


def completed_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Only these have an objective to rank, bin or place on an axis."""
    return [trial for trial in trials if trial.state == TrialState.COMPLETE]


def ranked(trials: Iterable[FrozenTrial], objective: Objective) -> list[FrozenTrial]:
    """Completed trials, best first by the study's objective."""
    return sorted(
        completed_trials(trials), key=lambda trial: objective.key(cast(float, trial.value))
    )


def best_completed(trials: Iterable[FrozenTrial], objective: Objective) -> FrozenTrial | None:
    return next(iter(ranked(trials, objective)), None)


def trial_regime(trial: FrozenTrial) -> str:
    """A trial still running, or whose process died before it was recorded, has no regime yet."""
    return trial.user_attrs.get(TrialAttr.REGIME, INCONCLUSIVE)


def diagnosis_numbers(trial: FrozenTrial) -> dict[str, float]:
    stored = trial.user_attrs.get(TrialAttr.DIAGNOSIS, {})
    return {key: value for key, value in stored.items() if key != _REASON}


def trial_diagnosis(trial: FrozenTrial) -> Diagnosis:
    """Rebuilt from user attributes, so the report needs neither MLflow nor a re-diagnosis."""
    reason = trial.user_attrs.get(TrialAttr.DIAGNOSIS, {}).get(_REASON, NOT_RECORDED)
    return Diagnosis(trial_regime(trial), reason, diagnosis_numbers(trial))


def trial_curves(trial: FrozenTrial) -> Curves | None:
    """The stored curves when at least one epoch was recorded (what a learning-curve figure
    needs); None for a trial that failed before its first epoch ended."""
    curves = trial.user_attrs.get(TrialAttr.CURVES, {})
    return curves if all(curves.get(key) for key in HONEST_CURVES) else None
