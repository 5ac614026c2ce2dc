"""`tune ui` with real signals on real processes: however `tune` is stopped, the MLflow server
and its workers stop with it and the port is free again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.paths import ROOT
from tests.support.processes import free_port, port_free, serves, wait_for

pytestmark = pytest.mark.integration


def test_terminating_tune_ui_stops_the_mlflow_server_and_frees_the_port(tmp_path: Path) -> None:
    """SIGTERM once left the server on the port; Ctrl-C and SIGHUP take the same path."""
    port = free_port()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tune = subprocess.Popen(
        [sys.executable, "-m", "tune", "ui", "--port", str(port), "--tracking-uri", uri],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: serves(port), 90, f"the MLflow UI on port {port}")
        server = [child for child in psutil.Process(tune.pid).children(recursive=True)]
        assert server, "the UI runs in a child process"
        listening = {conn.laddr.ip for child in server for conn in child.net_connections("tcp")
                     if conn.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, f"bound to loopback only, got {listening}"
        os.kill(tune.pid, signal.SIGTERM)
        assert tune.wait(timeout=30) == 128 + signal.SIGTERM
        wait_for(lambda: port_free(port), 15, f"port {port} to be free")
        assert not [
            child
            for child in server
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        ]
    finally:
        if tune.poll() is None:
            tune.kill()
