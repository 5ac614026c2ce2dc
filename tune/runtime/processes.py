"""How ``tune`` ends the process groups it starts (the MLflow UI and Optuna dashboard servers, a
benchmark race's arms) and how it takes over stop signals for a while, restoring what was there
before."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import FrameType

from tune.errors import Interrupted

SignalHandler = Callable[[int, FrameType | None], None]
LOOPBACK = "127.0.0.1"  # the only interface the servers listen on
# Ctrl-C, a kill, a closed terminal: the signals every tune process answers by stopping cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SERVER_GRACE_S = 10.0


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


# Stop signals that came during a store write (``interrupts_held``), raised when it ends.
_pending: list[int] = []
_holding = 0


def interrupt(signum: int, frame: FrameType | None) -> None:
    """``tune run``'s handler of Ctrl-C, TERM and HUP: stop at once, or as soon as the store write
    in progress has ended."""
    if _holding:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_held(*, deliver: bool = True) -> Iterator[None]:
    """An interrupt raised inside SQLAlchemy can leave MLflow's SQLite database locked for the rest
    of the process, so every later write fails with "database is locked" and the interrupt itself
    is lost behind that error. A stop signal during a write is raised when the write has ended, or
    with ``deliver=False`` (the record of a trial that is over) at the next ``deliver_held()``."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if deliver and not _holding:
            deliver_held()


def deliver_held() -> None:
    if _pending:
        signum = _pending[0]
        _pending.clear()
        raise Interrupted(signum)


def answer_ctrl_c() -> None:
    """A shell starts each ``&`` job of a script with SIGINT ignored, and Python then leaves it
    ignored: the workers of ``make workers`` would run on after the Ctrl-C that ended make."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def handling(signals: Iterable[signal.Signals], handler: SignalHandler) -> Iterator[None]:
    """A signal this process was started with ignored stays ignored: that is how ``nohup`` asks
    a long study to outlive its terminal's SIGHUP."""
    previous = {
        sig: signal.signal(sig, handler)
        for sig in signals
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(command: list[str], env: Mapping[str, str] | None = None) -> int:
    """Run a server in a process group of its own until it exits or ``tune`` is told to stop, so
    none of its workers outlives ``tune`` on the port. The exit status is the server's, or 128 +
    the signal that stopped ``tune`` (130 for Ctrl-C, 143 for TERM). ``env`` replaces the
    environment, for what should not show on a command line."""
    server = subprocess.Popen(command, start_new_session=True, env=env)
    received: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        signal_group(server.pid, signal.SIGTERM)

    try:
        with handling(STOP_SIGNALS, stop):
            code = server.wait()
    finally:
        stop_group(server, _SERVER_GRACE_S)
    return 128 + received[0] if received else code
