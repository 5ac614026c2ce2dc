"""Running ``tune`` as a user does, in child processes, and waiting on what they serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from tests.support.paths import ROOT


def tune_cli(
    *args: str, env: Mapping[str, str | None] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a child process, as a user would; ``env`` adds to this
    process's environment, and a variable given as None is left out."""
    merged = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tune", *args], capture_output=True, text=True, timeout=timeout,
        env={key: value for key, value in merged.items() if value is not None}, cwd=ROOT,
    )


def processes_in(store: Path) -> list[list[str]]:
    """The command lines of every live process whose environment names a store inside ``store``
    (``TUNE_STORE_DIR``): what a ``tune`` started there left running."""
    left = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("TUNE_STORE_DIR", "").startswith(str(store)):
                left.append(process.cmdline())
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return left


def store_env(store: Path) -> dict[str, str | None]:
    """What the ``stores`` fixture does to the environment, for a child process: its own store
    folder, and no tracking URI or storage from the shell."""
    return {"TUNE_STORE_DIR": str(store), "MLFLOW_TRACKING_URI": None, "TUNE_STORAGE": None}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def serves(port: int) -> bool:
    """Whether an MLflow server answers its health check on ``port``."""
    return answers(f"http://127.0.0.1:{port}/health")


def cores_per_worker() -> int:
    """This machine's cores, divided among the workers of ``pytest -n N``: how many CPU-bound
    child processes one test may keep running side by side."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, len(os.sched_getaffinity(0)) // workers)
