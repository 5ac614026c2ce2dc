"""The study report: which trials overfit, which underfit, which are balanced, and which
hyperparameters move a model from one regime to the other.

Everything is read back from the finished study (trial states, values, params, and the regime,
diagnosis numbers and curves each trial stored as user attributes), so the report can be rebuilt
at any time from any storage without MLflow or TensorFlow. ``report.html`` embeds its images and
styles so it can be mailed or attached as one artifact; the figures themselves, and the plotly
page ``interactive.html``, come from ``tune.study_plots``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial
from rich import box
from rich.console import Console
from rich.table import Table

from tune.diagnosis import INCONCLUSIVE, OVER_REGULARIZED, REGIMES, UNDER_REGULARIZED, regime_counts
from tune.plots import REGIME_COLOURS
from tune.study_plots import draw_plots, html_document, is_log, is_numeric, write_interactive
from tune.trial_record import (
    BASELINE,
    NO_COMPLETED_TRIAL,
    completed_trials,
    diagnosis_numbers,
    trial_curves,
    trial_diagnosis,
    trial_regime,
)

_MAX_BINS = 5
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
    counts = regime_counts(trial_diagnosis(trial) for trial in trials if trial.state.is_finished())
    effects = _effects(completed_trials(trials), distributions)
    showcase = showcase_trials(study)
    images, skipped = draw_plots(study, trials, distributions, effects, showcase, out_dir)
    interactive = write_interactive(study, distributions, out_dir / "interactive.html")
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
    pool = [trial for trial in completed_trials(study.trials) if trial_curves(trial) is not None]
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


def _epochs(trial: FrozenTrial) -> tuple[int | None, int | None]:
    """(best epoch, epochs run), 1-based, from the diagnosis or else from what the pruner saw."""
    numbers = diagnosis_numbers(trial)
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


def _extreme(
    pool: Sequence[FrozenTrial], regime: str, key: str, pick: Callable[..., FrozenTrial]
) -> FrozenTrial | None:
    measured = [trial for trial in pool if key in diagnosis_numbers(trial)]
    candidates = [trial for trial in measured if trial_regime(trial) == regime] or measured
    if not candidates:
        return None
    return pick(candidates, key=lambda trial: diagnosis_numbers(trial)[key])


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
    best = min(completed_trials(trials), key=lambda trial: trial.value, default=None)
    return [_row(trial, distributions, best is not None and trial.number == best.number)
            for trial in trials]


def _row(
    trial: FrozenTrial, distributions: Mapping[str, BaseDistribution], is_best: bool
) -> dict[str, Any]:
    diagnosis = trial_diagnosis(trial)
    best_epoch, epochs = _epochs(trial)
    return {
        "number": trial.number, "state": trial.state.name, "value": trial.value,
        "regime": diagnosis.regime, "reason": diagnosis.reason, "best_epoch": best_epoch,
        "epochs": epochs, "gap_loss": diagnosis.numbers.get("final_gap_loss"),
        "baseline": bool(trial.user_attrs.get(BASELINE, False)), "best": is_best,
        "params": dict(trial.params),
        "params_text": {name: _fmt(value, is_log(distributions.get(name)))
                        for name, value in trial.params.items()},
    }


def _effects(
    complete: Sequence[FrozenTrial], distributions: Mapping[str, BaseDistribution]
) -> dict[str, list[dict[str, Any]]]:
    """Per hyperparameter, the completed trials with diagnosis numbers grouped along its values,
    so a U-shaped objective or a shrinking gap shows up as a column of bin means."""
    measured = [trial for trial in complete if "final_gap_loss" in diagnosis_numbers(trial)]
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
        x = np.log10(x) if is_log(distribution) else x
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
    low, high = (min(values), max(values)) if is_numeric(distribution) else (values[0],) * 2
    log = is_log(distribution)
    label = _fmt(low, log) if low == high else f"{_fmt(low, log)} - {_fmt(high, log)}"
    return {
        "label": label, "low": low, "high": high, "n": len(group),
        "mean_value": float(np.mean([trial.value for trial in group])),
        "mean_gap": float(np.mean([diagnosis_numbers(trial)["final_gap_loss"] for trial in group])),
        "regimes": regime_counts(trial_diagnosis(trial) for trial in group),
    }


# --- report.html ----------------------------------------------------------------------------


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
    return html_document(f"Study report: {study_name}", "\n".join(sections))


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
