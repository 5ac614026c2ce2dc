"""The study report: which trials overfit, which underfit, which are balanced, and which
hyperparameters move a model from one regime to the other.

Everything is read back from the finished study (trial states, values, params, and the regime,
diagnosis numbers and curves each trial stored as user attributes), so the report can be rebuilt
at any time from any storage without MLflow or TensorFlow. ``report.html`` embeds its images and
styles so it can be mailed or attached as one artifact; ``interactive.html`` holds the plotly
versions for exploring a study in a browser.
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from rich import box
from rich.console import Console
from rich.table import Table

from tune.diagnosis import (
    INCONCLUSIVE,
    OVER_REGULARIZED,
    REGIMES,
    UNDER_REGULARIZED,
    Curves,
    Diagnosis,
    generalization_gaps,
    regime_counts,
)
from tune.plots import REGIME_COLOURS, curves_side_by_side, save_figure

NO_COMPLETED_TRIAL = "no completed trial"
_T = TypeVar("_T")
_MAX_BINS = 5
_GREY = "#999999"
_NOTE = '<p class="note">'
_STAR = " \u2605"
_TEXT_WIDTH = 100
_PLOT_CAPTIONS = {
    "optimization_history": "Objective (best penalty-free validation loss) per completed trial, "
                            "coloured by regime, with the best so far.",
    "param_importances": "How much each hyperparameter explains the objective (optuna "
                         "get_param_importances, its default evaluator).",
    "slices": "Objective (top) and final generalization gap (bottom) along each hyperparameter; "
              "black diamonds are the bin means of the effects tables.",
    "contour_l2_dropout": "The weight penalty against dropout: fill and face colour are the "
                          "objective, the edge colour is the regime.",
    "intermediate_values": "Validation loss per epoch as the pruner saw it: completed trials by "
                           "regime, pruned ones grey and dashed.",
    "learning_curves": "The best, the most overfit and the most underfit completed trials.",
}


@dataclass(frozen=True)
class Report:
    """What ``build_report`` found and wrote; ``files`` is everything to log as artifacts."""

    study_name: str
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    effects: dict[str, list[dict[str, Any]]]
    html_path: Path
    files: list[Path]


class _NothingToDraw(Exception):
    """A plot has no data in this study; its message goes into the report instead of the image."""


def build_report(study: optuna.Study, out_dir: Path) -> Report:
    """Write the PNG plots, ``interactive.html`` and ``report.html`` into ``out_dir``.

    Works for any study state, down to no trials at all: plots without data are replaced by a
    note saying why.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.trials
    distributions = _distributions(trials)
    rows = _rows(trials, distributions)
    counts = regime_counts(_diagnosis(trial) for trial in trials if trial.state.is_finished())
    effects = _effects(_complete(trials), distributions)
    images, skipped = _draw_plots(study, trials, distributions, effects, out_dir)
    interactive = _write_interactive(study, distributions, out_dir / "interactive.html")
    html_path = out_dir / "report.html"
    page = _page(study.study_name, rows, counts, effects, images, skipped)
    html_path.write_text(page, encoding="utf-8")
    return Report(study.study_name, rows, counts, effects, html_path,
                  [*images.values(), interactive, html_path])


def render_text(report: Report, limit: int = 30) -> str:
    """A terminal summary of at most 100 columns: counts, then the ``limit`` best trials."""
    console = Console(file=io.StringIO(), width=_TEXT_WIDTH, color_system=None, markup=False,
                      emoji=False, highlight=False)
    for line in _summary_lines(report):
        console.print(line)
    completed = _completed_rows(report.rows)
    if completed:
        ranked = sorted(completed, key=lambda row: row["value"])[:limit]
        console.print(_top_table(ranked, len(completed)))
    console.print(f"report: {report.html_path}")
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"


