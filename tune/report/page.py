"""``report.html``: the summary, which way to move the regularizers, the regime legend, the
effects tables, the embedded figures and every trial, on one page that embeds its images and
styles so it can be mailed or attached as one artifact. The HTML frame lives here too, and
``interactive.html`` borrows it so both pages read alike.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from tune.contract import Objective
from tune.engine.diagnosis import (
    INCONCLUSIVE,
    OVER_REGULARIZED,
    REGIMES,
    UNDER_REGULARIZED,
)
from tune.engine.trial_record import NO_COMPLETED_TRIAL
from tune.report.curves import REGIME_COLOURS
from tune.report.findings import EffectBin, Report, TrialRow
from tune.report.formatting import fmt
from tune.report.steering import span_text
from tune.report.text import epochs_text, states_text, trial_label

_STAR = " \u2605"
_PLOT_CAPTIONS = {
    "optimization_history": (
        "Objective (best penalty-free validation loss) per completed trial, "
        "coloured by regime, with the best so far."
    ),
    "param_importances": (
        "How much each hyperparameter explains the objective (optuna "
        "get_param_importances, its default evaluator)."
    ),
    "slices": (
        "Objective (top) and final generalization gap (bottom) along each hyperparameter; "
        "black diamonds are the bin means of the effects tables."
    ),
    "regime_map": (
        "Each completed trial with a clear regime, along each searched regularizer: the "
        "balanced band is shaded and the best trial circled."
    ),
    "contour_lambda_dropout": (
        "The weight penalty against dropout: fill and face colour are the "
        "objective, the edge colour is the regime."
    ),
    "intermediate_values": (
        "Validation loss per epoch as the pruner saw it: completed trials by "
        "regime, pruned ones grey and dashed."
    ),
    "learning_curves": "The best, the most overfit and the most underfit completed trials.",
}
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


def html_document(title: str, body: str) -> str:
    """One frame and stylesheet for ``report.html`` and ``interactive.html`` so both read alike."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def report_page(report: Report, images: Mapping[str, Path], skipped: Mapping[str, str]) -> str:
    """The page for ``report``; ``images`` are the figures drawn and ``skipped`` says why the
    others are missing, so the reader sees a note where a figure would be."""
    sections = [
        _summary_html(report),
        _steering_html(report),
        _LEGEND_HTML,
        _effects_html(report),
        _plots_html(images, skipped),
        _trials_html(report.rows),
        '<p>Interactive versions of the plots: <a href="interactive.html">interactive.html</a> '
        "(next to this file).</p>",
    ]
    return html_document(f"Study report: {report.study_name}", "\n".join(sections))


def _badge(regime: str, text: str | None = None) -> str:
    return (
        f'<span class="regime" style="background:{REGIME_COLOURS[regime]}">'
        f"{html.escape(text or regime)}</span>"
    )


def _summary_html(report: Report) -> str:
    regimes = " ".join(_badge(regime, f"{regime}: {report.counts[regime]}") for regime in REGIMES)
    best = report.best_row
    if best is None:
        best_html = f'<p class="note">{NO_COMPLETED_TRIAL}: nothing to rank yet.</p>'
    else:
        params = ", ".join(
            f"{html.escape(name)}={html.escape(text)}" for name, text in best.params_text.items()
        )
        best_html = (
            f"<p><b>Best trial: {best.number}</b> {report.objective.metric} {fmt(best.value)} "
            f"{_badge(best.regime)}<br>{params}</p>"
        )
    return (
        f"<h2>Summary</h2>\n<p>{html.escape(states_text(report.rows))}</p>\n"
        f"<p>Finished trials by regime: {regimes}</p>\n{best_html}"
    )


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


