"""``tune run --data-sizes``: the same space tuned at several training-set sizes, one study per
size, then how the balanced band moves as the data grows (``tune.report.data_sizes``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import optuna

from tune.commands.progress import Echo
from tune.commands.run import RunOverrides, resolve_space
from tune.errors import SpaceError
from tune.paths import report_dir
from tune.report.data_sizes import (
    size_markdown,
    size_rows,
    size_study_name,
    write_size_report,
)

Run = Callable[[Path, RunOverrides], optuna.Study]


def parse_sizes(text: str) -> list[int]:
    """``5000,10000,20000``: distinct whole numbers, smallest first."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise SpaceError(
            "command-line option: --data-sizes: expected whole numbers separated by commas, got "
            f"{text!r}"
        ) from None
    if len(set(sizes)) != len(sizes) or min(sizes) < 1:
        raise SpaceError(
            "command-line option: --data-sizes: sizes must be distinct and at least 1, got "
            f"{text!r}"
        )
    return sorted(sizes)


def run_data_sizes(
    path: Path, overrides: RunOverrides, sizes: list[int], run: Run, echo: Echo
) -> list[Path]:
    """Every size's space is validated before the first study starts, so a bad size fails early."""
    name = resolve_space(path, overrides).study_name(path)
    plans = {
        size: dataclasses.replace(overrides, train_subset=size, study=size_study_name(name, size))
        for size in sizes
    }
    for plan in plans.values():
        resolve_space(path, plan)
    studies = {size: run(path, plan) for size, plan in plans.items()}
    files = write_size_report(name, studies, report_dir(name))
    echo(
        size_markdown(name, size_rows(studies))
        + "\n"
        + "\n".join(f"written: {path}" for path in files)
    )
    return files
