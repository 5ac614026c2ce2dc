"""How ``tune`` ends the process groups it starts (the MLflow UI server, a benchmark race's arms)
and how it takes over stop signals for a while, restoring what was there before."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from types import FrameType

SignalHandler = Callable[[int, FrameType | None], None]


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """A group already gone has nothing left to signal."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_group(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """The leader and every process it started (server workers, trial processes, a fork server),
    which may outlive the leader: SIGTERM, then SIGKILL for whatever outlives the grace."""
    signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace_s)
    signal_group(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def handling(signals: Iterable[signal.Signals], handler: SignalHandler) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
