"""One trial from start to finish: suggest parameters, train, report every epoch for pruning,
diagnose the curves, and record it all on the Optuna trial and with the tracker.

The trainer and the tracker are passed in: ``tune run`` gives the isolated Keras trainer and the
MLflow tracker, tests give a scripted trainer and an in-memory tracker, so this logic runs in
milliseconds without TensorFlow. This module never imports TensorFlow, MLflow or matplotlib.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.trial import TrialState

from tune.contract import (
    Curves,
    EpochHook,
    Objective,
    Params,
    Splits,
    Trainer,
    TrialAttr,
    at_best_epoch,
    generalization_gaps,
)
from tune.engine import trial_record
from tune.engine.config import SearchSpace
from tune.engine.diagnosis import (
    INCONCLUSIVE,
    OVER_REGULARIZED,
    UNDER_REGULARIZED,
    Diagnosis,
    diagnose,
    early_call,
)
from tune.engine.study import suggest_params
from tune.errors import TuneError
from tune.runtime import liveness
from tune.runtime.processes import interrupts_held

NO_EPOCH = "no epoch finished: the trial failed before its first epoch ended"
INTERRUPTED = "interrupted"
# The Optuna constraint a regime-aware study sets on every trial: positive (infeasible, so TPE
# samples less near it) for an under- or over-regularized trial.
REGIME_CONSTRAINT = "regime"


class TrialTracker(Protocol):
    """What a trial writes besides its Optuna record; ``tune.tracking.tracker.Tracker`` writes it
    to MLflow."""

    def start_trial(self, parent_id: str, number: int, params: Params, study_name: str) -> str: ...
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None: ...
    def log_diagnosis(
        self, run_id: str, diagnosis: Diagnosis, curves: Curves, title: str, objective: Objective
    ) -> None: ...
    def finish_trial(self, run_id: str, end: TrialEnd) -> None: ...


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended, for the tracker to name its run and to tell whether it is the best so
    far: ``value`` is the objective at the kept epoch, which only a completed trial has."""

    number: int
    state: TrialState
    regime: str
    objective: Objective
    value: float | None
    failure: str | None


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one worker shares."""

    space: SearchSpace
    splits: Splits
    study_name: str
    parent_run_id: str
    seed: int


def make_objective(
    ctx: TrialContext, tracker: TrialTracker, trainer: Trainer
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        curves: defaultdict[str, list[float]] = defaultdict(list)
        state, value, failure, run_id, early = TrialState.FAIL, None, None, None, None
        try:  # from the first step, so a failure or Ctrl-C at any point is recorded
            with interrupts_held():
                liveness.claim(trial)
                params = suggest_params(trial, ctx.space)
                run_id = tracker.start_trial(
                    ctx.parent_run_id, trial.number, params, ctx.study_name
                )
                trial.set_user_attr(TrialAttr.RUN_ID, run_id)
            settings = ctx.space.train_settings(ctx.seed + trial.number)
            result = trainer(
                params,
                ctx.splits,
                settings,
                _epoch_hook(trial, ctx, tracker, run_id, curves, settings.objective),
            )
            state, value = TrialState.COMPLETE, result.value
            return value
        except optuna.TrialPruned as pruned:
            state, early = (
                TrialState.PRUNED,
                pruned.diagnosis if isinstance(pruned, RegimeCalled) else None,
            )
            raise
        except BaseException as exc:
            failure = _failure_text(exc)
            raise
        finally:  # a Ctrl-C during the record waits for the next trial's start: this one is over
            with interrupts_held(deliver=False):
                _record(trial, ctx, tracker, run_id, dict(curves), state, value, failure, early)

    return objective


class RegimeCalled(optuna.TrialPruned):
    """Pruned by the early regime call; carries the verdict, which is the trial's diagnosis."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.reason)
        self.diagnosis = diagnosis


def _epoch_hook(
    trial: optuna.Trial,
    ctx: TrialContext,
    tracker: TrialTracker,
    run_id: str,
    curves: defaultdict[str, list[float]],
    objective: Objective,
) -> EpochHook:
    """Per epoch: keep the curves, log them with the gaps, report the objective, maybe prune."""

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves[key].append(value)
        gaps = {key: values[-1] for key, values in generalization_gaps(curves).items()}
        value = logs[objective.metric]
        with interrupts_held():
            tracker.log_metrics(run_id, {**logs, **gaps}, step=epoch)
            liveness.beat(trial)
            trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch + 1}: {objective.metric}={value:.4f}"
            )
        if ctx.space.study.pruner.early_regime and epoch + 1 == ctx.space.diagnosis.early_epochs:
            call = early_call(curves, ctx.space.diagnosis, num_classes=len(ctx.splits.class_names))
            if call is not None:
                raise RegimeCalled(
                    Diagnosis(call.regime, call.reason, _diagnose(curves, ctx).numbers)
                )

    return on_epoch


def _failure_text(exc: BaseException) -> str:
    """Our own errors already read as a reason; anything else keeps its type, which says most."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    return str(exc) if isinstance(exc, TuneError) else f"{type(exc).__name__}: {exc}"


def _diagnose(curves: Curves, ctx: TrialContext) -> Diagnosis:
    if not curves:
        return Diagnosis(INCONCLUSIVE, NO_EPOCH, {})
    return diagnose(curves, ctx.space.diagnosis, num_classes=len(ctx.splits.class_names))


def trial_summary(curves: Curves, objective: Objective) -> dict[str, float]:
    """Every metric at the kept epoch, the generalization gaps included: the numbers a person
    compares trials by, one column each."""
    return at_best_epoch({**curves, **generalization_gaps(curves)}, objective)


def _record(
    trial: optuna.Trial,
    ctx: TrialContext,
    tracker: TrialTracker,
    run_id: str | None,
    curves: Curves,
    state: TrialState,
    value: float | None,
    failure: str | None,
    early: Diagnosis | None,
) -> None:
    diagnosis = early or _diagnose(curves, ctx)
    trial_record.store(trial, diagnosis, curves, failure)
    if ctx.space.study.sampler.regime_aware:
        trial.set_constraint(
            REGIME_CONSTRAINT,
            1.0 if diagnosis.regime in (UNDER_REGULARIZED, OVER_REGULARIZED) else 0.0,
        )
    if run_id is None:  # stopped before its MLflow run existed
        return
    if curves:
        tracker.log_metrics(run_id, trial_summary(curves, ctx.space.objective))
    title = f"{ctx.study_name} trial {trial.number} ({state.name.lower()})"
    tracker.log_diagnosis(run_id, diagnosis, curves, title, ctx.space.objective)
    tracker.finish_trial(
        run_id, TrialEnd(trial.number, state, diagnosis.regime, ctx.space.objective, value, failure)
    )
