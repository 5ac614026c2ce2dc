"""Learning-curve figures that show at a glance why a trial got its diagnosis.

Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot, so drawing many
trials in a long study leaks no global figure state and needs no display; saving renders with Agg.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tune.contract import (
    ACCURACY,
    CLEAN_TRAIN_ACCURACY,
    CLEAN_TRAIN_LOSS,
    DATA_LOSS,
    VAL_ACCURACY,
    VAL_DATA_LOSS,
    VAL_LOSS,
    Curves,
    Objective,
    best_epoch,
)
from tune.engine.diagnosis import (
    BALANCED,
    INCONCLUSIVE,
    OVER_REGULARIZED,
    UNDER_REGULARIZED,
    Diagnosis,
)

REGIME_COLOURS: Mapping[str, str] = {
    UNDER_REGULARIZED: "#d62728",
    OVER_REGULARIZED: "#1f77b4",
    BALANCED: "#2ca02c",
    INCONCLUSIVE: "#7f7f7f",
}

_TRAIN = "#333333"
_VAL = "#ff7f0e"


class LineStyle(TypedDict, total=False):
    """Keyword arguments of matplotlib's ``Axes.plot`` that style a line."""

    color: str
    linestyle: str
    linewidth: float
    label: str


class _TitleStyle(TypedDict):
    """Keyword arguments of matplotlib's ``set_title`` and ``suptitle`` for a regime's badge."""

    color: str
    fontweight: str
    bbox: dict[str, str]


_Line = tuple[str, str, LineStyle]
_ACCURACY_LINES: tuple[_Line, ...] = (
    (ACCURACY, "train (with dropout/aug)", {"color": _TRAIN, "linestyle": "--"}),
    (CLEAN_TRAIN_ACCURACY, "clean train", {"color": _TRAIN}),
    (VAL_ACCURACY, "validation", {"color": _VAL}),
)
_LOSS_LINES: tuple[_Line, ...] = (
    (DATA_LOSS, "train (with dropout/aug)", {"color": _TRAIN, "linestyle": "--"}),
    (CLEAN_TRAIN_LOSS, "clean train", {"color": _TRAIN}),
    (VAL_DATA_LOSS, "validation", {"color": _VAL}),
    (VAL_LOSS, "val (with penalty)", {"color": _VAL, "linestyle": ":"}),
)


def learning_curve_figure(
    curves: Curves, *, title: str, diagnosis: Diagnosis, objective: Objective
) -> Figure:
    """One trial, accuracy beside loss, with the verdict and its reason; the dotted line marks the
    epoch whose weights were kept."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    accuracy_axes, loss_axes = fig.subplots(1, 2)
    _draw_trial(accuracy_axes, loss_axes, curves, diagnosis, objective)
    text, style = _heading(title, diagnosis)
    fig.suptitle(text, **style)
    fig.supxlabel(textwrap.fill(diagnosis.reason, 150), fontsize=9)
    return fig


def curves_side_by_side(
    panels: Sequence[tuple[str, Curves, Diagnosis]],
    objective: Objective,
) -> Figure:
    """Several trials as columns (accuracy above loss) on shared scales, so "best", "most overfit"
    and "most underfit" can be compared by eye."""
    if not panels:
        raise ValueError("no trials to draw side by side")
    fig = Figure(figsize=(4.8 * len(panels), 8), layout="constrained")
    axes = fig.subplots(2, len(panels), squeeze=False, sharey="row")
    for column, (title, curves, diagnosis) in enumerate(panels):
        _draw_trial(axes[0, column], axes[1, column], curves, diagnosis, objective)
        text, style = _heading(title, diagnosis)
        axes[0, column].set_title(text, **style)
        axes[1, column].set_xlabel(f"epoch\n{textwrap.fill(diagnosis.reason, 55)}", fontsize=8)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a PNG and clear the figure: without pyplot there is no manager to close, so clearing
    is what frees its artists when a report draws one figure per trial."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    fig.clear()
    return path


def _draw_trial(
    accuracy_axes: Axes, loss_axes: Axes, curves: Curves, diagnosis: Diagnosis, objective: Objective
) -> None:
    best = best_epoch(curves, objective) + 1
    _draw_panel(accuracy_axes, curves, _ACCURACY_LINES, "accuracy", best)
    _draw_panel(loss_axes, curves, _LOSS_LINES, "loss (crossentropy)", best)
    accuracy_axes.set_ylim(0.0, 1.02)
    _shade_gap(loss_axes, curves, REGIME_COLOURS[diagnosis.regime])
    accuracy_axes.legend(fontsize=8)
    loss_axes.legend(fontsize=8)


def _draw_panel(axes: Axes, curves: Curves, lines: Sequence[_Line], ylabel: str, best: int) -> None:
    """Markers on every point keep a one-epoch curve visible; integer ticks label epochs 1..N."""
    for key, label, style in lines:
        if key in curves:
            axes.plot(
                _epochs(curves[key]),
                list(curves[key]),
                label=label,
                marker="o",
                markersize=4,
                **style,
            )
    axes.axvline(best, color="#555555", linestyle="-.", linewidth=1, label=f"best epoch {best}")
    epochs = max(len(values) for values in curves.values())
    axes.set_xlim(0.5, epochs + 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)


def _shade_gap(axes: Axes, curves: Curves, colour: str) -> None:
    train, val = curves[CLEAN_TRAIN_LOSS], curves[VAL_DATA_LOSS]
    axes.fill_between(
        _epochs(train), list(train), list(val), color=colour, alpha=0.18, label="generalization gap"
    )


def _epochs(values: Sequence[float]) -> list[int]:
    return list(range(1, len(values) + 1))


def _heading(title: str, diagnosis: Diagnosis) -> tuple[str, _TitleStyle]:
    """A title that doubles as a coloured badge naming the regime."""
    colour = REGIME_COLOURS[diagnosis.regime]
    badge = {"boxstyle": "round,pad=0.3", "facecolor": colour + "26", "edgecolor": colour}
    return f"{title} — {diagnosis.regime}", {"color": colour, "fontweight": "bold", "bbox": badge}
