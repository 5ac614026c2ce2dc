"""The study report as plain text: how numbers, trial labels and trial states are written, and the
terminal summary that ``tune run`` and ``tune report`` print.

The writing of values lives here, once, so ``report.html`` (which escapes these strings) and the
terminal show the same trial the same way.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from typing import cast

from optuna.trial import TrialState
from rich import box
from rich.console import Console
from rich.table import Table

from tune.engine.diagnosis import REGIMES
from tune.engine.trial_record import NO_COMPLETED_TRIAL
from tune.report.findings import Report, TrialRow
from tune.report.formatting import fmt

_TEXT_WIDTH = 100
TOP = 30  # trials in the terminal table: a screenful


def states_text(rows: Sequence[TrialRow]) -> str:
    """How many trials, then how many ended in each state, in the order they first occur."""
    counts = Counter(row.state for row in rows)
    states = ", ".join(f"{count} {state.lower()}" for state, count in counts.items())
    return f"{len(rows)} trial{'' if len(rows) == 1 else 's'}" + (f" ({states})" if states else "")


def trial_label(row: TrialRow, star: str, baseline: str) -> str:
    """The trial number with the marks its medium can show: the best trial and the baseline."""
    return f"{row.number}{star if row.best else ''}{baseline if row.baseline else ''}"


def epochs_text(row: TrialRow) -> str:
    return "-" if row.epochs is None else f"{row.best_epoch}/{row.epochs}"


def render_text(report: Report) -> str:
    """A terminal summary of at most 100 columns: counts, then the best ``TOP`` trials."""
    console = Console(
        file=io.StringIO(),
        width=_TEXT_WIDTH,
        color_system=None,
        markup=False,
        emoji=False,
        highlight=False,
    )
    for line in _summary_lines(report):
        console.print(line)
    completed = _completed_rows(report.rows)
    if completed:
        ranked = sorted(
            completed,
            key=lambda row: report.objective.key(cast(float, row.value)),
        )[:TOP]
        console.print(_top_table(ranked, len(completed)))
    console.print(f"report: {report.html_path}", soft_wrap=True)  # a path to paste, never wrapped
    buffer = cast(io.StringIO, console.file)  # the StringIO given above
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _completed_rows(rows: Sequence[TrialRow]) -> list[TrialRow]:
    return [row for row in rows if row.state == TrialState.COMPLETE.name]


def _summary_lines(report: Report) -> list[str]:
    regimes = ", ".join(f"{regime}: {report.counts[regime]}" for regime in REGIMES)
    best = report.best_row
    best_line = (
        f"{NO_COMPLETED_TRIAL}: nothing to rank yet"
        if best is None
        else f"best: trial {best.number}, {report.objective.metric} {fmt(best.value)}, "
        f"{best.regime}"
    )
    return [
        f"study {report.study_name}: {states_text(report.rows)}",
        f"regimes: {regimes}",
        best_line,
        f"recommendation: {report.recommendation.text()}",
    ]


def _top_table(ranked: Sequence[TrialRow], total: int) -> Table:
    table = Table(
        title=f"top {len(ranked)} of {total} completed trials (* best, b baseline)",
        box=box.SIMPLE,
        title_justify="left",
    )
    for column in ("trial", "objective", "regime", "epochs", "gap"):
        table.add_column(column, justify="right" if column != "regime" else "left", no_wrap=True)
    table.add_column("params", ratio=1)
    for row in ranked:
        params = " ".join(f"{name}={text}" for name, text in row.params_text.items())
        table.add_row(
            trial_label(row, " *", " b"),
            fmt(row.value),
            row.regime,
            epochs_text(row),
            fmt(row.gap_loss),
            params,
        )
    return table
