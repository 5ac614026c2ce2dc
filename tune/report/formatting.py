"""How a value is written and scaled, once, for every view of the report: the terminal, the
HTML page, the figures and the effect bins show the same trial the same way."""

from __future__ import annotations

from collections.abc import Sequence

from optuna.distributions import BaseDistribution, CategoricalDistribution

from tune.contract import Scalar


def fmt(value: Scalar | None, log: bool = False) -> str:
    """3 significant digits; log-distributed values in scientific notation so 1e-5 and 3e-4
    line up."""
    if value is None:
        return "-"
    if isinstance(value, bool | str) or (isinstance(value, int) and not log):
        return str(value)
    return f"{value:.2e}" if log else f"{value:.3g}"


def is_log(distribution: BaseDistribution | None) -> bool:
    """Log-searched values are binned, labelled and plotted on a log scale."""
    return bool(getattr(distribution, "log", False))


def is_numeric(distribution: BaseDistribution) -> bool:
    """Numeric values get value ranges and positions; categorical ones get their choices."""
    return not isinstance(distribution, CategoricalDistribution)


def markdown_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """A header row, its rule and the body, one Markdown line each."""
    header, *body = rows
    return [f"| {' | '.join(cells)} |" for cells in (header, ["---"] * len(header), *body)]
