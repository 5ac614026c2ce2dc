"""What the trials of a study say: which overfit, which underfit, which are balanced, and which
hyperparameters move a model from one regime to the other.

Everything is read back from the finished study (trial states, values, params, and the regime,
diagnosis numbers and curves each trial stored as user attributes), so the report can be rebuilt
at any time from any storage without MLflow or TensorFlow. The figures, the page and the terminal
text draw these findings; ``tune.report.build`` puts them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial

from tune.contract import CLEAN_TRAIN_ACCURACY, Objective, Scalar, TrialAttr
from tune.engine.diagnosis import (
    FINAL_GAP_LOSS,
    OVER_REGULARIZED,
    UNDER_REGULARIZED,
    regime_counts,
)
from tune.engine.study import study_objective
from tune.engine.trial_record import (
    best_completed,
    completed_trials,
    diagnosis_numbers,
    trial_curves,
    trial_diagnosis,
    trial_regime,
)
from tune.report.formatting import fmt, is_log, is_numeric
from tune.report.steering import KnobMap, Recommendation

_MAX_BINS = 5


@dataclass(frozen=True)
class TrialRow:
    """One trial as every view of the report shows it; ``params_text`` holds the values written
    the way the page and the terminal print them, log-searched ones in scientific notation."""

    number: int
    state: str
    value: float | None
    regime: str
    reason: str
    best_epoch: int | None
    epochs: int | None
    gap_loss: float | None
    baseline: bool
    best: bool
    params: dict[str, Scalar]
    params_text: dict[str, str]


@dataclass(frozen=True)
class EffectBin:
    """Completed trials whose value of one hyperparameter falls in ``low``..``high`` (one choice
    for a categorical): their means show whether the objective and the gap move with it."""

    label: str
    low: Scalar
    high: Scalar
    n: int
    mean_value: float
    mean_gap: float
    regimes: dict[str, int]


@dataclass(frozen=True)
class Report:
    """What ``build_report`` found and wrote; ``files`` is everything to log as artifacts."""

    study_name: str
    objective: Objective
    rows: list[TrialRow]
    counts: dict[str, int]
    effects: dict[str, list[EffectBin]]
    knobs: list[KnobMap]
    recommendation: Recommendation
    html_path: Path
    files: list[Path]

    @property
    def best_row(self) -> TrialRow | None:
        return next((row for row in self.rows if row.best), None)


def showcase_trials(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The completed trials worth comparing by eye: best, most overfit (largest gap among the
    under-regularized, or overall if none is) and most underfit (lowest clean training accuracy
    among the over-regularized, or overall). Only trials with stored curves qualify; a trial
    appears once, under its first title."""
    pool = [trial for trial in completed_trials(study.trials) if trial_curves(trial) is not None]
    objective = study_objective(study)
    picks = {
        "best": best_completed(pool, objective),
        "most overfit": _extreme(pool, UNDER_REGULARIZED, FINAL_GAP_LOSS, max),
        "most underfit": _extreme(pool, OVER_REGULARIZED, CLEAN_TRAIN_ACCURACY, min),
    }
    chosen: dict[str, FrozenTrial] = {}
    for title, trial in picks.items():
        if trial is not None and trial.number not in {t.number for t in chosen.values()}:
            chosen[title] = trial
    return chosen


# --- reading trials -------------------------------------------------------------------------


def _epochs(trial: FrozenTrial, objective: Objective) -> tuple[int | None, int | None]:
    """(best epoch, epochs run), 1-based, from what the trial reported to the pruner: every trial
    that finished an epoch has it, even one whose process died before it was recorded."""
    reported = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    if not reported:
        return None, None
    return objective.best_index(reported) + 1, len(reported)


