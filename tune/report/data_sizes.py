"""How the balanced band moves as the training set grows: one study per training-set size
(``tune run --data-sizes``), each knob's band and best value side by side, so a config tuned on a
subset can be corrected before training on everything. More data regularizes by itself, so the
band usually slides towards weaker settings as the size grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import optuna
from matplotlib.figure import Figure

from tune.engine.diagnosis import BALANCED
from tune.engine.study import study_objective
from tune.engine.trial_record import best_completed, trial_regime
from tune.report.curves import REGIME_COLOURS, save_figure
from tune.report.formatting import fmt, is_log
from tune.report.steering import KnobMap, knob_maps, span_text

FIGURE_FILE, TABLE_FILE = "data_sizes.png", "data_sizes.md"


def size_study_name(name: str, size: int) -> str:
    """Each size is a study of its own: its trials never mix with another size's."""
    return f"{name}-n{size}"


@dataclass(frozen=True)
class SizeRow:
    """One knob at one training-set size: its map there and the best trial's value and regime."""

    size: int
    knob: KnobMap
    best_value: float | None
    best_regime: str
    log: bool


def size_rows(studies: Mapping[int, optuna.Study]) -> dict[str, list[SizeRow]]:
    """Per knob, one row per size (smallest first) where the study searched it."""
    rows: dict[str, list[SizeRow]] = {}
    for size in sorted(studies):
        study = studies[size]
        best = best_completed(study.trials, study_objective(study))
        for knob in knob_maps(study.trials):
            value = None if best is None else best.params.get(knob.name)
            regime = "-" if best is None else trial_regime(best)
            log = is_log(
                next(
                    t.distributions[knob.name] for t in study.trials if knob.name in t.distributions
                )
            )
            rows.setdefault(knob.name, []).append(SizeRow(size, knob, value, regime, log))
    return rows


def size_markdown(name: str, rows: Mapping[str, list[SizeRow]]) -> str:
    lines = [
        f"# How the balanced band of `{name}` moves with the training-set size",
        "",
        "| knob | training images | balanced band | best trial's value | best trial's regime | "
        "trials with a clear regime |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for knob, per_size in rows.items():
        lines += [
            f"| {knob} | {row.size} | {span_text(knob, row.knob.band)} | {fmt(row.best_value)} | "
            f"{row.best_regime} | {len(row.knob.points)} |"
            for row in per_size
        ]
    return "\n".join(lines) + "\n"


def size_figure(rows: Mapping[str, list[SizeRow]]) -> Figure:
    """Per knob, a bar over the balanced band at each size and the best trial's value as a dot."""
    fig = Figure(figsize=(max(6.0, 3.4 * len(rows)), 3.6), layout="constrained")
    for axes, (knob, per_size) in zip(
        fig.subplots(1, max(len(rows), 1), squeeze=False)[0], rows.items()
    ):
        for index, row in enumerate(per_size):
            for low, high in row.knob.band_intervals():
                axes.plot(
                    [float(low), float(high)],
                    [index, index],
                    color=REGIME_COLOURS[BALANCED],
                    linewidth=8,
                    alpha=0.5,
                    solid_capstyle="butt",
                )
            if row.best_value is not None:
                axes.scatter(
                    float(row.best_value),
                    index,
                    color=REGIME_COLOURS.get(row.best_regime, "#333333"),
                    edgecolors="black",
                    s=60,
                    zorder=3,
                )
        axes.set_xscale("log" if per_size[0].log else "linear")
        axes.set_yticks(range(len(per_size)), [f"{row.size:,}" for row in per_size])
        axes.set_ylim(-0.5, len(per_size) - 0.5)
        axes.set_title(knob)
        axes.set_xlabel("balanced band (bar), best trial (dot, its regime's colour)")
    fig.supylabel("training images")
    return fig


def write_size_report(name: str, studies: Mapping[int, optuna.Study], out_dir: Path) -> list[Path]:
    rows = size_rows(studies)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / TABLE_FILE
    table.write_text(size_markdown(name, rows), encoding="utf-8")
    return [table, save_figure(size_figure(rows), out_dir / FIGURE_FILE)]
