"""The static study figures that ``report.html`` embeds: history, importances, slices, the regime
map, the penalty-dropout contour, the pruner's view and the showcase learning curves.

They live apart from the analysis so the report's numbers and text can change without touching
matplotlib code, and the reverse; the analysis imports this module, never the other way round.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from tune.contract import Curves, Objective, Scalar
from tune.engine.config import LAMBDAS
from tune.engine.diagnosis import (
    BALANCED,
    FINAL_GAP_LOSS,
    OVER_REGULARIZED,
    REGIMES,
    UNDER_REGULARIZED,
)
from tune.engine.trial_record import (
    NO_COMPLETED_TRIAL,
    best_completed,
    completed_trials,
    diagnosis_numbers,
    trial_curves,
    trial_diagnosis,
    trial_regime,
)
from tune.report.curves import REGIME_COLOURS, LineStyle, curves_side_by_side, save_figure
from tune.report.findings import EffectBin
from tune.report.formatting import is_log, is_numeric
from tune.report.steering import KnobMap

_T = TypeVar("_T")
_GREY = "#999999"


class _NothingToDraw(Exception):
    """A plot has no data in this study; its message goes into the report instead of the image."""


def lambda_name(distributions: Mapping[str, BaseDistribution]) -> str:
    """The weight penalty on the penalty-dropout plane: the first one the study searches on a
    numeric range (a categorical on/off switch has no axis to draw)."""
    searched = (
        name for name in distributions if name in LAMBDAS and is_numeric(distributions[name])
    )
    return next(searched, LAMBDAS[0])


def quietly(compute: Callable[[], _T]) -> _T:
    """Run an optuna visualization or importance call without its ExperimentalWarning and
    too-few-trials warnings: the report already says when a plot is missing or uninformative."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        return compute()


