"""Which running trials have lost their worker, so that a killed ``tune run`` (``kill -9``, a
power cut, a laptop that never woke up) leaves no trial RUNNING for ever.

Every trial records the worker that runs it (host, pid and the process's start time, so a reused
pid is not mistaken for it) and a heartbeat at each epoch. At start-up each worker sweeps the
study: a RUNNING trial whose worker was on this host and is gone, or whose heartbeat is older
than ``STALE_AFTER_S`` (a worker elsewhere), is failed with the reason, and its parameters are
queued to be tried once more. A trial whose worker lives is never touched. This works on every
storage, the journal file included, which has no heartbeat of its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from tune.contract import TrialAttr

# Longer than any epoch: a worker on another host is only declared dead after this long silent.
STALE_AFTER_S = 3600.0
_SAME_START_S = 1.0
# A clock step (NTP, a laptop's clock set on waking) moves the boot time as the system reports it;
# a reboot moves it by at least the reboot.
_SAME_BOOT_S = 600.0


def _since_boot(process: psutil.Process) -> float:
    """The start time the clock cannot move: psutil's wall-clock start time is the boot time, as
    the clock now puts it, plus the start's ticks since boot."""
    return process.create_time() - psutil.boot_time()


@dataclass(frozen=True)
class Worker:
    host: str
    pid: int
    started: float  # seconds from boot to the process's start: with the pid and boot, one process
    boot: float = 0.0

    @staticmethod
    @cache
    def this() -> Worker:
        return Worker(
            socket.gethostname(), os.getpid(), _since_boot(psutil.Process()), psutil.boot_time()
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: Any) -> Worker | None:  # noqa: ANN401 (whatever the record holds)
        """None for a record written by another version or by hand: such a worker is judged by
        its heartbeat alone."""
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None

    def gone(self) -> bool:
        """Only answerable on the worker's own host."""
        if abs(psutil.boot_time() - self.boot) > _SAME_BOOT_S:
            return True  # started before this boot
        try:
            return abs(_since_boot(psutil.Process(self.pid)) - self.started) > _SAME_START_S
        except psutil.NoSuchProcess:
            return True

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


def claim(trial: optuna.Trial) -> None:
    """Called as a trial starts: this worker runs it."""
    trial.set_user_attr(TrialAttr.WORKER, Worker.this().to_json())
    beat(trial)


def beat(trial: optuna.Trial) -> None:
    trial.set_user_attr(TrialAttr.HEARTBEAT, time.time())


def dead_worker(trial: FrozenTrial, now: float) -> Worker | str | None:
    """The dead worker of a RUNNING trial (or a description when the trial names none); None
    while it may be alive."""
    worker = Worker.from_json(trial.user_attrs.get(TrialAttr.WORKER))
    if worker is not None and worker.host == Worker.this().host:
        return worker if worker.gone() else None
    started = trial.datetime_start.timestamp() if trial.datetime_start else now
    last_sign = float(trial.user_attrs.get(TrialAttr.HEARTBEAT, started))
    if now - last_sign <= STALE_AFTER_S:
        return None
    return worker or f"a worker silent for {now - last_sign:.0f} s"


def recover_dead_trials(study: optuna.Study) -> list[tuple[FrozenTrial, str]]:
    """Fail every RUNNING trial whose worker is dead and queue its parameters again once (a trial
    that was itself a retry is not retried again); returns the trials failed, with the reason."""
    recovered = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = dead_worker(trial, now)
        if worker is None:
            continue
        reason = f"its worker {worker} died; failed by {Worker.this()} at start-up"
        try:
            study._storage.set_trial_user_attr(trial._trial_id, TrialAttr.FAILURE, reason)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker's sweep got there first
        if TrialAttr.RETRY_OF not in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={TrialAttr.RETRY_OF: trial.number})
        recovered.append((trial, reason))
    return recovered