def showcase_trials(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The completed trials worth comparing by eye: best, most overfit (largest gap among the
    under-regularized, or overall if none is) and most underfit (lowest clean training accuracy
    among the over-regularized, or overall). Only trials with stored curves qualify; a trial
    appears once, under its first title."""
    pool = [trial for trial in _complete(study.trials) if _curves(trial) is not None]
    picks = {
        "best": min(pool, key=lambda trial: trial.value, default=None),
        "most overfit": _extreme(pool, UNDER_REGULARIZED, "final_gap_loss", max),
        "most underfit": _extreme(pool, OVER_REGULARIZED, "clean_train_accuracy", min),
    }
    chosen: dict[str, FrozenTrial] = {}
    for title, trial in picks.items():
        if trial is not None and trial.number not in {t.number for t in chosen.values()}:
            chosen[title] = trial
    return chosen


# --- reading trials -------------------------------------------------------------------------


def _complete(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    return [
        trial for trial in trials
        if trial.state == TrialState.COMPLETE and trial.value is not None
        and math.isfinite(trial.value)
    ]


def _regime(trial: FrozenTrial) -> str:
    """Trials from before the diagnosis existed (or with a corrupt attribute) count as
    inconclusive rather than breaking the report."""
    regime = trial.user_attrs.get("regime")
    return regime if regime in REGIMES else INCONCLUSIVE


def _numbers(trial: FrozenTrial) -> dict[str, float]:
    stored = trial.user_attrs.get("diagnosis") or {}
    return {
        key: float(value) for key, value in stored.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def _diagnosis(trial: FrozenTrial) -> Diagnosis:
    reason = (trial.user_attrs.get("diagnosis") or {}).get("reason", "no diagnosis recorded")
    return Diagnosis(_regime(trial), str(reason), _numbers(trial))


def _curves(trial: FrozenTrial) -> Curves | None:
    """The stored curves when they hold every honest metric for at least one epoch (what the
    learning-curve figure needs); None for failed or legacy trials."""
    curves = trial.user_attrs.get("curves") or {}
    try:
        generalization_gaps(curves)
    except ValueError:
        return None
    return curves


def _epochs(trial: FrozenTrial) -> tuple[int | None, int | None]:
    """(best epoch, epochs run), 1-based, from the diagnosis or else from what the pruner saw."""
    numbers = _numbers(trial)
    if "best_epoch" in numbers and "epochs" in numbers:
        return int(numbers["best_epoch"]), int(numbers["epochs"])
    reported = trial.intermediate_values
    if not reported:
        return None, None
    return min(reported, key=reported.__getitem__) + 1, len(reported)


def _distributions(trials: Iterable[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every searched hyperparameter in the order the study first suggested it."""
    found: dict[str, BaseDistribution] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            found.setdefault(name, distribution)
    return found


def _is_log(distribution: BaseDistribution | None) -> bool:
    return bool(getattr(distribution, "log", False))


def _is_numeric(distribution: BaseDistribution) -> bool:
    return not isinstance(distribution, CategoricalDistribution)


def _lambda_name(distributions: Mapping[str, BaseDistribution]) -> str:
    return "l2" if "l2" in distributions else "l1"


def _extreme(
    pool: Sequence[FrozenTrial], regime: str, key: str, pick: Callable[..., FrozenTrial]
) -> FrozenTrial | None:
    measured = [trial for trial in pool if key in _numbers(trial)]
    candidates = [trial for trial in measured if _regime(trial) == regime] or measured
    return pick(candidates, key=lambda trial: _numbers(trial)[key]) if candidates else None


# --- rows and effects -----------------------------------------------------------------------


def _fmt(value: Any, log: bool = False) -> str:
    """3 significant digits; log-distributed values in scientific notation so 1e-5 and 3e-4
    line up."""
    if value is None:
        return "-"
    if isinstance(value, bool | str) or (isinstance(value, int) and not log):
        return str(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.2e}" if log else f"{value:.3g}"
    return str(value)


def _rows(
    trials: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution]
) -> list[dict[str, Any]]:
    best = min(_complete(trials), key=lambda trial: trial.value, default=None)
    return [_row(trial, distributions, best is not None and trial.number == best.number)
            for trial in trials]


