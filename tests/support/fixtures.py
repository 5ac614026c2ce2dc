"""Fixtures shared by ``tests/`` and ``benchmarks/tests/``: each conftest imports them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import cores_per_worker

# What TensorFlow reads for its two thread pools (the Makefile's `workers` target sets them too).
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store folder (what ``mlruns/`` is for a user), so tests never touch the real
    one."""
    store = tmp_path / "mlruns"
    monkeypatch.setenv("TUNE_STORE_DIR", str(store))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNE_STORAGE", raising=False)
    return store


@pytest.fixture(scope="session", autouse=True)
def cores_shared_among_workers() -> Iterator[None]:
    """Under ``pytest -n N`` each worker's TensorFlow (its own and that of every ``tune`` it
    starts) gets the machine's cores divided by N, as ``make workers`` gives each worker: N pools
    as wide as the machine, each oversubscribed, do less than N narrower ones. A variable the
    shell already sets is left alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = str(cores_per_worker())
    names = [name for name in THREAD_VARIABLES if name not in os.environ] if workers > 1 else []
    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            patch.setenv(name, threads)
        yield
