"""The start-up sweep on an in-memory study: trials of dead workers are failed and queued again
once; trials of live workers are never touched."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from tune.contract import TrialAttr
from tune.runtime.liveness import STALE_AFTER_S, Worker, recover_dead_trials


def dead_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


def running(study: optuna.Study, dropout: float, **attrs: object) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    trial.suggest_float("dropout", dropout, dropout)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return study.trials[trial.number]


@pytest.fixture
def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study()


@pytest.mark.integration
def test_only_trials_of_dead_workers_are_failed_and_queued_again(study: optuna.Study) -> None:
    me = Worker.this()
    pid, started = dead_pid()
    now = time.time()
    alive_here = running(
        study,
        0.1,
        **{TrialAttr.WORKER: me.to_json(), TrialAttr.HEARTBEAT: now - 10 * STALE_AFTER_S},
    )
    dead_here = running(
        study,
        0.2,
        **{TrialAttr.WORKER: Worker(me.host, pid, started).to_json(), TrialAttr.HEARTBEAT: now},
    )
    alive_elsewhere = running(
        study,
        0.3,
        **{TrialAttr.WORKER: Worker("other-host", 1, 0.0).to_json(), TrialAttr.HEARTBEAT: now},
    )
    silent_elsewhere = running(
        study,
        0.4,
        **{
            TrialAttr.WORKER: Worker("other-host", 2, 0.0).to_json(),
            TrialAttr.HEARTBEAT: now - 2 * STALE_AFTER_S,
        },
    )

    recovered = recover_dead_trials(study)

    assert [trial.number for trial, _ in recovered] == [dead_here.number, silent_elsewhere.number]
    states = {trial.number: trial.state for trial in study.trials}
    assert states[alive_here.number] == states[alive_elsewhere.number] == TrialState.RUNNING, (
        "live workers untouched"
    )
    assert states[dead_here.number] == states[silent_elsewhere.number] == TrialState.FAIL
    assert (
        study.trials[dead_here.number]
        .user_attrs[TrialAttr.FAILURE]
        .startswith(f"its worker {me.host}:{pid} died")
    )
    assert (
        study.trials[silent_elsewhere.number]
        .user_attrs[TrialAttr.FAILURE]
        .startswith("its worker other-host:2 died")
    )
    queued = [trial for trial in study.trials if trial.state == TrialState.WAITING]
    assert [(t.system_attrs["fixed_params"], t.user_attrs[TrialAttr.RETRY_OF]) for t in queued] == [
        ({"dropout": 0.2}, dead_here.number), ({"dropout": 0.4}, silent_elsewhere.number)]


@pytest.mark.integration
def test_a_retry_whose_worker_died_too_is_not_queued_a_third_time(study: optuna.Study) -> None:
    pid, started = dead_pid()
    running(
        study,
        0.5,
        **{
            TrialAttr.WORKER: Worker(Worker.this().host, pid, started).to_json(),
            TrialAttr.RETRY_OF: 0,
        },
    )
    (failed, _), = recover_dead_trials(study)
    assert (
        failed.state == TrialState.RUNNING and study.trials[failed.number].state == TrialState.FAIL
    )
    assert not [trial for trial in study.trials if trial.state == TrialState.WAITING]


def test_a_clock_step_leaves_a_live_worker_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil reports a start time as the boot time plus ticks since boot, and the boot time moves
    with the clock: a 20-minute CI run once saw it move over a second and judged itself dead."""
    me = Worker.this()
    stepped = psutil.boot_time() + 5.0
    monkeypatch.setattr(psutil, "boot_time", lambda: stepped)
    monkeypatch.setattr(psutil._psplatform, "boot_time", lambda: stepped)
    assert psutil.Process().create_time() > me.started + me.boot + 4, (
        "the step moved psutil's start time"
    )
    assert not me.gone()
    assert Worker(me.host, me.pid, me.started, me.boot - 2 * 3600).gone(), (
        "same pid and start, an earlier boot"
    )


def test_a_reused_pid_is_not_the_worker_and_a_record_from_elsewhere_falls_back_to_the_heartbeat() -> None:  # noqa: E501 - the name says what it checks
    me = Worker.this()
    assert not me.gone()
    assert Worker(me.host, me.pid, me.started - 100, me.boot).gone(), "same pid, another process"
    assert Worker.from_json(json.dumps({"host": "h"})) is None and Worker.from_json(None) is None
