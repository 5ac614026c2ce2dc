"""Trials train in a child process, which serves a few trials and is then replaced.

``keras.backend.clear_session()`` does not give all memory back: measured here, RSS grew about
11 MiB per trial in one process (see the memory benchmark), which a long study cannot afford. So
trials never train in the study's process, and a trial process is retired after
``TRIALS_PER_PROCESS`` trials, returning everything to the OS. Not one process per trial: a new
process pays TensorFlow's start-up (thread pools, oneDNN kernels) in its first epoch, measured
here at about 2 s a trial on top of a second outside ``fit`` (``make bench-overhead``).

The process is forked from a fork server that has imported ``tune.training.fit`` (and so
TensorFlow) once; the server filters TensorFlow's no-GPU log lines first
(``tune.training.trial_server``); ``start_fork_server`` starts the server early, so TensorFlow
loads while the study loads its data. The splits cross to the child once per process,
not once per trial. The parent keeps Optuna and MLflow: the child sends each epoch's metrics over
a pipe and waits for the parent's word to go on or stop (pruning). Not thread-safe: one study
process runs one trial at a time. This module itself never imports TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, cast

from tune.contract import (
    EpochHook,
    ModelFacts,
    ModelSource,
    Params,
    Splits,
    TrainingResult,
    TrainSettings,
)
from tune.errors import TrialProcessDied, TuneError

# Where ``train_model`` lives, which the fork server imports before forking, through the server's
# start-up module.
FIT_MODULE = "tune.training.fit"
SERVER_MODULE = "tune.training.trial_server"
# About 110 MiB of growth at most (see above), for a restart every ten trials.
TRIALS_PER_PROCESS = 10
_DATA, _TRIAL, _DESCRIBE, _GO, _STOP = "data", "trial", "describe", "go", "stop"
# How long a trial process may take to unwind after a stop or to exit when retired.
_UNWIND_S = 30.0


@functools.cache
def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([SERVER_MODULE])
    return context


class _Stopped(Exception):
    """The parent pruned the trial; the child unwinds through train_model's clean-up."""


def _serve(conn: Connection) -> None:
    """The trial process: hold the splits it was sent, train each trial it is sent, until the
    parent closes the pipe. An error that is not ours leaves the process in an unknown state, so
    it reports it and exits."""
    # A no-op after the fork server's preload; multiprocessing swallows an ImportError there, and
    # a trial would then train with TensorFlow's logs unfiltered: raise it here instead.
    importlib.import_module(SERVER_MODULE)
    from tune.training.fit import train_model
    from tune.training.models import describe

    splits: Splits | None = None
    while True:
        try:
            kind, *job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == _DATA:
            (splits,) = job
            continue
        try:
            if kind == _DESCRIBE:
                conn.send(("done", describe(*job)))
                continue
            conn.send(
                (
                    "done",
                    train_model(
                        # the parent sends the data before any trial
                        job[0],
                        cast(Splits, splits),
                        job[1],
                        functools.partial(_report_epoch, conn),
                    ),
                )
            )
        except _Stopped:
            conn.send(("stopped", None))
        except TuneError as exc:
            conn.send(("error", exc))
        # anything else is a bug; carry its traceback to the parent
        except BaseException:  # noqa: BLE001
            with contextlib.suppress(OSError):
                conn.send(
                    (
                        "error",
                        RuntimeError(
                            f"the trial's training process failed:\n{traceback.format_exc()}"
                        ),
                    )
                )
            return


def _report_epoch(conn: Connection, epoch: int, logs: dict[str, float]) -> None:
    conn.send(("epoch", (epoch, logs)))
    if conn.recv() == _STOP:
        raise _Stopped


