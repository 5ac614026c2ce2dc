"""`tune run` stopped by real signals on real processes: the running trial ends as FAIL with the
reason "interrupted", its training process is gone, no MLflow run is left RUNNING, one line says
how to resume, and the exit status is 128 + the signal."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.support.paths import ROOT
from tests.support.processes import wait_for
from tests.support.spaces import tiny_space, write_space
from tune.runtime.storage import open_storage
from tune.tracking.tracker import LEARNING_CURVE_FILE, ROLE_TAG

pytestmark = pytest.mark.integration

STUDY = "interrupted"
# Trial 0 must finish before trial 1 trains; then a signal lands with three epochs to go.
SIGNAL_EPOCHS = 4


def start_study(
    tmp_path: Path,
    trials: int = 50,
    log: str = "",
    epochs: int = 8,
    ignoring: tuple[signal.Signals, ...] = (),
) -> subprocess.Popen[bytes]:
    """``ignoring``: signals the process starts with ignored, as ``nohup`` leaves SIGHUP and a
    shell leaves SIGINT for each ``&`` job of a script (the workers of ``make workers``)."""
    space = write_space(
        tmp_path / "space.yaml",
        tiny_space(
            study={"name": STUDY, "trials": trials, "pruner": {"type": "none"}},
            training={"epochs": epochs},
        ),
    )
    env = {
        **os.environ,
        "TUNE_STORE_DIR": str(tmp_path / "mlruns"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONFAULTHANDLER": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("TUNE_STORAGE", None)
    with (
        (tmp_path / f"out{log}.txt").open("w") as out,
        (tmp_path / f"err{log}.txt").open("w") as err,
    ):
        return subprocess.Popen(
            [sys.executable, "-m", "tune", "run", str(space)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            preexec_fn=lambda: [signal.signal(sig, signal.SIG_IGN) for sig in ignoring],
        )


def wait_until_training(
    tmp_path: Path, number: int, tune: subprocess.Popen[bytes], timeout: float = 240
) -> None:
    """Until trial ``number`` has reported an epoch: then it is mid-training, the moment that
    matters."""
    journal = tmp_path / "mlruns/optuna/journal.log"
    storage = None  # opened once, then read on from where it was (a journal is only appended to)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert tune.poll() is None, (
            f"tune run ended early: {(tmp_path / 'err.txt').read_text()[-3000:]}"
        )
        if storage is None and journal.exists():
            storage = open_storage(f"journal:{journal}")
        if storage is not None:
            trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)
            if len(trials) > number and trials[number].intermediate_values:
                return
        time.sleep(0.5)
    raise AssertionError(f"trial {number} reported no epoch within {timeout:.0f} s")


def what_runs() -> str:
    """The machine's load and its busiest processes, to tell a hang from a starved run."""
    processes = list(psutil.process_iter())
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent()
    time.sleep(1)
    usage = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            usage.append((process.cpu_percent(), process.pid, " ".join(process.cmdline())[:150]))
    top = "; ".join(
        f"{cpu:.0f}% {pid} {command}" for cpu, pid, command in sorted(usage, reverse=True)[:6]
    )
    return f"load {os.getloadavg()}, busiest: {top}"


@dataclass
class Stopped:
    """What a signal to ``tune run`` mid-study left: its exit, how long it took, its stderr, and
    the training processes it had when the signal came."""

    root: Path
    sig: signal.Signals
    returncode: int
    waited: float
    err: str
    trainers: list[psutil.Process]


def stop_mid_study(
    root: Path,
    sig: signal.Signals,
    ignoring: tuple[signal.Signals, ...] = (),
    hangup_first: bool = False,
) -> Stopped:
    """``sig`` once trial 1 trains; with ``hangup_first``, a SIGHUP then, and ``sig`` once trial 2
    trains."""
    tune = start_study(root, ignoring=ignoring, epochs=SIGNAL_EPOCHS)
    try:
        wait_until_training(root, 1, tune)
        if hangup_first:
            os.kill(tune.pid, signal.SIGHUP)
            wait_until_training(root, 2, tune)  # fails at once if tune ended
        trainers = psutil.Process(tune.pid).children(recursive=True)
        started = time.monotonic()
        os.kill(tune.pid, sig)
        try:
            tune.wait(timeout=120)
        except subprocess.TimeoutExpired:
            busy = what_runs()
            os.kill(tune.pid, signal.SIGABRT)  # faulthandler prints every thread's stack
            tune.wait(10)
            err = (root / "err.txt").read_text()
            raise AssertionError(
                f"hung after {sig.name}; {busy}\n{err[max(err.find('Fatal Python error'), 0) :]}"
            ) from None
        waited = time.monotonic() - started
    finally:
        if tune.poll() is None:
            tune.kill()
    return Stopped(root, sig, tune.returncode, waited, (root / "err.txt").read_text(), trainers)


