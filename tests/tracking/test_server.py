"""The MLflow server's command line and environment, as ``tune ui``, the workers test and the load
benchmark start it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tune.runtime.processes import LOOPBACK
from tune.tracking.server import (
    JOB_EXECUTION_ENV,
    KEEP_ALIVE_S,
    server_environment,
    tracking_server_command,
)


def test_the_job_runner_is_off_unless_the_user_turned_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(JOB_EXECUTION_ENV, raising=False)
    monkeypatch.setenv("SOMETHING_OF_THE_USERS", "kept")
    environment = server_environment()
    assert environment[JOB_EXECUTION_ENV] == "false"
    assert environment["SOMETHING_OF_THE_USERS"] == "kept"
    monkeypatch.setenv(JOB_EXECUTION_ENV, "true")
    assert server_environment()[JOB_EXECUTION_ENV] == "true"


def test_the_server_listens_on_loopback_and_keeps_idle_connections_open(tmp_path: Path) -> None:
    command = tracking_server_command("sqlite:///runs.db", tmp_path / "art", 5123, workers=2)
    options = dict(zip(command[4::2], command[5::2]))
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert options == {
        "--host": LOOPBACK,
        "--port": "5123",
        "--workers": "2",
        "--backend-store-uri": "sqlite:///runs.db",
        "--artifacts-destination": (tmp_path / "art").resolve().as_uri(),
        "--uvicorn-opts": f"--timeout-keep-alive {KEEP_ALIVE_S}",
    }