def _row(
    trial: FrozenTrial, distributions: Mapping[str, BaseDistribution], is_best: bool
) -> dict[str, Any]:
    diagnosis = _diagnosis(trial)
    best_epoch, epochs = _epochs(trial)
    return {
        "number": trial.number, "state": trial.state.name, "value": trial.value,
        "regime": diagnosis.regime, "reason": diagnosis.reason, "best_epoch": best_epoch,
        "epochs": epochs, "gap_loss": diagnosis.numbers.get("final_gap_loss"),
        "baseline": bool(trial.user_attrs.get("baseline", False)), "best": is_best,
        "params": dict(trial.params),
        "params_text": {name: _fmt(value, _is_log(distributions.get(name)))
                        for name, value in trial.params.items()},
    }


def _effects(
    complete: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution]
) -> dict[str, list[dict[str, Any]]]:
    """Per hyperparameter, the completed trials with diagnosis numbers grouped along its values,
    so a U-shaped objective or a shrinking gap shows up as a column of bin means."""
    measured = [trial for trial in complete if "final_gap_loss" in _numbers(trial)]
    return {
        name: [_bin(group, name, distribution) for group in _groups(
            [trial for trial in measured if name in trial.params], name, distribution)]
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
        x = np.log10(x) if _is_log(distribution) else x
        keys = _bin_indices(x).tolist()
    return [[trial for trial, key in zip(trials, keys) if key == wanted]
            for wanted in sorted(set(keys))]


def _bin_indices(x: np.ndarray) -> np.ndarray:
    distinct = np.unique(x)
    if len(distinct) <= _MAX_BINS:
        return np.searchsorted(distinct, x)
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, _MAX_BINS + 1)))
    return np.searchsorted(edges[1:-1], x, side="right")


def _bin(group: Sequence[FrozenTrial], name: str, distribution: BaseDistribution) -> dict[str, Any]:
    values = [trial.params[name] for trial in group]
    low, high = (min(values), max(values)) if _is_numeric(distribution) else (values[0],) * 2
    log = _is_log(distribution)
    label = _fmt(low, log) if low == high else f"{_fmt(low, log)} - {_fmt(high, log)}"
    return {
        "label": label, "low": low, "high": high, "n": len(group),
        "mean_value": float(np.mean([trial.value for trial in group])),
        "mean_gap": float(np.mean([_numbers(trial)["final_gap_loss"] for trial in group])),
        "regimes": regime_counts(_diagnosis(trial) for trial in group),
    }


# --- static plots ---------------------------------------------------------------------------


def _quietly(compute: Callable[[], _T]) -> _T:
    """Run an optuna visualization or importance call without its ExperimentalWarning and
    too-few-trials warnings: the report already says when a plot is missing or uninformative."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        return compute()


def _draw_plots(
    study: optuna.Study, trials: Sequence[FrozenTrial],
    distributions: Mapping[str, BaseDistribution], effects: Mapping[str, list[dict[str, Any]]],
    out_dir: Path,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Save every plot that has data; return the files and, for the others, why they are
    missing."""
    complete = _complete(trials)
    plots: dict[str, Callable[[], Figure]] = {
        "optimization_history": lambda: _history_figure(complete),
        "param_importances": lambda: _importance_figure(study, complete),
        "slices": lambda: _slices_figure(complete, distributions, effects),
        "contour_l2_dropout": lambda: _contour_figure(complete, distributions),
        "intermediate_values": lambda: _intermediate_figure(trials),
        "learning_curves": lambda: _showcase_figure(study),
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
            axes.scatter(x, y, color=REGIME_COLOURS[regime], s=36, zorder=3,
                         label=f"{regime} ({len(mine)})" if label else None)


def _history_figure(complete: Sequence[FrozenTrial]) -> Figure:
    _require_complete(complete)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    axes = fig.subplots()
    numbers = [trial.number for trial in complete]
    values = [trial.value for trial in complete]
    axes.step(numbers, np.minimum.accumulate(values), where="post", color="#333333",
              label="best so far")
    _scatter_regimes(axes, [(t.number, t.value, _regime(t)) for t in complete])
    axes.set_xlabel("trial")
    axes.set_ylabel("objective (val_data_loss)")
    axes.legend(fontsize=8)
    return fig


def _importance_figure(study: optuna.Study, complete: Sequence[FrozenTrial]) -> Figure:
    if len(complete) < 2:
        raise _NothingToDraw("needs at least 2 completed trials")
    try:
        importances = _quietly(lambda: optuna.importance.get_param_importances(study))
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
    complete: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution],
    effects: Mapping[str, list[dict[str, Any]]],
) -> Figure:
    _require_complete(complete)
    names = [name for name in distributions if any(name in t.params for t in complete)]
    if not names:
        raise _NothingToDraw("no hyperparameter is searched")
    fig = Figure(figsize=(max(6.0, 3.0 * len(names)), 6.5), layout="constrained")
    axes = fig.subplots(2, len(names), squeeze=False, sharey="row")
    for column, name in enumerate(names):
        mine = [trial for trial in complete if name in trial.params]
        _draw_slice(axes[0, column], axes[1, column], name, distributions[name], mine,
                    effects[name])
    axes[0, 0].set_ylabel("objective (val_data_loss)")
    axes[1, 0].set_ylabel("final gap (nats)")
    axes[0, 0].legend(fontsize=7)
    return fig


