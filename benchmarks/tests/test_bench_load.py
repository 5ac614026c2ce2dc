"""``make bench-load``: its checks on hand-made trials, runs and logs (each kind of fault reported,
a clean arm passing), then its real code path on a tiny budget: two workers on PostgreSQL
and a tracking server. Whether several workers share one study correctly is
tests/end_to_end/test_workers.py's question; here it is whether the benchmark counts, checks and
writes what it measured."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer

from benchmarks import load
from benchmarks.load import (
    SERVER_LOG_TROUBLE,
    WORKER_LOG_TROUBLE,
    ArmResult,
    StoredTrial,
    TrackedRun,
    exit_problems,
    log_problems,
    run_problems,
    trial_problems,
    trials_per_minute,
)
from benchmarks.output import RESULTS_FILE

WORKER_PIDS = [101, 102]


def stored(*states: str) -> list[StoredTrial]:
    """Trial N in the Nth state, started at 10 N s and ended 10 s later, its run ``run-N``."""
    return [
        StoredTrial(number, state, f"run-{number}", None, 10.0 * number, 10.0 * number + 10)
        for number, state in enumerate(states)
    ]


def tracked(trials: list[StoredTrial]) -> list[TrackedRun]:
    """A parent run per worker, and each trial's run under the first."""
    parents = [
        TrackedRun(f"parent-{pid}", "study", "FINISHED", worker_pid=pid) for pid in WORKER_PIDS
    ]
    return parents + [
        TrackedRun(str(t.run_id), "trial", "FINISHED", t.number, "parent-101") for t in trials
    ]


def test_a_clean_arm_passes_every_check() -> None:
    """A queued trial no worker reached before its timeout is WAITING, and has no run."""
    trials = stored("COMPLETE", "PRUNED", "COMPLETE", "WAITING")
    assert trial_problems(trials) == []
    assert run_problems(trials, tracked(trials[:3]), WORKER_PIDS) == []
    assert exit_problems([0, 0]) == []
    assert load.states(trials) == {"COMPLETE": 2, "PRUNED": 1, "WAITING": 1}


def test_a_duplicated_missing_running_or_failed_trial_is_reported() -> None:
    trials = stored("COMPLETE", "COMPLETE", "RUNNING", "RUNNING", "FAIL")
    trials[1] = StoredTrial(0, "COMPLETE")  # trial 0 twice, trial 1 never
    trials[4] = StoredTrial(4, "FAIL", failure="OperationalError: could not serialize\nmore")
    assert trial_problems(trials) == [
        "trial numbers stored more than once: [0]",
        "trial numbers missing: [1]",
        "trials left RUNNING: [2, 3]",
        "trial 4 FAIL: OperationalError: could not serialize",
    ]
    assert trial_problems([]) == ["no trial stored"]


def test_a_trial_without_its_one_run_and_a_worker_without_its_one_parent_are_reported() -> None:
    trials = stored("COMPLETE", "COMPLETE", "PRUNED", "COMPLETE")
    runs = tracked(trials)
    runs.remove(next(run for run in runs if run.trial == 0))  # trial 0: no run
    runs.append(TrackedRun("again", "trial", "FINISHED", 1, "parent-101"))  # trial 1: two
    runs = [  # trial 2's run is another than the trial names; trial 3's has no parent and runs on
        TrackedRun("stray", "trial", "KILLED", 2, "parent-101")
        if run.trial == 2
        else TrackedRun("run-3", "trial", "RUNNING", 3, "gone")
        if run.trial == 3
        else run
        for run in runs
    ]
    runs.append(TrackedRun("ghost", "trial", "FINISHED", 9, "parent-101"))  # no trial 9
    runs.append(TrackedRun("parent-again", "study", "FINISHED", worker_pid=102))  # 102: two
    runs.append(TrackedRun("parent-x", "study", "FINISHED", worker_pid=999))
    assert run_problems(trials, runs, WORKER_PIDS) == [
        "trial 0: 0 MLflow runs, not 1",
        "trial 1: 2 MLflow runs, not 1",
        "trial 2: its MLflow run is stray, the trial names run-2",
        "trial 9: 1 MLflow runs, and no such trial started in Optuna",
        "worker 102: 2 parent runs, not 1",
        "parent runs of no worker of this arm: 999",
        "trial runs under no parent run: ['run-3']",
        "MLflow runs left RUNNING: ['run-3']",
    ]
    assert run_problems(trials, tracked(trials)[1:], WORKER_PIDS) == [
        "worker 101: 0 parent runs, not 1",
        "trial runs under no parent run: ['run-0', 'run-1', 'run-2', 'run-3']",
    ]