def distributions_of(trials: Iterable[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every searched hyperparameter in the order the study first suggested it."""
    found: dict[str, BaseDistribution] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            found.setdefault(name, distribution)
    return found


def _extreme(
    pool: Sequence[FrozenTrial], regime: str, key: str, pick: Callable[..., FrozenTrial]
) -> FrozenTrial | None:
    measured = [trial for trial in pool if key in diagnosis_numbers(trial)]
    candidates = [trial for trial in measured if trial_regime(trial) == regime] or measured
    if not candidates:
        return None
    return pick(candidates, key=lambda trial: diagnosis_numbers(trial)[key])


# --- rows and effects -----------------------------------------------------------------------


def rows_of(
    trials: Sequence[FrozenTrial],
    distributions: Mapping[str, BaseDistribution],
    objective: Objective,
) -> list[TrialRow]:
    best = best_completed(trials, objective)
    return [
        _row(trial, distributions, objective, best is not None and trial.number == best.number)
        for trial in trials
    ]


def _row(
    trial: FrozenTrial,
    distributions: Mapping[str, BaseDistribution],
    objective: Objective,
    is_best: bool,
) -> TrialRow:
    diagnosis = trial_diagnosis(trial)
    best_epoch, epochs = _epochs(trial, objective)
    return TrialRow(
        number=trial.number,
        state=trial.state.name,
        value=trial.value,
        regime=diagnosis.regime,
        reason=diagnosis.reason,
        best_epoch=best_epoch,
        epochs=epochs,
        gap_loss=diagnosis.numbers.get(FINAL_GAP_LOSS),
        baseline=bool(trial.user_attrs.get(TrialAttr.BASELINE, False)),
        best=is_best,
        params=dict(trial.params),
        params_text={
            name: fmt(value, is_log(distributions.get(name)))
            for name, value in trial.params.items()
        },
    )


def effects_of(
    complete: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution]
) -> dict[str, list[EffectBin]]:
    """Per hyperparameter, the completed trials with diagnosis numbers grouped along its values,
    so a U-shaped objective or a shrinking gap shows up as a column of bin means."""
    measured = [trial for trial in complete if FINAL_GAP_LOSS in diagnosis_numbers(trial)]
    return {
        name: [
            _bin(group, name, distribution)
            for group in _groups(
                [trial for trial in measured if name in trial.params], name, distribution
            )
        ]
        for name, distribution in distributions.items()
    }


def _groups(
    trials: Sequence[FrozenTrial], name: str, distribution: BaseDistribution
) -> list[list[FrozenTrial]]:
    """Categorical: one group per choice. Numeric: one per value when there are few, else up to
    ``_MAX_BINS`` quantile bins, in log space for log distributions."""
    if not trials:
        return []
    if isinstance(distribution, CategoricalDistribution):
        keys = [distribution.choices.index(trial.params[name]) for trial in trials]
    else:
        x = np.array([float(trial.params[name]) for trial in trials])
        x = np.log10(x) if is_log(distribution) else x
        keys = _bin_indices(x).tolist()
    return [
        [trial for trial, key in zip(trials, keys) if key == wanted] for wanted in sorted(set(keys))
    ]


def _bin_indices(x: np.ndarray) -> np.ndarray:
    distinct = np.unique(x)
    if len(distinct) <= _MAX_BINS:
        return np.searchsorted(distinct, x)
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, _MAX_BINS + 1)))
    return np.searchsorted(edges[1:-1], x, side="right")


def _bin(group: Sequence[FrozenTrial], name: str, distribution: BaseDistribution) -> EffectBin:
    values = [trial.params[name] for trial in group]
    low, high = (min(values), max(values)) if is_numeric(distribution) else (values[0],) * 2
    log = is_log(distribution)
    label = fmt(low, log) if low == high else f"{fmt(low, log)} - {fmt(high, log)}"
    return EffectBin(
        label=label,
        low=low,
        high=high,
        n=len(group),
        mean_value=float(np.mean([trial.value for trial in group])),
        mean_gap=float(np.mean([diagnosis_numbers(trial)[FINAL_GAP_LOSS] for trial in group])),
        regimes=regime_counts(trial_diagnosis(trial) for trial in group),
    )
