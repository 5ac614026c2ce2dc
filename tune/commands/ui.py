"""``tune ui``: the MLflow UI on these stores, stopped with ``tune`` however ``tune`` is stopped.

``mlflow ui`` runs a server with worker processes of its own. Were ``tune`` to die alone, they
would keep the port, so the server gets a process group of its own and every signal that ends
``tune`` ends that whole group.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

from tune.processes import handling, signal_group, stop_group

LOOPBACK = "127.0.0.1"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_GRACE_S = 10.0


def ui_command(tracking_uri: str, port: int) -> list[str]:
    """Bound to the loopback interface: a tracking store is nobody else's business by default."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", LOOPBACK, "--port", str(port)]


def serve(command: list[str]) -> int:
    """Run the server until it exits or ``tune`` is told to stop; the exit status is the server's,
    or 128 + the signal that stopped ``tune`` (130 for Ctrl-C, 143 for TERM)."""
    server = subprocess.Popen(command, start_new_session=True)
    received: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        signal_group(server.pid, signal.SIGTERM)

    try:
        with handling(_STOP_SIGNALS, stop):
            code = server.wait()
    finally:
        stop_group(server, _GRACE_S)
    return 128 + received[0] if received else code