def test_lock_connection_and_error_lines_are_reported_with_their_place() -> None:
    worker_log = "\n".join(
        [
            "export TF_NUM_INTRAOP_THREADS=1",
            "trial   3  COMPLETE val_data_loss=2.3071  epochs=2   balanced",
            "the clock said a block of 3 trials",  # neither is a lock
            "sqlite3.OperationalError: database is locked",
            "WARNING urllib3: Retrying after connection broken by 'NewConnectionError'",
            "Traceback (most recent call last):",
            "psycopg.errors.DeadlockDetected: deadlock detected",
            "optuna LockTimeout in file_lock",
        ]
    )
    assert log_problems({"worker-1.log": worker_log}, WORKER_LOG_TROUBLE) == [
        "worker-1.log:4: sqlite3.OperationalError: database is locked",
        "worker-1.log:5: WARNING urllib3: Retrying after connection broken by 'NewConnectionError'",
        "worker-1.log:6: Traceback (most recent call last):",
        "worker-1.log:7: psycopg.errors.DeadlockDetected: deadlock detected",
        "worker-1.log:8: optuna LockTimeout in file_lock",
    ]
    banner = "[MLflow] Security middleware enabled. To allow connections from other hosts, ..."
    server_log = f"{banner}\nsqlalchemy.exc.OperationalError: too many clients\n"
    assert log_problems({"server": server_log}, SERVER_LOG_TROUBLE) == [
        "server:2: sqlalchemy.exc.OperationalError: too many clients"
    ]
    arm = load.with_server_log(_arm(workers=2), server_log)
    assert arm["problems"] == ["1 error lines in mlflow-server.log"]
    assert arm["offending_lines"] == [
        "mlflow-server.log:2: sqlalchemy.exc.OperationalError: too many clients"
    ]


def test_a_worker_that_failed_or_had_to_be_stopped_is_reported() -> None:
    assert exit_problems([0, 1, None]) == [
        "worker 1: exit status 1",
        f"worker 2: still running {load.FINISH_GRACE_S:.0f} s past its timeout, stopped",
    ]


def test_throughput_counts_finished_trials_over_the_trials_window() -> None:
    # 0-10 s COMPLETE, 10-20 s PRUNED, 20-30 s FAIL: two trials in half a minute
    assert trials_per_minute(stored("COMPLETE", "PRUNED", "FAIL")) == pytest.approx(4.0)
    assert trials_per_minute([]) == 0.0
    arms = load.compare_to_first(
        [_arm(workers=1, per_minute=4.0), _arm(workers=8, per_minute=10.0)]
    )
    assert [arm["vs_first"] for arm in arms] == [1.0, 2.5]


def test_the_table_marks_a_failed_arm_and_lists_why() -> None:
    failed = {**_arm(workers=8), "problems": ["1 offending log lines"]}
    failed["offending_lines"] = ["worker-3.log:9: database is locked"]
    results: load.LoadResults = {
        "cores": 2, "cpu": "a CPU", "minutes": 3.0, "server_workers": 1, "space": {},
        "arms": [_arm(workers=1), failed], "passed": False,
    }
    table = load.markdown(results)
    assert "2 CPU cores (a CPU)" in table
    assert "| 1 | 1 | COMPLETE 3 | 3 | 1 | 0 | 6.0 | 1.00 | pass |" in table
    assert "| 8 | 1 | COMPLETE 3 | 3 | 8 | 1 | 6.0 | 1.00 | FAIL |" in table
    assert "- 1 offending log lines\n  - `worker-3.log:9: database is locked`" in table


def test_worker_counts_are_checked_where_they_enter() -> None:
    assert load.worker_counts("1,2,8") == [1, 2, 8]
    for bad in ("", "1,x", "0,2"):
        with pytest.raises(typer.BadParameter, match="worker counts like 1,2,8"):
            load.worker_counts(bad)


def _arm(workers: int, per_minute: float = 6.0) -> ArmResult:
    return {
        "study": "s", "workers": workers, "threads_each": 1, "trials": {"COMPLETE": 3},
        "trial_runs": 3, "parent_runs": workers, "window_s": 30.0, "wall_s": 40.0,
        "trials_per_minute": per_minute, "vs_first": 1.0, "offending_lines": [], "problems": [],
    }


@pytest.mark.integration
@pytest.mark.services
@pytest.mark.skipif(
    not load.postgresql_answers(), reason="no PostgreSQL on 127.0.0.1:5432 (.ci/run checks it)"
)
def test_two_workers_are_counted_checked_and_written(tmp_path: Path) -> None:
    """The benchmark's own path on a budget of seconds: fresh databases, a real tracking server,
    real `tune run` workers each given its share of the cores; every check passes. One arm: the
    arithmetic across arms is tested above on hand-made ones."""
    results = load.measure([2], 0.05, tmp_path)
    stored_results = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert stored_results.pop("measured_at")
    assert stored_results == json.loads(json.dumps(results)) and results["passed"]
    [arm] = stored_results["arms"]
    cores = os.cpu_count() or 1  # what tune.runtime.devices shares out
    assert (arm["workers"], arm["threads_each"]) == (2, max(1, cores // 2))
    assert arm["problems"] == [] and arm["offending_lines"] == []
    started = sum(n for state, n in arm["trials"].items() if state != "WAITING")
    assert set(arm["trials"]) <= {"COMPLETE", "PRUNED", "WAITING"}
    assert arm["trial_runs"] == started >= arm["workers"]
    assert arm["parent_runs"] == arm["workers"]
    assert 0 < arm["window_s"] < arm["wall_s"] and arm["trials_per_minute"] > 0
    assert arm["vs_first"] == 1.0
    assert (tmp_path / load.TABLE_FILE).read_text().count("| pass |") == 1
    arm_folder = tmp_path / "arm1-2-workers"
    assert (arm_folder / "worker-1.log").read_text().startswith("export TF_NUM_INTRAOP_THREADS=")


def test_the_command_exits_1_when_a_check_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(load, "measure", lambda *args, **kwargs: {"passed": False})
    with pytest.raises(typer.Exit) as stopped:
        load.run(workers="1", minutes=1.0, out=tmp_path)
    assert stopped.value.exit_code == 1
