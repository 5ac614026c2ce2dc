"""Each trial trains in a child process of its own.

``keras.backend.clear_session()`` does not give all memory back: measured here, RSS grew about
11 MiB per trial in one process (see the memory benchmark), which a long study cannot afford.
A process per trial returns everything to the OS when it exits. The child is forked from a
fork server that has imported ``tune.training.fit`` (and so TensorFlow) once, so a trial starts in
well under a second instead of paying the import again; the server filters TensorFlow's no-GPU
log lines first (``tune.training.trial_server``). The parent keeps Optuna and MLflow: the
child sends each epoch's metrics over a pipe and waits for the parent's word to go on or stop
(pruning). This module itself never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

from tune.contract import EpochHook, Params, Splits, TrainingResult, TrainSettings
from tune.errors import TrialProcessDied, TuneError

# Where ``train_model`` lives, which the fork server imports before forking, through the server's
# start-up module.
FIT_MODULE = "tune.training.fit"
SERVER_MODULE = "tune.training.trial_server"
_GO, _STOP = "go", "stop"


@functools.cache
def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([SERVER_MODULE])
    return context


class _Stopped(Exception):
    """The parent pruned the trial; the child unwinds through train_model's clean-up."""


def _child(conn: Connection, params: Params, splits: Splits, settings: TrainSettings) -> None:
    from tune.training.fit import train_model

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        conn.send(("epoch", (epoch, logs)))
        if conn.recv() == _STOP:
            raise _Stopped

    try:
        conn.send(("done", train_model(params, splits, settings, on_epoch)))
    except _Stopped:
        pass
    except TuneError as exc:
        conn.send(("error", exc))
    except BaseException:  # anything else is a bug; carry its traceback to the parent
        conn.send(("error", RuntimeError(f"the trial's training process failed:\n{traceback.format_exc()}")))


def _receive(conn: Connection, process: multiprocessing.process.BaseProcess) -> tuple[str, Any]:
    try:
        return conn.recv()
    except EOFError:
        process.join(5)
        raise TrialProcessDied(_death(process.exitcode)) from None


def _send(conn: Connection, process: multiprocessing.process.BaseProcess, message: object) -> None:
    try:
        conn.send(message)
    except OSError:  # the pipe broke: the child died between two epochs
        process.join(5)
        raise TrialProcessDied(_death(process.exitcode)) from None


def _death(exitcode: int | None) -> str:
    """Negative exit codes are signals; SIGKILL with no one at the keyboard is usually the
    out-of-memory killer, which is worth saying."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"the trial's training process was killed by {name}{hint}"
    return f"the trial's training process died (exit code {exitcode})"


def train_isolated(params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook) -> TrainingResult:
    """``tune.training.fit.train_model`` in a fresh child process: the ``tune.contract.Trainer``
    that ``tune run`` uses. Exceptions from ``on_epoch`` (pruning) or from training reach the
    caller as usual."""
    conn, child_conn = _context().Pipe()
    process = _context().Process(target=_child, args=(child_conn, dict(params), splits, settings), daemon=True)
    process.start()
    child_conn.close()
    try:
        while True:
            kind, payload = _receive(conn, process)
            if kind == "done":
                return payload
            if kind == "error":
                raise payload
            try:
                on_epoch(*payload)
            except BaseException:
                with contextlib.suppress(OSError):  # a child already gone needs no stop
                    conn.send(_STOP)
                raise
            _send(conn, process, _GO)
    except KeyboardInterrupt:
        process.kill()  # the user wants out now, not at the end of the epoch
        raise
    finally:
        process.join(60)
        if process.is_alive():
            process.kill()
        conn.close()
