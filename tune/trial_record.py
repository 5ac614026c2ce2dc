"""What each trial stores on its Optuna record besides params and value: its regime, the
diagnosis behind it and its learning curves. Written once per trial by ``tune.objective`` and read
back by the run summary and the report, so a study can be reported on from its storage alone,
without MLflow or TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from tune.diagnosis import INCONCLUSIVE, REGIMES, Curves, Diagnosis, generalization_gaps

REGIME, DIAGNOSIS, CURVES, BASELINE, RUN_ID = "regime", "diagnosis", "curves", "baseline", "mlflow_run_id"
NO_COMPLETED_TRIAL = "no completed trial"


def store(trial: optuna.Trial, diagnosis: Diagnosis, curves: Mapping[str, list[float]]) -> None:
    """Curves are rounded to 6 digits: enough for plots, and the journal stays small."""
    trial.set_user_attr(REGIME, diagnosis.regime)
    trial.set_user_attr(DIAGNOSIS, {"reason": diagnosis.reason, **diagnosis.numbers})
    trial.set_user_attr(CURVES, {k: [round(v, 6) for v in vs] for k, vs in curves.items()})


def completed_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Only these have an objective to rank, bin or place on an axis."""
    return [
        trial for trial in trials
        if trial.state == TrialState.COMPLETE and trial.value is not None
        and math.isfinite(trial.value)
    ]


def trial_regime(trial: FrozenTrial) -> str:
    """Trials from before the diagnosis existed (or with a corrupt attribute) count as
    inconclusive rather than breaking the report."""
    regime = trial.user_attrs.get(REGIME)
    return regime if regime in REGIMES else INCONCLUSIVE


def diagnosis_numbers(trial: FrozenTrial) -> dict[str, float]:
    """Finite numbers only, so a corrupt or legacy attribute drops out instead of breaking a
    mean or a plot."""
    stored = trial.user_attrs.get(DIAGNOSIS) or {}
    return {
        key: float(value) for key, value in stored.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def trial_diagnosis(trial: FrozenTrial) -> Diagnosis:
    """Rebuilt from user attributes, so the report needs neither MLflow nor a re-diagnosis."""
    reason = (trial.user_attrs.get(DIAGNOSIS) or {}).get("reason", "no diagnosis recorded")
    return Diagnosis(trial_regime(trial), str(reason), diagnosis_numbers(trial))


def trial_curves(trial: FrozenTrial) -> Curves | None:
    """The stored curves when they hold every honest metric for at least one epoch (what the
    learning-curve figure needs); None for failed or legacy trials."""
    curves = trial.user_attrs.get(CURVES) or {}
    try:
        generalization_gaps(curves)
    except ValueError:
        return None
    return curves
