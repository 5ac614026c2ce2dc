"""``tune compare``: the study's best config against what the user had (seed 000's own model and
recipe for a built-in, the user's model as given for theirs), retrained and tested the same way
on the same data and seeds, side by side: the headline a user shows their team."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from rich.console import Console

from tune.commands.export import exported_configs, study_name_of
from tune.commands.progress import RetrainProgress
from tune.commands.run import Echo
from tune.commands.train import HeldOut, Plan, Retrain, checked_model, held_out, retrain_seeds
from tune.contract import SEED_CNN, TEST_ACCURACY, TEST_LOSS, Scalar
from tune.engine.config import BASELINE, DEFAULTS, FROM_MODEL, Origin, SearchSpace
from tune.engine.diagnosis import FINAL_GAP_LOSS
from tune.engine.study import load_existing_study
from tune.paths import report_dir
from tune.report.comparison import ArmSummary, comparison_figure, comparison_markdown
from tune.report.curves import learning_curve_figure, save_figure
from tune.tracking.resume import comparison_run
from tune.tracking.tracker import Tracker

BASELINE_LABEL, AS_GIVEN_LABEL, BEST_LABEL = "seed 000 baseline", "model as given", "best config"


def seed_baseline(best: SearchSpace) -> SearchSpace:
    """Seed 000's model and recipe (its CNN, L2 1e-3 on Dense64, dropout 0.5, Adam, batch 32) on
    the best config's data, epochs and precision, so only what tuning chose differs."""
    origin = cast(Origin, best.origin)  # the best config is an export, which has one
    fixed = best.with_fixed(dict(BASELINE), study_name=f"{origin.study}-baseline", origin=None)
    return fixed.with_overrides(model={"name": SEED_CNN})


def model_as_given(best: SearchSpace) -> SearchSpace:
    """The user's model with the penalties, dropout rates and batch norm it carries (every layer
    its own), nothing tune adds, training at the defaults: the baseline trial's config, on the
    best config's data, epochs and precision."""
    values: dict[str, Scalar | None] = {name: None for name in FROM_MODEL}
    values.update({name: value for name, value in DEFAULTS.items() if name not in FROM_MODEL})
    origin = cast(Origin, best.origin)  # the best config is an export, which has one
    return best.with_fixed(values, study_name=f"{origin.study}-as-given", origin=None)


def reference(best: SearchSpace) -> tuple[str, SearchSpace]:
    return (
        (AS_GIVEN_LABEL, model_as_given(best))
        if best.model.source().is_users
        else (BASELINE_LABEL, seed_baseline(best))
    )


@dataclass(frozen=True)
class Comparison:
    """Both configs ready to retrain on the same held-out data and seeds, the reference first,
    each retrain nested under one comparison run."""

    study: str
    seeds: int
    held: HeldOut
    plans: dict[str, Plan]
    tracker: Tracker
    run_id: str

    def arm(self, label: str, progress: RetrainProgress) -> ArmSummary:
        """One config's seeds, trained, or found finished by an earlier run of the comparison."""
        retrains = retrain_seeds(self.plans[label], self.held, self.seeds, self.tracker, progress)
        return _summary(label, retrains)


@dataclass(frozen=True)
class CompareOptions:
    """What a comparison is asked for: the stores, how many seeds, and the epochs and data source
    that take precedence over the best config's."""

    storage: str | None
    tracking_uri: str | None
    seeds: int
    epochs: int | None = None
    data: str | None = None


@contextmanager
def open_comparison(
    target: str, options: CompareOptions, progress: RetrainProgress
) -> Iterator[Comparison]:
    """The comparison of the study's best config with the reference, in its MLflow run: the run
    an interrupted comparison with the same settings (seeds, epochs, data, best trial) left, so
    its finished retrains are kept, or a new one. The run ends FINISHED with the block, KILLED
    when it is interrupted, FAILED when it raises."""
    name, seeds = study_name_of(target), options.seeds
    (best,) = exported_configs(load_existing_study(name, options.storage), 1)
    best = best.with_overrides(data={"source": options.data}, training={"epochs": options.epochs})
    held = held_out(best, progress.line)
    best, _ = checked_model(best, held.splits, f"study {name!r}", f"study {name!r} began")
    label, baseline = reference(best)
    tracker = Tracker(name, options.tracking_uri, draw_curves=learning_curve_figure)
    settings = {
        "seeds": seeds,
        "epochs": best.training.epochs,
        "data.source": best.data.source,
        "best_trial": cast(Origin, best.origin).trial,  # an export has one
    }
    run_id = comparison_run(tracker, tracker.latest_parent(), settings)
    plans = {
        label: Plan(baseline, f"{name}-baseline", run_id, resume=True),
        BEST_LABEL: Plan(best, name, run_id, resume=True),
    }
    try:
        yield Comparison(name, seeds, held, plans, tracker, run_id)
    except BaseException as stop:
        tracker.finish_run(run_id, "KILLED" if isinstance(stop, KeyboardInterrupt) else "FAILED")
        raise
    tracker.finish_run(run_id)


def compare_study(
    target: str,
    *,
    storage: str | None,
    tracking_uri: str | None,
    seeds: int,
    epochs: int | None,
    data: str | None,
    echo: Echo = print,
    console: Console | None = None,
) -> list[ArmSummary]:
    """Lines go to ``echo``, or above a live bar over each config's seeds on ``console``, a
    terminal. Run again after an interrupt, it trains only the seeds that had not finished."""
    progress = RetrainProgress(echo, console)
    options = CompareOptions(storage, tracking_uri, seeds, epochs, data)
    with open_comparison(target, options, progress) as comparison:
        arms = [comparison.arm(label, progress) for label in comparison.plans]
        publish_comparison(comparison, arms, progress)
    return arms


def _summary(label: str, retrains: list[Retrain]) -> ArmSummary:
    return ArmSummary(
        label=label,
        test_accuracies=[retrain.test_accuracy for retrain in retrains],
        test_losses=[retrain.test_loss for retrain in retrains],
        gaps=[retrain.diagnosis.numbers[FINAL_GAP_LOSS] for retrain in retrains],
        regimes=[retrain.diagnosis.regime for retrain in retrains],
        seconds=[retrain.seconds for retrain in retrains],
    )


def publish_comparison(
    comparison: Comparison, arms: list[ArmSummary], progress: RetrainProgress
) -> None:
    """Prints the table. The comparison run holds both arms' means as metrics, the table and the
    plot; the plot is also kept beside the study report."""
    table = comparison_markdown(arms)
    progress.line(table)
    tracker, run_id = comparison.tracker, comparison.run_id
    for arm, key in zip(arms, ("baseline", "best")):
        tracker.log_metrics(
            run_id,
            {
                f"{key}.{TEST_ACCURACY}": statistics.mean(arm.test_accuracies),
                f"{key}.{TEST_LOSS}": statistics.mean(arm.test_losses),
            },
        )
    tracker.log_text(run_id, table, "comparison.md")
    seeds = comparison.seeds
    title = f"{comparison.study}: test accuracy over {seeds} seed{'s' * (seeds > 1)}"
    figure = comparison_figure(arms, title)
    tracker.log_file(run_id, save_figure(figure, report_dir(comparison.study) / "comparison.png"))
