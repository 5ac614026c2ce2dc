"""One trial from start to finish: suggest parameters, train (in a child process, see
``tune.isolation``), report every epoch for pruning, diagnose the curves, and record it all in
MLflow and on the Optuna trial. This process never imports TensorFlow."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from tune import trial_record
from tune.datasets import Splits
from tune.diagnosis import Diagnosis, diagnose, generalization_gaps
from tune.isolation import train_isolated
from tune.plots import learning_curve_figure
from tune.search_space import SearchSpace
from tune.study import suggest_params
from tune.tracking import Tracker

OBJECTIVE = "val_data_loss"
Curves = dict[str, list[float]]


@dataclass(frozen=True)
class TrialContext:
    space: SearchSpace
    splits: Splits
    tracker: Tracker
    parent_run_id: str
    study_name: str
    seed: int


def _epoch_hook(trial: optuna.Trial, ctx: TrialContext, run_id: str, curves: Curves) -> Callable[[int, dict[str, float]], None]:
    """Per epoch: keep the curves, log them, report the penalty-free validation loss, maybe prune."""

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves[key].append(value)
        finite = all(math.isfinite(v) for v in logs.values())
        gaps = {key: values[-1] for key, values in generalization_gaps(curves).items()} if finite else {}
        ctx.tracker.log_metrics(run_id, {**logs, **gaps}, step=epoch)
        trial.report(logs[OBJECTIVE], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {OBJECTIVE}={logs[OBJECTIVE]:.4f}")

    return on_epoch


def _summary(curves: Curves) -> dict[str, float]:
    """The trial's numbers at its best epoch (the weights early stopping keeps)."""
    if not curves.get(OBJECTIVE):
        return {}
    best = min(range(len(curves[OBJECTIVE])), key=curves[OBJECTIVE].__getitem__)
    final = {f"best_{key}": values[best] for key, values in curves.items()}
    return {**final, "best_epoch": best + 1, "epochs_run": len(curves[OBJECTIVE])}


def _diagnose(curves: Curves, ctx: TrialContext) -> Diagnosis:
    """A failed or diverged trial has no honest curves to judge; say so rather than guess."""
    values = [v for vs in curves.values() for v in vs]
    if not values or not all(math.isfinite(v) for v in values):
        return Diagnosis("inconclusive", "no finite learning curves: the trial failed or diverged", {})
    return diagnose(curves, ctx.space.thresholds(), num_classes=len(ctx.splits.class_names))


def _record(trial: optuna.Trial, ctx: TrialContext, run_id: str, curves: Curves, state: str) -> Diagnosis:
    diagnosis = _diagnose(curves, ctx)
    trial_record.store(trial, diagnosis, curves)
    numbers = {f"diagnosis.{k}": v for k, v in diagnosis.numbers.items()}  # finite by construction
    ctx.tracker.log_metrics(run_id, {**_summary(curves), **numbers})
    ctx.tracker.set_tags(run_id, {"tune.regime": diagnosis.regime, "tune.diagnosis": diagnosis.reason})
    if curves:
        figure = learning_curve_figure(curves, title=f"{ctx.study_name} trial {trial.number} ({state.lower()})", diagnosis=diagnosis)
        ctx.tracker.log_figure(run_id, figure, "learning_curve.png")
    ctx.tracker.finish_trial(run_id, state)
    return diagnosis


def make_objective(ctx: TrialContext) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, ctx.space)
        run_id = ctx.tracker.start_trial(ctx.parent_run_id, trial.number, params, ctx.study_name)
        trial.set_user_attr(trial_record.RUN_ID, run_id)
        curves: Curves = defaultdict(list)
        state = "FAIL"
        try:
            result = train_isolated(
                params, ctx.splits, model_name=ctx.space.model.name, epochs=ctx.space.training.epochs,
                seed=ctx.seed + trial.number, precision=ctx.space.training.precision,
                clean_train_size=ctx.space.data.clean_train_size, on_epoch=_epoch_hook(trial, ctx, run_id, curves),
            )
            state = "COMPLETE"
            return result.history[OBJECTIVE][result.best_epoch]
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        finally:
            _record(trial, ctx, run_id, dict(curves), state)

    return objective