@pytest.fixture(scope="module")
def hung_up_then_terminated(tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    """One study started under ``nohup``, hung up on mid-trial, then sent SIGTERM: the run both
    the nohup test and the SIGTERM case of the signal test read (each start costs TensorFlow's)."""
    return stop_mid_study(
        tmp_path_factory.mktemp("nohup"),
        signal.SIGTERM,
        ignoring=(signal.SIGHUP,),
        hangup_first=True,
    )


@pytest.mark.parametrize(
    ("sig", "ignoring"),
    [(signal.SIGTERM, (signal.SIGHUP,)), (signal.SIGINT, ()), (signal.SIGINT, (signal.SIGINT,))],
    ids=["TERM", "INT", "INT-to-a-job-started-with-it-ignored"],
)
def test_a_signal_mid_study_fails_the_running_trial_closes_every_run_and_says_how_to_resume(
    tmp_path: Path,
    sig: signal.Signals,
    ignoring: tuple[signal.Signals, ...],
    request: pytest.FixtureRequest,
) -> None:
    """SIGTERM comes to the study that was hung up on first (``hung_up_then_terminated``)."""
    if sig == signal.SIGTERM:
        stopped: Stopped = request.getfixturevalue("hung_up_then_terminated")
    else:
        stopped = stop_mid_study(tmp_path, sig, ignoring)
    err = stopped.err
    assert stopped.returncode == 128 + sig, err[-2000:]
    assert stopped.waited < 60, f"took {stopped.waited:.0f} s to stop"
    assert f"interrupted by {sig.name}" in err and "run the same command again to resume" in err
    assert "Traceback" not in err, err[-2000:]
    psutil.wait_procs(stopped.trainers, timeout=10)
    assert not [
        p for p in stopped.trainers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ], "no training process left"

    study = optuna.load_study(
        study_name=STUDY,
        storage=open_storage(f"journal:{stopped.root / 'mlruns/optuna/journal.log'}"),
    )
    states = [trial.state for trial in study.trials]
    assert (
        states[0] == optuna.trial.TrialState.COMPLETE
        and optuna.trial.TrialState.RUNNING not in states
    )
    (failed,) = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.FAIL]
    assert failed.user_attrs["failure"] == "interrupted"
    client = MlflowClient(f"sqlite:///{stopped.root / 'mlruns/mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(STUDY).experiment_id])
    assert {run.info.status for run in runs} <= {"FINISHED", "FAILED", "KILLED"}
    assert [run.data.tags.get("tune.failure") for run in runs if run.info.status == "FAILED"] == [
        "interrupted"
    ]


def test_a_study_started_under_nohup_outlives_a_hangup(hung_up_then_terminated: Stopped) -> None:
    """The hangup came mid-trial 1: trial 2 then trained, so tune went on (``stop_mid_study``
    fails at once if it ended), and SIGTERM still stopped it."""
    stopped = hung_up_then_terminated
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.err[-2000:]
    study = optuna.load_study(
        study_name=STUDY,
        storage=open_storage(f"journal:{stopped.root / 'mlruns/optuna/journal.log'}"),
    )
    assert [trial.state for trial in study.trials[:2]] == [optuna.trial.TrialState.COMPLETE] * 2


def test_kill_9_mid_trial_then_the_same_command_closes_what_the_dead_worker_left_and_goes_on(
    tmp_path: Path,
) -> None:
    """optuna #2908: a killed worker's trial stayed RUNNING for ever, on a journal file too."""
    tune = start_study(tmp_path, trials=3, epochs=SIGNAL_EPOCHS)
    try:
        wait_until_training(tmp_path, 1, tune)
    finally:
        tune.kill()
    tune.wait()
    again = start_study(tmp_path, trials=1, epochs=SIGNAL_EPOCHS, log="-again")
    assert again.wait(timeout=300) == 0, (tmp_path / "err-again.txt").read_text()[-3000:]

    study = optuna.load_study(
        study_name=STUDY, storage=open_storage(f"journal:{tmp_path / 'mlruns/optuna/journal.log'}")
    )
    states = [trial.state for trial in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.COMPLETE) == 1 + 1, (
        "the first run's trial kept, and the one this run ran: the dead worker's, queued again"
    )
    killed = study.trials[1]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert f"its worker {socket.gethostname()}:{tune.pid} died" in killed.user_attrs["failure"]
    (retry,) = [trial for trial in study.trials if trial.user_attrs.get("retry_of") == 1]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == killed.params
    assert "trial   1  FAIL     (its worker" in (tmp_path / "out-again.txt").read_text()

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(STUDY).experiment_id])
    assert "RUNNING" not in {run.info.status for run in runs}
    dead_run = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and "died" in dead_run.data.tags["tune.failure"]
    assert client.get_run(dead_run.data.tags["mlflow.parentRunId"]).info.status == "KILLED"