def _draw_slice(
    top: Axes, bottom: Axes, name: str, distribution: BaseDistribution,
    trials: Sequence[FrozenTrial], bins: Sequence[dict[str, Any]],
) -> None:
    x = _slice_positions(top, bottom, name, distribution, trials)
    _scatter_regimes(top, [(xi, t.value, _regime(t)) for xi, t in zip(x, trials)])
    gaps = [(xi, _numbers(t)["final_gap_loss"], _regime(t))
            for xi, t in zip(x, trials) if "final_gap_loss" in _numbers(t)]
    _scatter_regimes(bottom, gaps, label=False)
    centres = [_bin_centre(item, distribution) for item in bins]
    top.plot(centres, [item["mean_value"] for item in bins], "kD-", markersize=5, zorder=4)
    bottom.plot(centres, [item["mean_gap"] for item in bins], "kD-", markersize=5, zorder=4)
    top.set_title(name)
    bottom.set_xlabel(name)


def _slice_positions(
    top: Axes, bottom: Axes, name: str, distribution: BaseDistribution,
    trials: Sequence[FrozenTrial],
) -> list[float]:
    """Numeric values as they are (log axis for log distributions); categories as jittered
    indices so trials sharing a choice stay distinguishable."""
    if _is_numeric(distribution):
        for axes in (top, bottom):
            axes.set_xscale("log" if _is_log(distribution) else "linear")
        return [float(trial.params[name]) for trial in trials]
    choices = distribution.choices
    for axes in (top, bottom):
        axes.set_xticks(range(len(choices)), [str(choice) for choice in choices])
        axes.set_xlim(-0.5, len(choices) - 0.5)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(trials))
    return [choices.index(trial.params[name]) + j for trial, j in zip(trials, jitter)]


def _bin_centre(item: Mapping[str, Any], distribution: BaseDistribution) -> float:
    if not _is_numeric(distribution):
        return float(distribution.choices.index(item["low"]))
    low, high = float(item["low"]), float(item["high"])
    return math.sqrt(low * high) if _is_log(distribution) else (low + high) / 2.0


def _contour_figure(
    complete: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution]
) -> Figure:
    penalty = _lambda_name(distributions)
    if not all(name in distributions and _is_numeric(distributions[name])
               for name in (penalty, "dropout")):
        raise _NothingToDraw("needs numeric l2 (or l1) and dropout in the search space")
    trials = [t for t in complete if penalty in t.params and "dropout" in t.params]
    _require_complete(trials)
    log = _is_log(distributions[penalty])
    x = np.array([float(t.params[penalty]) for t in trials])
    x = np.log10(x) if log else x
    y = np.array([float(t.params["dropout"]) for t in trials])
    z = np.array([t.value for t in trials])
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    axes = fig.subplots()
    _draw_contour_points(fig, axes, x, y, z, [_regime(t) for t in trials])
    axes.set_xlabel(f"log10({penalty})" if log else penalty)
    axes.set_ylabel("dropout")
    return fig


