"""What each benchmark leaves behind, in one folder: its numbers as JSON for later runs and tools,
and its table as Markdown for people, the same table it prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer

from tune.paths import store_dir

RESULTS_FILE = "results.json"
# Options the benchmarks share.
DataOption = Annotated[str | None, typer.Option(help="data source [default: the space's]")]
SpaceOption = Annotated[Path, typer.Option(help="the task: a search-space file")]
EpochsOption = Annotated[
    int | None, typer.Option(help="maximum epochs per trial [default: the space's]")
]
OutOption = Annotated[
    Path | None, typer.Option(help="output folder [default: mlruns/bench/<benchmark>/]")
]


def results_folder(out: Path | None, benchmark: str) -> Path:
    return out or store_dir() / "bench" / benchmark


def bench_app(doc: str | None) -> typer.Typer:
    """A benchmark's command line, its help the first line of the module's docstring."""
    return typer.Typer(
        help=(doc or "").splitlines()[0],
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )


def write_results(
    folder: Path,
    results: Mapping[str, object],
    table_file: str,
    table: str,
    echo: Callable[[str], None],
) -> None:
    """``results`` gain the time they were measured at."""
    folder.mkdir(parents=True, exist_ok=True)
    stamped = {**results, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    (folder / RESULTS_FILE).write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
    (folder / table_file).write_text(table, encoding="utf-8")
    echo(table + f"results in {folder}: {RESULTS_FILE}, {table_file}")
