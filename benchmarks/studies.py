"""Real ``tune run`` studies for the benchmarks, in stores of their own: a space whose trials all
train the same number of epochs, and a scratch store for a study run in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tune.engine.config import dump_space, load_space
from tune.paths import STORE_ENV

DEFAULT_SPACE = Path("search_spaces/bench_peers.yaml")


def fixed_length_space(
    space_path: Path,
    folder: Path,
    *,
    data: str | None,
    trials: int,
    epochs: int,
    **training: Any,
) -> Path:
    """The space with no pruner and ``trials`` trials of ``epochs`` epochs (early stopping as the
    space has it), written into ``folder``; ``training`` overrides more of its training section."""
    space = load_space(space_path).with_overrides(
        data={"source": data},
        training={"epochs": epochs, **training},
        study={"trials": trials, "timeout": None, "pruner": {"type": "none"}},
    )
    path = folder / "space.yaml"
    path.write_text(dump_space(space, f"fixed-length trials, from {space_path}"), encoding="utf-8")
    return path


@contextmanager
def scratch_store(folder: Path) -> Iterator[Path]:
    """``tune``'s store (journal, MLflow, reports) moved into ``folder`` while the block runs."""
    previous = os.environ.get(STORE_ENV)
    os.environ[STORE_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(STORE_ENV)
        else:
            os.environ[STORE_ENV] = previous
