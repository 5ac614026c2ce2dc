"""``tune compare``: the study's best config against what the user had (seed 000's own model and
recipe for a built-in, the user's model as given for theirs), retrained and tested the same way
on the same data and seeds, side by side: the headline a user shows their team."""

from __future__ import annotations

import statistics
from typing import cast

from tune.commands.export import exported_configs, study_name_of
from tune.commands.run import Echo
from tune.commands.train import Plan, Retrain, checked_model, held_out, retrain_seeds
from tune.contract import SEED_CNN, TEST_ACCURACY, TEST_LOSS, Scalar
from tune.engine.config import BASELINE, DEFAULTS, FROM_MODEL, Origin, SearchSpace
from tune.engine.diagnosis import FINAL_GAP_LOSS
from tune.engine.study import load_existing_study
from tune.paths import report_dir
from tune.report.comparison import ArmSummary, comparison_figure, comparison_markdown
from tune.report.curves import learning_curve_figure, save_figure
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


def compare_study(
    target: str,
    *,
    storage: str | None,
    tracking_uri: str | None,
    seeds: int,
    epochs: int | None,
    data: str | None,
    echo: Echo = print,
) -> list[ArmSummary]:
    name = study_name_of(target)
    (best,) = exported_configs(load_existing_study(name, storage), 1)
    best = best.with_overrides(data={"source": data}, training={"epochs": epochs})
    held = held_out(best, echo)
    best, _ = checked_model(best, held.splits, f"study {name!r}", f"study {name!r} began")
    label, baseline = reference(best)
    tracker = Tracker(name, tracking_uri, draw_curves=learning_curve_figure)
    settings = {"seeds": seeds, "epochs": best.training.epochs, "data.source": best.data.source}
    run_id = tracker.start_comparison(tracker.latest_parent(), settings)
    plans = {
        label: Plan(baseline, f"{name}-baseline", run_id),
        BEST_LABEL: Plan(best, name, run_id),
    }
    arms = [
        _summary(label, retrain_seeds(plan, held, seeds, tracker, echo))
        for label, plan in plans.items()
    ]
    table = comparison_markdown(arms)
    echo(table)
    _publish(
        tracker, run_id, arms, table, f"{name}: test accuracy over {seeds} seed{'s' * (seeds > 1)}"
    )
    return arms


def _summary(label: str, retrains: list[Retrain]) -> ArmSummary:
    return ArmSummary(
        label=label,
        test_accuracies=[retrain.tested.test_accuracy for retrain in retrains],
        test_losses=[retrain.tested.test_loss for retrain in retrains],
        gaps=[retrain.diagnosis.numbers[FINAL_GAP_LOSS] for retrain in retrains],
        regimes=[retrain.diagnosis.regime for retrain in retrains],
        seconds=[retrain.seconds for retrain in retrains],
    )


def _publish(tracker: Tracker, run_id: str, arms: list[ArmSummary], table: str, title: str) -> None:
    """The comparison run holds both arms' means as metrics, the table and the plot; the plot is
    also kept beside the study report."""
    for arm, key in zip(arms, ("baseline", "best")):
        tracker.log_metrics(
            run_id,
            {
                f"{key}.{TEST_ACCURACY}": statistics.mean(arm.test_accuracies),
                f"{key}.{TEST_LOSS}": statistics.mean(arm.test_losses),
            },
        )
    tracker.log_text(run_id, table, "comparison.md")
    path = save_figure(
        comparison_figure(arms, title), report_dir(tracker.study_name) / "comparison.png"
    )
    tracker.log_file(run_id, path)
    tracker.finish_run(run_id)