def test_kill_9_while_writing_the_report_then_the_same_command_closes_the_dead_parent_and_reports(
    tmp_path: Path,
) -> None:
    """Once left the parent run RUNNING for ever and the report folder empty. The kill comes as the
    report folder appears: the last trial is recorded by then, and the report takes seconds to
    draw."""
    report = tmp_path / "mlruns/reports" / STUDY
    tune = start_study(tmp_path, trials=1, epochs=2)
    try:
        wait_for(lambda: report.exists() or tune.poll() is not None, 240, "the report folder")
        assert tune.poll() is None, (tmp_path / "err.txt").read_text()[-3000:]
    finally:
        tune.kill()
    tune.wait()
    assert not (report / "report.html").exists(), "killed while the report was being written"
    storage = open_storage(f"journal:{tmp_path / 'mlruns/optuna/journal.log'}")
    (before,) = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert before.state == optuna.trial.TrialState.COMPLETE
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    (dead,) = client.search_runs([experiment], f"tags.`{ROLE_TAG}` = 'study'")
    assert dead.info.status == "RUNNING", "what the killed worker left"

    again = start_study(tmp_path, trials=1, epochs=2, log="-again")
    assert again.wait(timeout=300) == 0, (tmp_path / "err-again.txt").read_text()[-3000:]
    after = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert after[0] == before, "the completed trial is intact"
    assert [trial.state for trial in after] == [optuna.trial.TrialState.COMPLETE] * 2
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    (parent,) = [run for run in client.search_runs([experiment], f"tags.`{ROLE_TAG}` = 'study'")
                 if run.info.run_id != dead.info.run_id]
    assert parent.info.status == "FINISHED"
    assert "report/report.html" in {
        item.path for item in client.list_artifacts(parent.info.run_id, "report")
    }
    assert (report / "report.html").exists()
    assert "RUNNING" not in {run.info.status for run in client.search_runs([experiment])}


def test_kill_9_while_logging_a_trial_to_mlflow_then_the_same_command_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    """The kill comes as the first trial's learning-curve figure lands in MLflow's artifacts: the
    worker is then between logging the trial's diagnosis and closing its run and telling Optuna,
    or just past it. Either way the next run finds the trial recorded or retried, never RUNNING."""
    artifacts = tmp_path / "mlruns/artifacts" / STUDY
    tune = start_study(tmp_path, trials=2, epochs=2)
    try:
        wait_for(
            lambda: any(artifacts.rglob(LEARNING_CURVE_FILE)) or tune.poll() is not None,
            240,
            "a learning curve in MLflow",
        )
        assert tune.poll() is None, (tmp_path / "err.txt").read_text()[-3000:]
    finally:
        tune.kill()
    tune.wait()
    again = start_study(tmp_path, trials=2, epochs=2, log="-again")
    assert again.wait(timeout=300) == 0, (tmp_path / "err-again.txt").read_text()[-3000:]

    study = optuna.load_study(
        study_name=STUDY, storage=open_storage(f"journal:{tmp_path / 'mlruns/optuna/journal.log'}")
    )
    states = [trial.state for trial in study.trials]
    assert (
        optuna.trial.TrialState.RUNNING not in states
        and states.count(optuna.trial.TrialState.COMPLETE) >= 2
    )
    first = study.trials[0]
    if (
        first.state == optuna.trial.TrialState.FAIL
    ):  # killed before Optuna was told: failed, and tried again
        assert "died" in first.user_attrs["failure"]
        assert [t.state for t in study.trials if t.user_attrs.get("retry_of") == 0] == [
            optuna.trial.TrialState.COMPLETE
        ]
    else:
        assert first.state == optuna.trial.TrialState.COMPLETE
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    assert "RUNNING" not in {run.info.status for run in client.search_runs([experiment])}
    first_run = client.get_run(first.user_attrs["mlflow_run_id"])
    assert first_run.info.status == (
        "FINISHED" if first.state == optuna.trial.TrialState.COMPLETE else "FAILED"
    )
    parents = client.search_runs(
        [experiment], f"tags.`{ROLE_TAG}` = 'study'", order_by=["attributes.start_time ASC"]
    )
    assert [run.info.status for run in parents] == ["KILLED", "FINISHED"]