def draw_plots(
    study: optuna.Study,
    objective: Objective,
    trials: Sequence[FrozenTrial],
    distributions: Mapping[str, BaseDistribution],
    effects: Mapping[str, list[EffectBin]],
    knobs: Sequence[KnobMap],
    showcase: Mapping[str, FrozenTrial],
    out_dir: Path,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Save every plot that has data; return the files and, for the others, why they are
    missing, so ``report.html`` can embed the one and explain the other. ``effects`` and
    ``showcase`` come from the report so the slices show its bin means and the learning curves
    its chosen trials."""
    complete = completed_trials(trials)
    plots: dict[str, Callable[[], Figure]] = {
        "optimization_history": lambda: _history_figure(complete, objective),
        "param_importances": lambda: _importance_figure(study, complete),
        "slices": lambda: _slices_figure(complete, distributions, effects, objective),
        "regime_map": lambda: _regime_map_figure(
            knobs, distributions, best_completed(trials, objective)
        ),
        "contour_lambda_dropout": lambda: _contour_figure(complete, distributions, objective),
        "intermediate_values": lambda: _intermediate_figure(trials, objective),
        "learning_curves": lambda: _showcase_figure(showcase, objective),
    }
    images: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for name, draw in plots.items():
        try:
            images[name] = save_figure(draw(), out_dir / f"{name}.png")
        except _NothingToDraw as why:
            skipped[name] = str(why)
    return images, skipped


def _require_complete(complete: Sequence[FrozenTrial]) -> None:
    if not complete:
        raise _NothingToDraw(NO_COMPLETED_TRIAL)


def _scatter_regimes(
    axes: Axes, points: Sequence[tuple[float, float, str]], *, label: bool = True
) -> None:
    for regime in REGIMES:
        mine = [(x, y) for x, y, owner in points if owner == regime]
        if mine:
            x, y = zip(*mine)
            axes.scatter(
                x,
                y,
                color=REGIME_COLOURS[regime],
                s=36,
                zorder=3,
                label=f"{regime} ({len(mine)})" if label else None,
            )


def _history_figure(complete: Sequence[FrozenTrial], objective: Objective) -> Figure:
    _require_complete(complete)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    axes = fig.subplots()
    numbers = [trial.number for trial in complete]
    best_so_far = itertools.accumulate(
        (trial.value for trial in complete), partial(min, key=objective.key)
    )
    axes.step(numbers, list(best_so_far), where="post", color="#333333", label="best so far")
    _scatter_regimes(axes, [(t.number, cast(float, t.value), trial_regime(t)) for t in complete])
    axes.set_xlabel("trial")
    axes.set_ylabel(_objective_label(objective))
    axes.legend(fontsize=8)
    return fig


def _importance_figure(study: optuna.Study, complete: Sequence[FrozenTrial]) -> Figure:
    if len(complete) < 2:
        raise _NothingToDraw("needs at least 2 completed trials")
    try:
        importances = quietly(lambda: optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError) as error:
        raise _NothingToDraw(f"optuna could not rank the hyperparameters: {error}") from error
    if len(importances) < 2 or len(set(importances.values())) == 1:
        raise _NothingToDraw("no hyperparameter explains the objective more than another")
    ranked = sorted(importances.items(), key=lambda item: item[1])
    fig = Figure(figsize=(7, max(3.0, 0.8 + 0.35 * len(ranked))), layout="constrained")
    axes = fig.subplots()
    axes.barh([name for name, _ in ranked], [value for _, value in ranked], color="#4c72b0")
    axes.set_xlabel("importance (share of the objective's variation)")
    return fig


def _slices_figure(
    complete: Sequence[FrozenTrial],
    distributions: Mapping[str, BaseDistribution],
    effects: Mapping[str, list[EffectBin]],
    objective: Objective,
) -> Figure:
    _require_complete(complete)
    names = [name for name in distributions if any(name in t.params for t in complete)]
    if not names:
        raise _NothingToDraw("no hyperparameter is searched")
    fig = Figure(figsize=(max(6.0, 3.0 * len(names)), 6.5), layout="constrained")
    axes = fig.subplots(2, len(names), squeeze=False, sharey="row")
    for column, name in enumerate(names):
        mine = [trial for trial in complete if name in trial.params]
        _draw_slice(
            axes[0, column], axes[1, column], name, distributions[name], mine, effects[name]
        )
    axes[0, 0].set_ylabel(_objective_label(objective))
    axes[1, 0].set_ylabel("final gap (nats)")
    axes[0, 0].legend(fontsize=7)
    return fig


def _draw_slice(
    top: Axes,
    bottom: Axes,
    name: str,
    distribution: BaseDistribution,
    trials: Sequence[FrozenTrial],
    bins: Sequence[EffectBin],
) -> None:
    x = _slice_positions(top, bottom, name, distribution, trials)
    _scatter_regimes(top, [(xi, cast(float, t.value), trial_regime(t)) for xi, t in zip(x, trials)])
    gaps = [
        (xi, diagnosis_numbers(t)[FINAL_GAP_LOSS], trial_regime(t))
        for xi, t in zip(x, trials)
        if FINAL_GAP_LOSS in diagnosis_numbers(t)
    ]
    _scatter_regimes(bottom, gaps, label=False)
    centres = [_bin_centre(item, distribution) for item in bins]
    top.plot(centres, [item.mean_value for item in bins], "kD-", markersize=5, zorder=4)
    bottom.plot(centres, [item.mean_gap for item in bins], "kD-", markersize=5, zorder=4)
    top.set_title(name)
    bottom.set_xlabel(name)


def _slice_positions(
    top: Axes,
    bottom: Axes,
    name: str,
    distribution: BaseDistribution,
    trials: Sequence[FrozenTrial],
) -> list[float]:
    """Categories jittered, so trials sharing a choice stay distinguishable."""
    position = _value_position(top, distribution)
    _value_position(bottom, distribution)
    x = [position(trial.params[name]) for trial in trials]
    if is_numeric(distribution):
        return x
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(trials))
    return [xi + j for xi, j in zip(x, jitter)]


def _bin_centre(item: EffectBin, distribution: BaseDistribution) -> float:
    if not is_numeric(distribution):
        return float(cast(CategoricalDistribution, distribution).choices.index(item.low))
    low, high = float(item.low), float(item.high)
    return math.sqrt(low * high) if is_log(distribution) else (low + high) / 2.0


# The rows of the regime map, from too little regularization to too much.
_MAP_ROWS = (UNDER_REGULARIZED, BALANCED, OVER_REGULARIZED)
_MAP_COLUMNS = 4  # knobs per row of the regime map, so a wide space still fits a page


def _regime_map_figure(
    knobs: Sequence[KnobMap],
    distributions: Mapping[str, BaseDistribution],
    best: FrozenTrial | None,
) -> Figure:
    """Per knob, each trial with a clear regime on that regime's row, the balanced band shaded and
    the best trial circled: where along the knob trials turn from under- to over-regularized."""
    drawn = [knob for knob in knobs if knob.points]
    if not drawn:
        raise _NothingToDraw(f"{NO_COMPLETED_TRIAL} with a clear regime on a searched regularizer")
    columns = min(len(drawn), _MAP_COLUMNS)
    rows = math.ceil(len(drawn) / columns)
    fig = Figure(figsize=(max(6.0, 3.4 * columns), 3.2 * rows), layout="constrained")
    grid = fig.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for axes, knob in zip(grid, drawn):
        _draw_regime_map(axes, knob, distributions[knob.name], best)
    for axes in grid[len(drawn) :]:
        axes.set_visible(False)
    grid[0].legend(fontsize=7, loc="upper left")
    return fig


def _draw_regime_map(
    axes: Axes, knob: KnobMap, distribution: BaseDistribution, best: FrozenTrial | None
) -> None:
    position = _value_position(axes, distribution)
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(knob.points))
    for (value, regime), j in zip(knob.points, jitter):
        axes.scatter(
            position(value),
            _MAP_ROWS.index(regime) + j,
            color=REGIME_COLOURS[regime],
            s=36,
            zorder=3,
        )
    for index, (low, high) in enumerate(knob.band_intervals()):
        low, high = position(low), position(high)
        pad = 0.15 if not is_numeric(distribution) or low == high else 0.0
        axes.axvspan(
            low - pad,
            high + pad,
            color=REGIME_COLOURS[BALANCED],
            alpha=0.18,
            zorder=1,
            label=None if index else "balanced band",
        )
    if best is not None and knob.name in best.params:
        row = _MAP_ROWS.index(trial_regime(best)) if trial_regime(best) in _MAP_ROWS else 1
        axes.scatter(
            position(best.params[knob.name]),
            row,
            s=220,
            facecolors="none",
            edgecolors="black",
            linewidths=1.5,
            zorder=4,
            label=f"best (trial {best.number})",
        )
    axes.set_yticks(range(len(_MAP_ROWS)), _MAP_ROWS)
    axes.set_ylim(-0.5, len(_MAP_ROWS) - 0.5)
    axes.set_title(knob.name)


def _value_position(axes: Axes, distribution: BaseDistribution) -> Callable[[Scalar], float]:
    """Numeric values where they are (log axis for log distributions); categories at their index."""
    if is_numeric(distribution):
        axes.set_xscale("log" if is_log(distribution) else "linear")
        # a range under a decade labels every minor tick
        axes.xaxis.set_minor_formatter(NullFormatter())
        return float
    choices = cast(CategoricalDistribution, distribution).choices
    axes.set_xticks(range(len(choices)), [str(choice) for choice in choices])
    axes.set_xlim(-0.5, len(choices) - 0.5)
    return choices.index


def _contour_figure(
    complete: Sequence[FrozenTrial],
    distributions: Mapping[str, BaseDistribution],
    objective: Objective,
) -> Figure:
    penalty = lambda_name(distributions)
    if not all(
        name in distributions and is_numeric(distributions[name]) for name in (penalty, "dropout")
    ):
        raise _NothingToDraw(
            f"needs a numeric lambda ({', '.join(LAMBDAS)}) and dropout in the search space"
        )
    trials = [t for t in complete if penalty in t.params and "dropout" in t.params]
    _require_complete(trials)
    log = is_log(distributions[penalty])
    x = np.array([float(t.params[penalty]) for t in trials])
    x = np.log10(x) if log else x
    y = np.array([float(t.params["dropout"]) for t in trials])
    z = np.array([t.value for t in trials])
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    axes = fig.subplots()
    _draw_contour_points(
        fig, axes, x, y, z, [trial_regime(t) for t in trials], _objective_label(objective)
    )
    axes.set_xlabel(f"log10({penalty})" if log else penalty)
    axes.set_ylabel("dropout")
    return fig


def _draw_contour_points(
    fig: Figure,
    axes: Axes,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    regimes: list[str],
    label: str,
) -> None:
    """A filled contour only where the points span an area: qhull rejects fewer than 4 distinct
    points and collinear ones, and then the scatter alone still shows the plane."""
    norm = Normalize(float(z.min()), float(z.max()))
    if len(set(zip(x.tolist(), y.tolist()))) >= 4:
        try:
            axes.tricontourf(x, y, z, levels=12, cmap="viridis", norm=norm, alpha=0.6)
        except (ValueError, RuntimeError):
            pass
    edges = [REGIME_COLOURS[regime] for regime in regimes]
    points = axes.scatter(
        x, y, c=z, cmap="viridis", norm=norm, edgecolors=edges, linewidths=2.0, s=70, zorder=3
    )
    fig.colorbar(points, ax=axes, label=label)
    axes.use_sticky_edges = False
    axes.margins(0.05)
    for regime in dict.fromkeys(regimes):
        axes.scatter(
            [],
            [],
            facecolors="none",
            edgecolors=REGIME_COLOURS[regime],
            linewidths=2.0,
            label=regime,
        )
    axes.legend(fontsize=8)


def _intermediate_figure(trials: Sequence[FrozenTrial], objective: Objective) -> Figure:
    reported = [trial for trial in trials if trial.intermediate_values]
    if not reported:
        raise _NothingToDraw(f"no trial reported a {objective.metric}")
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    axes = fig.subplots()
    for trial in reported:
        steps = sorted(trial.intermediate_values)
        axes.plot(
            [step + 1 for step in steps],
            [trial.intermediate_values[s] for s in steps],
            marker="o",
            markersize=3,
            **_intermediate_style(trial),
        )
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes.legend(unique.values(), unique.keys(), fontsize=8)
    axes.set_xlabel("epoch")
    axes.set_ylabel(objective.metric)
    return fig


def _intermediate_style(trial: FrozenTrial) -> LineStyle:
    if trial.state == TrialState.COMPLETE:
        regime = trial_regime(trial)
        return {"color": REGIME_COLOURS[regime], "linewidth": 1.5, "label": regime}
    if trial.state == TrialState.PRUNED:
        return {"color": _GREY, "linestyle": "--", "linewidth": 1.0, "label": "pruned"}
    return {"color": _GREY, "linestyle": ":", "linewidth": 1.0, "label": trial.state.name.lower()}


def _showcase_figure(chosen: Mapping[str, FrozenTrial], objective: Objective) -> Figure:
    if not chosen:
        raise _NothingToDraw(f"{NO_COMPLETED_TRIAL} with stored learning curves")
    return curves_side_by_side(
        [
            # ``showcase_trials`` chooses only trials with stored curves
            (
                f"{title}: trial {trial.number}",
                cast(Curves, trial_curves(trial)),
                trial_diagnosis(trial),
            )
            for title, trial in chosen.items()
        ],
        objective,
    )


def _objective_label(objective: Objective) -> str:
    better = "lower" if objective.direction == "minimize" else "higher"
    return f"objective ({objective.metric}, {better} is better)"