@dataclass
class _TrialProcess:
    process: BaseProcess
    conn: Connection
    splits: Splits | None = None
    served: int = 0

    def receive(self) -> tuple[str, Any]:
        try:
            return self.conn.recv()
        except EOFError:
            raise self._died() from None

    def send(self, message: object) -> None:
        try:
            self.conn.send(message)
        except OSError:  # the pipe broke: the child died between two epochs
            raise self._died() from None

    def stop(self) -> bool:
        """Ask the child to abandon its trial; True once it has unwound and can take another."""
        with contextlib.suppress(OSError, EOFError):
            self.conn.send(_STOP)
            return self.conn.poll(_UNWIND_S) and self.conn.recv()[0] == "stopped"
        return False

    def _died(self) -> TrialProcessDied:
        self.process.join(5)
        return TrialProcessDied(_death(self.process.exitcode))


def _death(exitcode: int | None) -> str:
    """Negative exit codes are signals; SIGKILL with no one at the keyboard is usually the
    out-of-memory killer, which is worth saying."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"the trial's training process was killed by {name}{hint}"
    return f"the trial's training process died (exit code {exitcode})"


_current: _TrialProcess | None = None


def start_fork_server() -> None:
    """Start the fork server without waiting for it, so TensorFlow loads while the study loads its
    data rather than in the first trial's time."""
    _context()
    multiprocessing.forkserver.ensure_running()


def _trial_process() -> _TrialProcess:
    """The running trial process, or a new one."""
    global _current
    if _current is None or not _current.process.is_alive():
        close_trial_process()
        conn, child_conn = _context().Pipe()
        process = _context().Process(target=_serve, args=(child_conn,), daemon=True)
        process.start()
        child_conn.close()
        _current = _TrialProcess(process, conn)
    return _current


def close_trial_process(*, kill: bool = False) -> None:
    """Retire the trial process: it exits when its pipe closes (at once with ``kill``)."""
    global _current
    if _current is None:
        return
    current, _current = _current, None
    if kill:
        current.process.kill()
    current.conn.close()
    current.process.join(_UNWIND_S)
    if current.process.is_alive():
        current.process.kill()
        current.process.join()


def _stop_fork_server() -> None:
    """The fork server holds this process's stdout and stderr. Left alone after an early exit (a
    bad data source, an interrupt), it goes on importing TensorFlow, and anything reading those
    pipes (``make``, ``| tee``, a script) waits seconds for it after this process has ended."""
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@atexit.register
def _shut_down() -> None:
    """The trial process first, so it ends its own way, then the server it was forked from."""
    close_trial_process()
    _stop_fork_server()


def describe_isolated(
    source: ModelSource, input_shape: tuple[int, ...], num_classes: int
) -> ModelFacts:
    """``tune.training.models.describe`` in the trial process, which goes on to train the study's
    trials: the study process learns what the model holds without loading TensorFlow."""
    worker = _trial_process()
    worker.send((_DESCRIBE, source, tuple(input_shape), num_classes))
    kind, payload = worker.receive()
    if kind == "error":
        if not isinstance(payload, TuneError):
            close_trial_process(kill=True)
        raise payload
    return payload


def train_isolated(
    params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
) -> TrainingResult:
    """``tune.training.fit.train_model`` in the trial process: the ``tune.contract.Trainer``
    that ``tune run`` uses. Exceptions from ``on_epoch`` (pruning) or from training reach the
    caller as usual; after anything but a finished, pruned or diverged trial the process is
    replaced, so the next trial starts in a clean one."""
    worker, reusable = _trial_process(), False
    try:
        if worker.splits is not splits:
            worker.send((_DATA, splits))
            worker.splits = splits
        worker.send((_TRIAL, dict(params), settings))
        while True:
            kind, payload = worker.receive()
            if kind == "done":
                reusable = True
                return payload
            if kind == "error":
                reusable = isinstance(payload, TuneError)
                raise payload
            try:
                on_epoch(*payload)
            except KeyboardInterrupt:  # the user wants out now, not at the end of the epoch
                raise
            except BaseException:
                reusable = worker.stop()
                raise
            worker.send(_GO)
    finally:
        worker.served += 1
        if not reusable or worker.served >= TRIALS_PER_PROCESS:
            close_trial_process(kill=not reusable)
