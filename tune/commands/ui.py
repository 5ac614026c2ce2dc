"""``tune ui``: the MLflow UI on these stores, stopped with ``tune`` however ``tune`` is stopped.

``mlflow ui`` runs a server with worker processes of its own. Were ``tune`` to die alone, they
would keep the port, so the server gets a process group of its own and every signal that ends
``tune`` ends that whole group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

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
        _signal_group(server.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        code = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(server)
    return 128 + received[0] if received else code


def _stop_group(server: subprocess.Popen[bytes]) -> None:
    """The server's workers may outlive the server's main process: TERM them, then KILL."""
    _signal_group(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(server.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