def _draw_contour_points(
    fig: Figure, axes: Axes, x: np.ndarray, y: np.ndarray, z: np.ndarray, regimes: list[str]
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
    points = axes.scatter(x, y, c=z, cmap="viridis", norm=norm, edgecolors=edges,
                          linewidths=2.0, s=70, zorder=3)
    fig.colorbar(points, ax=axes, label="objective (val_data_loss)")
    axes.use_sticky_edges = False
    axes.margins(0.05)
    for regime in dict.fromkeys(regimes):
        axes.scatter([], [], facecolors="none", edgecolors=REGIME_COLOURS[regime],
                     linewidths=2.0, label=regime)
    axes.legend(fontsize=8)


def _intermediate_figure(trials: Sequence[FrozenTrial]) -> Figure:
    reported = [trial for trial in trials if trial.intermediate_values]
    if not reported:
        raise _NothingToDraw("no trial reported a validation loss")
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    axes = fig.subplots()
    for trial in reported:
        steps = sorted(trial.intermediate_values)
        axes.plot([step + 1 for step in steps], [trial.intermediate_values[s] for s in steps],
                  marker="o", markersize=3, **_intermediate_style(trial))
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    axes.legend(unique.values(), unique.keys(), fontsize=8)
    axes.set_xlabel("epoch")
    axes.set_ylabel("val_data_loss")
    return fig


def _intermediate_style(trial: FrozenTrial) -> dict[str, Any]:
    if trial.state == TrialState.COMPLETE:
        regime = _regime(trial)
        return {"color": REGIME_COLOURS[regime], "linewidth": 1.5, "label": regime}
    if trial.state == TrialState.PRUNED:
        return {"color": _GREY, "linestyle": "--", "linewidth": 1.0, "label": "pruned"}
    return {"color": _GREY, "linestyle": ":", "linewidth": 1.0, "label": trial.state.name.lower()}


def _showcase_figure(study: optuna.Study) -> Figure:
    chosen = showcase_trials(study)
    if not chosen:
        raise _NothingToDraw(f"{NO_COMPLETED_TRIAL} with stored learning curves")
    return curves_side_by_side([
        (f"{title}: trial {trial.number}", _curves(trial), _diagnosis(trial))
        for title, trial in chosen.items()
    ])


# --- interactive plots ----------------------------------------------------------------------


def _write_interactive(
    study: optuna.Study, distributions: Mapping[str, BaseDistribution], path: Path
) -> Path:
    """One page, plotly.js embedded once (with the first figure that could be drawn)."""
    penalty = _lambda_name(distributions)
    visualization = optuna.visualization
    builders: dict[str, Callable[[], Any]] = {
        "optimization history": lambda: visualization.plot_optimization_history(study),
        "hyperparameter importances": lambda: visualization.plot_param_importances(study),
        "slices": lambda: visualization.plot_slice(study),
        f"{penalty} x dropout": lambda: visualization.plot_contour(
            study, params=[penalty, "dropout"]),
        "intermediate values": lambda: visualization.plot_intermediate_values(study),
    }
    sections = []
    embed_plotly = True
    for title, build in builders.items():
        body = _interactive_section(build, embed_plotly)
        if embed_plotly and not body.startswith(_NOTE):
            embed_plotly = False
        sections.append(f"<h2>{html.escape(title)}</h2>\n{body}")
    title = f"Interactive plots: {study.study_name}"
    path.write_text(_document(title, "\n".join(sections)), encoding="utf-8")
    return path


def _interactive_section(build: Callable[[], Any], embed_plotly: bool) -> str:
    try:
        return _quietly(build).to_html(full_html=False, include_plotlyjs=embed_plotly)
    # optuna raises a variety of errors for studies too small or too uniform to plot; a note
    # tells the reader more than a missing page would.
    except Exception as error:  # noqa: BLE001
        return f'{_NOTE}not drawn: {html.escape(str(error) or type(error).__name__)}</p>'


# --- report.html ----------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
tr.best td { font-weight: bold; background: #fff8dc; }
.regime { display: inline-block; padding: 1px 8px; border-radius: 4px; color: #fff; }
.reason { font-size: 0.8em; color: #555; text-align: left; max-width: 40em; }
.note { color: #8a6d3b; background: #fcf8e3; padding: 4px 8px; }
img { max-width: 100%; border: 1px solid #ddd; }
figure { margin: 1em 0 2em; }
"""


def _document(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def _page(
    study_name: str, rows: Sequence[dict[str, Any]], counts: Mapping[str, int],
    effects: Mapping[str, list[dict[str, Any]]], images: Mapping[str, Path],
    skipped: Mapping[str, str],
) -> str:
    sections = [
        _summary_html(rows, counts), _LEGEND_HTML, _effects_html(effects),
        _plots_html(images, skipped), _trials_html(rows),
        '<p>Interactive versions of the plots: <a href="interactive.html">interactive.html</a> '
        "(next to this file).</p>",
    ]
    return _document(f"Study report: {study_name}", "\n".join(sections))


def _badge(regime: str, text: str | None = None) -> str:
    return (f'<span class="regime" style="background:{REGIME_COLOURS[regime]}">'
            f"{html.escape(text or regime)}</span>")


def _state_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(row["state"] for row in rows))


def _completed_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["state"] == "COMPLETE" and row["value"] is not None
            and math.isfinite(row["value"])]


def _best_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((row for row in rows if row["best"]), None)


def _states_text(rows: Sequence[dict[str, Any]]) -> str:
    states = ", ".join(f"{count} {state.lower()}" for state, count in _state_counts(rows).items())
    return f"{len(rows)} trial{'' if len(rows) == 1 else 's'}" + (f" ({states})" if states else "")


def _summary_html(rows: Sequence[dict[str, Any]], counts: Mapping[str, int]) -> str:
    regimes = " ".join(_badge(regime, f"{regime}: {counts[regime]}") for regime in REGIMES)
    best = _best_row(rows)
    if best is None:
        best_html = f'<p class="note">{NO_COMPLETED_TRIAL}: nothing to rank yet.</p>'
    else:
        params = ", ".join(f"{html.escape(name)}={html.escape(text)}"
                           for name, text in best["params_text"].items())
        best_html = (
            f"<p><b>Best trial: {best['number']}</b> objective {_fmt(best['value'])} "
            f"{_badge(best['regime'])}<br>{params}</p>"
        )
    return (f"<h2>Summary</h2>\n<p>{html.escape(_states_text(rows))}</p>\n"
            f"<p>Finished trials by regime: {regimes}</p>\n{best_html}")


_LEGEND_HTML = f"""<h2>Regimes and what to do</h2>
<ul>
<li>{_badge(UNDER_REGULARIZED)} the model fits its training data much better than the validation
data (large gap, validation loss rising): increase lambda (l1/l2), dropout or augmentation.</li>
<li>{_badge(OVER_REGULARIZED)} the model cannot fit its training data (low clean training accuracy,
flat, close to validation): decrease lambda, dropout or augmentation.</li>
<li>{_badge("balanced")} neither: this is the region to search around.</li>
<li>{_badge(INCONCLUSIVE)} too short or still improving (pruned early, failed, or no diagnosis
stored): the curves cannot tell yet.</li>
</ul>"""


def _row_start(highlight: bool) -> str:
    return '<tr class="best">' if highlight else "<tr>"


def _effects_html(effects: Mapping[str, list[dict[str, Any]]]) -> str:
    tables = [_effect_table(name, bins) for name, bins in effects.items() if bins]
    if not tables:
        return (f'<h2>Hyperparameter effects</h2>\n<p class="note">{NO_COMPLETED_TRIAL} with '
                "diagnosis numbers: no effects to show.</p>")
    return ("<h2>Hyperparameter effects</h2>\n<p>Completed trials grouped along each "
            "hyperparameter; the lowest mean objective is highlighted.</p>\n" + "\n".join(tables))


def _effect_table(name: str, bins: Sequence[dict[str, Any]]) -> str:
    lowest = min(item["mean_value"] for item in bins)
    header = "".join(f"<th>{_badge(regime)}</th>" for regime in REGIMES)
    body = "\n".join(_effect_row_html(item, item["mean_value"] == lowest) for item in bins)
    return (f"<h3>{html.escape(name)}</h3>\n<table><tr><th>value</th><th>n</th>"
            f"<th>mean objective</th><th>mean gap (nats)</th>{header}</tr>\n{body}\n</table>")


def _effect_row_html(item: Mapping[str, Any], lowest: bool) -> str:
    regimes = "".join(f"<td>{item['regimes'][regime]}</td>" for regime in REGIMES)
    return (f'{_row_start(lowest)}<td class="text">{html.escape(item["label"])}</td>'
            f"<td>{item['n']}</td><td>{_fmt(item['mean_value'])}</td>"
            f"<td>{_fmt(item['mean_gap'])}</td>{regimes}</tr>")


def _plots_html(images: Mapping[str, Path], skipped: Mapping[str, str]) -> str:
    parts = ["<h2>Plots</h2>"]
    for name, caption in _PLOT_CAPTIONS.items():
        if name in images:
            data = base64.b64encode(images[name].read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        else:
            parts.append(f'<p class="note">{name}: not drawn ({html.escape(skipped[name])}).</p>')
    return "\n".join(parts)


def _trials_html(rows: Sequence[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(name for row in rows for name in row["params"]))
    header = "".join(f"<th>{html.escape(h)}</th>" for h in
                     ["trial", "state", "objective", "regime", "best epoch / epochs", "gap",
                      *names, "reason"])
    body = "\n".join(_trial_row_html(row, names) for row in rows)
    return (f"<h2>Trials</h2>\n<p>{_STAR.strip()} best trial, (baseline) the enqueued "
            f"baseline.</p>\n<table><tr>{header}</tr>\n{body}</table>")


def _trial_label(row: Mapping[str, Any], star: str, baseline: str) -> str:
    return f"{row['number']}{star if row['best'] else ''}{baseline if row['baseline'] else ''}"


def _trial_row_html(row: Mapping[str, Any], names: Sequence[str]) -> str:
    params = "".join(f"<td>{html.escape(row['params_text'].get(name, '-'))}</td>"
                     for name in names)
    return (
        f"{_row_start(row['best'])}"
        f'<td class="text">{html.escape(_trial_label(row, _STAR, " (baseline)"))}</td>'
        f"<td>{row['state'].lower()}</td><td>{_fmt(row['value'])}</td>"
        f'<td class="text">{_badge(row["regime"])}</td><td>{_epochs_text(row)}</td>'
        f"<td>{_fmt(row['gap_loss'])}</td>{params}"
        f'<td class="reason">{html.escape(row["reason"])}</td></tr>'
    )


def _epochs_text(row: Mapping[str, Any]) -> str:
    return "-" if row["epochs"] is None else f"{row['best_epoch']}/{row['epochs']}"


# --- terminal summary -----------------------------------------------------------------------


def _summary_lines(report: Report) -> list[str]:
    regimes = ", ".join(f"{regime}: {report.counts[regime]}" for regime in REGIMES)
    best = _best_row(report.rows)
    best_line = (f"{NO_COMPLETED_TRIAL}: nothing to rank yet" if best is None else
                 f"best: trial {best['number']}, objective {_fmt(best['value'])}, {best['regime']}")
    return [f"study {report.study_name}: {_states_text(report.rows)}", f"regimes: {regimes}",
            best_line]


def _top_table(ranked: Sequence[dict[str, Any]], total: int) -> Table:
    table = Table(title=f"top {len(ranked)} of {total} completed trials (* best, b baseline)",
                  box=box.SIMPLE, title_justify="left")
    for column in ("trial", "objective", "regime", "epochs", "gap"):
        table.add_column(column, justify="right" if column != "regime" else "left",
                         no_wrap=True)
    table.add_column("params", ratio=1)
    for row in ranked:
        params = " ".join(f"{name}={text}" for name, text in row["params_text"].items())
        table.add_row(_trial_label(row, " *", " b"), _fmt(row["value"]),
                      row["regime"], _epochs_text(row), _fmt(row["gap_loss"]), params)
    return table
