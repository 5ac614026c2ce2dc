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

from tune.contract import Curves, EpochHook, Objective, Params, Splits, Trainer, at_best_epoch, generalization_gaps
from tune.engine import liveness, trial_record
from tune.engine.diagnosis import INCONCLUSIVE, Diagnosis, diagnose
from tune.engine.space import SearchSpace
from tune.engine.study import suggest_params
from tune.errors import TuneError
from tune.training.isolated import train_isolated

NO_EPOCH = "no epoch finished: the trial failed before its first epoch ended"
INTERRUPTED = "interrupted"


class TrialTracker(Protocol):
    """What a trial writes besides its Optuna record; ``tune.tracking.tracker.Tracker`` writes it
    to MLflow."""

    def start_trial(self, parent_id: str, number: int, params: Params, study_name: str) -> str: ...
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None: ...
    def log_diagnosis(self, run_id: str, diagnosis: Diagnosis, curves: Curves, title: str, objective: Objective) -> None: ...
    def finish_trial(self, run_id: str, state: TrialState, failure: str | None) -> None: ...


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one worker shares."""

    space: SearchSpace
    splits: Splits
    study_name: str
    parent_run_id: str
    seed: int


def make_objective(
    ctx: TrialContext, tracker: TrialTracker, trainer: Trainer = train_isolated
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        curves: defaultdict[str, list[float]] = defaultdict(list)
        state, failure, run_id = TrialState.FAIL, None, None
        try:  # from the first step, so a failure or Ctrl-C at any point is recorded
            liveness.claim(trial)
            params = suggest_params(trial, ctx.space)
            run_id = tracker.start_trial(ctx.parent_run_id, trial.number, params, ctx.study_name)
            trial.set_user_attr(trial_record.RUN_ID, run_id)
            settings = ctx.space.train_settings(ctx.seed + trial.number)
            result = trainer(params, ctx.splits, settings, _epoch_hook(trial, tracker, run_id, curves, settings.objective))
            state = TrialState.COMPLETE
            return result.value
        except optuna.TrialPruned:
            state = TrialState.PRUNED
            raise
        except BaseException as exc:
            failure = _failure_text(exc)
            raise
        finally:
            _record(trial, ctx, tracker, run_id, dict(curves), state, failure)

    return objective


def _epoch_hook(
    trial: optuna.Trial, tracker: TrialTracker, run_id: str, curves: defaultdict[str, list[float]],
    objective: Objective,
) -> EpochHook:
    """Per epoch: keep the curves, log them with the gaps, report the objective, maybe prune."""

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves[key].append(value)
        gaps = {key: values[-1] for key, values in generalization_gaps(curves).items()}
        tracker.log_metrics(run_id, {**logs, **gaps}, step=epoch)
        liveness.beat(trial)
        value = logs[objective.metric]
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {objective.metric}={value:.4f}")

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


def _record(
    trial: optuna.Trial, ctx: TrialContext, tracker: TrialTracker, run_id: str | None, curves: Curves,
    state: TrialState, failure: str | None,
) -> None:
    diagnosis = _diagnose(curves, ctx)
    trial_record.store(trial, diagnosis, curves, failure)
    if run_id is None:  # stopped before its MLflow run existed
        return
    if curves:
        tracker.log_metrics(run_id, at_best_epoch(curves, ctx.space.objective))
    title = f"{ctx.study_name} trial {trial.number} ({state.name.lower()})"
    tracker.log_diagnosis(run_id, diagnosis, curves, title, ctx.space.objective)
    tracker.finish_trial(run_id, state, failure)
