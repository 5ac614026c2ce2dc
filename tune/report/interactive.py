"""``interactive.html``: the plotly twins of the static figures, for exploring a study in a
browser. It shares the frame of ``report.html`` and sits next to it, which links to it."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.distributions import BaseDistribution

from tune.report.figures import lambda_name, quietly
from tune.report.page import html_document

if TYPE_CHECKING:
    import plotly.graph_objects as go

_NOTE = '<p class="note">'


def write_interactive(
    study: optuna.Study, distributions: Mapping[str, BaseDistribution], path: Path
) -> Path:
    """One page, plotly.js embedded once (with the first figure that could be drawn)."""
    penalty = lambda_name(distributions)
    visualization = optuna.visualization
    builders: dict[str, Callable[[], go.Figure]] = {
        "optimization history": lambda: visualization.plot_optimization_history(study),
        "hyperparameter importances": lambda: visualization.plot_param_importances(study),
        "slices": lambda: visualization.plot_slice(study),
        f"{penalty} x dropout": lambda: visualization.plot_contour(
            study, params=[penalty, "dropout"]
        ),
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
    path.write_text(html_document(title, "\n".join(sections)), encoding="utf-8")
    return path


def _interactive_section(build: Callable[[], go.Figure], embed_plotly: bool) -> str:
    try:
        return quietly(build).to_html(full_html=False, include_plotlyjs=embed_plotly)
    # optuna raises a variety of errors for studies too small or too uniform to plot; a note
    # tells the reader more than a missing page would.
    except Exception as error:  # noqa: BLE001
        return f"{_NOTE}not drawn: {html.escape(str(error) or type(error).__name__)}</p>"
