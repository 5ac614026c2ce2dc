"""What each benchmark leaves behind, in one folder: its numbers as JSON for later runs and tools,
and its table as Markdown for people, the same table it prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

RESULTS_FILE = "results.json"


def bench_app(doc: str | None) -> typer.Typer:
    """A benchmark's command line, its help the first line of the module's docstring."""
    return typer.Typer(help=(doc or "").splitlines()[0], no_args_is_help=True, pretty_exceptions_enable=False,
                       add_completion=False)


def write_results(folder: Path, results: dict[str, Any], table_file: str, table: str, echo: Callable[[str], None]) -> None:
    """``results`` gain the time they were measured at."""
    folder.mkdir(parents=True, exist_ok=True)
    stamped = {**results, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    (folder / RESULTS_FILE).write_text(json.dumps(stamped, indent=2) + "\n", encoding="utf-8")
    (folder / table_file).write_text(table, encoding="utf-8")
    echo(table + f"results in {folder}: {RESULTS_FILE}, {table_file}")