def _steering_html(report: Report) -> str:
    """The recommendation first, then the regime map it rests on, one row per knob."""
    advice = report.recommendation
    best = "" if advice.trial is None else f"Best trial {advice.trial} is {_badge(advice.regime)}: "
    moves = "".join(
        f"<li>{html.escape(move.text())} <span "
        f'class="note">({html.escape(move.evidence)})</span></li>'
        for move in advice.moves
    )
    verdict = (
        f"<p>{best}<b>{html.escape(advice.verdict)}</b></p>\n<ul>{moves}</ul>"
        if moves
        else f"<p>{best}<b>{html.escape(advice.verdict)}</b>: {html.escape(advice.note)}.</p>"
    )
    rows = "\n".join(
        f'<tr><td class="text">{html.escape(knob.name)}</td>'
        f"<td>{_values(knob.name, knob.under)}</td>"
        f"<td>{html.escape(span_text(knob.name, knob.band))}</td>"
        f"<td>{_values(knob.name, knob.over)}</td>"
        f"<td>{'-' if knob.trend is None else f'{knob.trend:+.2f}'}</td></tr>"
        for knob in report.knobs
    )
    table = (
        f"<table><tr><th>knob</th><th>{_badge(UNDER_REGULARIZED)} at</th><th>balanced band</th>"
        f"<th>{_badge(OVER_REGULARIZED)} at</th><th>trend</th></tr>\n{rows}\n</table>"
        if rows
        else ""
    )
    return (
        f"<h2>Which way to move the regularizers</h2>\n{verdict}\n<p>Where along each searched "
        "regularizer the completed trials were under-regularized, balanced or over-regularized "
        "(plot: regime_map). Trend: rank correlation of regularization strength with the regime, "
        "+1 when stronger settings always end nearer over-regularized.</p>\n" + table
    )


def _values(name: str, values: Sequence[float]) -> str:
    """A knob's values in one regime (weakest first), as a range: the map's rows stay one line."""
    return html.escape(span_text(name, (values[0], values[-1]) if values else None))


def _row_start(highlight: bool) -> str:
    return '<tr class="best">' if highlight else "<tr>"


def _effects_html(report: Report) -> str:
    objective = report.objective
    tables = [_effect_table(name, bins, objective) for name, bins in report.effects.items() if bins]
    if not tables:
        return (
            f'<h2>Hyperparameter effects</h2>\n<p class="note">{NO_COMPLETED_TRIAL} with '
            "diagnosis numbers: no effects to show.</p>"
        )
    return (
        "<h2>Hyperparameter effects</h2>\n<p>Completed trials grouped along each "
        f"hyperparameter; the best mean {objective.metric} is highlighted.</p>\n"
        + "\n".join(tables)
    )


def _effect_table(name: str, bins: Sequence[EffectBin], objective: Objective) -> str:
    best = min((item.mean_value for item in bins), key=objective.key)
    header = "".join(f"<th>{_badge(regime)}</th>" for regime in REGIMES)
    body = "\n".join(_effect_row_html(item, item.mean_value == best) for item in bins)
    return (
        f"<h3>{html.escape(name)}</h3>\n<table><tr><th>value</th><th>n</th>"
        f"<th>mean objective</th><th>mean gap (nats)</th>{header}</tr>\n{body}\n</table>"
    )


def _effect_row_html(item: EffectBin, best: bool) -> str:
    regimes = "".join(f"<td>{item.regimes[regime]}</td>" for regime in REGIMES)
    return (
        f'{_row_start(best)}<td class="text">{html.escape(item.label)}</td>'
        f"<td>{item.n}</td><td>{fmt(item.mean_value)}</td>"
        f"<td>{fmt(item.mean_gap)}</td>{regimes}</tr>"
    )


def _plots_html(images: Mapping[str, Path], skipped: Mapping[str, str]) -> str:
    parts = ["<h2>Plots</h2>"]
    for name, caption in _PLOT_CAPTIONS.items():
        if name in images:
            data = base64.b64encode(images[name].read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        else:
            parts.append(f'<p class="note">{name}: not drawn ({html.escape(skipped[name])}).</p>')
    return "\n".join(parts)


def _trials_html(rows: Sequence[TrialRow]) -> str:
    names = list(dict.fromkeys(name for row in rows for name in row.params))
    header = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in [
            "trial",
            "state",
            "objective",
            "regime",
            "best epoch / epochs",
            "gap",
            *names,
            "reason",
        ]
    )
    body = "\n".join(_trial_row_html(row, names) for row in rows)
    return (
        f"<h2>Trials</h2>\n<p>{_STAR.strip()} best trial, (baseline) the enqueued "
        f"baseline.</p>\n<table><tr>{header}</tr>\n{body}</table>"
    )


def _trial_row_html(row: TrialRow, names: Sequence[str]) -> str:
    params = "".join(f"<td>{html.escape(row.params_text.get(name, '-'))}</td>" for name in names)
    return (
        f"{_row_start(row.best)}"
        f'<td class="text">{html.escape(trial_label(row, _STAR, " (baseline)"))}</td>'
        f"<td>{row.state.lower()}</td><td>{fmt(row.value)}</td>"
        f'<td class="text">{_badge(row.regime)}</td><td>{epochs_text(row)}</td>'
        f"<td>{fmt(row.gap_loss)}</td>{params}"
        f'<td class="reason">{html.escape(row.reason)}</td></tr>'
    )
