"""``tune compare``'s headline: the seed's own model against the study's best config, each
retrained and tested the same way, as a terminal table, a Markdown table and a plot."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from tune.contract import TEST_ACCURACY
from tune.report.formatting import markdown_table


@dataclass(frozen=True)
class ArmSummary:
    """One side of the comparison, one entry per seed."""

    label: str
    test_accuracies: list[float]
    test_losses: list[float]
    gaps: list[float]
    regimes: list[str]
    seconds: list[float]


def spread(values: Sequence[float]) -> float | None:
    """The sample standard deviation over seeds (n - 1 in the denominator: the seeds are a sample
    of the seeds one could train); None for one seed, which has none."""
    return statistics.stdev(values) if len(values) > 1 else None


def mean_and_spread(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± standard deviation`` over seeds, or the mean alone for one seed."""
    mean, std = f"{statistics.mean(values):.{digits}f}", spread(values)
    return mean if std is None else f"{mean} ± {std:.{digits}f}"


def _row(arm: ArmSummary) -> list[str]:
    regimes = ", ".join(f"{count} {regime}" for regime, count in Counter(arm.regimes).items())
    spreads = [
        mean_and_spread(arm.test_accuracies),
        mean_and_spread(arm.test_losses),
        mean_and_spread(arm.gaps, 3),
    ]
    return [arm.label, *spreads, regimes, f"{statistics.mean(arm.seconds):.0f} s"]


_HEADER = ["config", "test accuracy", "test loss", "gap (nats)", "diagnosis", "wall time per seed"]


def comparison_markdown(arms: Sequence[ArmSummary]) -> str:
    """Mean ± standard deviation over seeds; the gap is the retrain's validation minus clean
    training loss at its end, so an over- or under-regularized winner shows."""
    return "\n".join(markdown_table([_HEADER, *(_row(arm) for arm in arms)])) + "\n"


def comparison_figure(arms: Sequence[ArmSummary], title: str) -> Figure:
    """Mean test accuracy with its spread, and every seed as a point, on one axis from 0 to 1."""
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    axes = fig.subplots()
    positions = np.arange(len(arms))
    means = [statistics.mean(arm.test_accuracies) for arm in arms]
    spreads = [spread(arm.test_accuracies) or 0.0 for arm in arms]
    axes.bar(
        positions,
        means,
        yerr=spreads,
        capsize=8,
        color=["#999999", "#2ca02c"][: len(arms)],
        alpha=0.8,
    )
    for position, arm, mean, error in zip(positions, arms, means, spreads):
        axes.scatter(
            [position] * len(arm.test_accuracies),
            arm.test_accuracies,
            color="black",
            s=18,
            zorder=3,
        )
        axes.annotate(
            f"{mean:.3f}",
            (position, mean + error),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
        )
    axes.set_xticks(positions, [arm.label for arm in arms])
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel(TEST_ACCURACY.replace("_", " "))
    axes.set_title(title)
    return fig
