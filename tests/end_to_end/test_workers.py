"""Several `tune run` processes on one study: the journal file (one machine), PostgreSQL and
Redis (several machines) must each hand out distinct trials and keep every result, whether the
workers log to a local MLflow database or to a shared tracking server, and whether they all live
or one of them is killed."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from tests.support.paths import ROOT
from tests.support.processes import free_port, serves, wait_for
from tests.support.spaces import tiny_space, write_space
from tune.contract import TrialAttr
from tune.engine.config import SearchSpace
from tune.engine.study import open_study
from tune.runtime.liveness import Worker
from tune.runtime.processes import signal_group, stop_group
from tune.runtime.storage import open_storage
from tune.tracking.server import server_environment, tracking_server_command
from tune.tracking.tracker import FAILURE_TAG, PARENT_TAG, ROLE_TAG

pytestmark = pytest.mark.integration

TRIALS_PER_WORKER = 2
WORKERS = 2
# PostgreSQL's trust auth ignores passwords, so the workers can carry one to show it never leaks.
PASSWORD = "pg-Se@cret-9f"
POSTGRESQL_ADMIN = "host=127.0.0.1 port=5432 dbname=test"
Launch = Callable[..., "subprocess.Popen[str]"]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


needs_postgresql = pytest.mark.skipif(
    not _answers(5432), reason="no PostgreSQL on 127.0.0.1:5432 (.ci/run checks it)"
)
STORAGES = [
    pytest.param(None, id="journal-file"),
    pytest.param("postgresql", id="postgresql", marks=[pytest.mark.services, needs_postgresql]),
    pytest.param(
        "redis",
        id="redis",
        marks=[
            pytest.mark.services,
            pytest.mark.skipif(
                not _answers(6379), reason="no Redis on 127.0.0.1:6379 (.ci/run checks it)"
            ),
        ],
    ),
]


@contextmanager
def _fresh_database() -> Iterator[str]:
    """An empty database, dropped afterwards even while something still holds a connection."""
    import psycopg

    name = f"tune_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRESQL_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def fresh_postgresql() -> Iterator[str]:
    """Empty, so the workers also race to create Optuna's tables, as on a new server."""
    with _fresh_database() as name:
        yield f"postgresql://{getpass.getuser()}:{quote(PASSWORD, safe='')}@127.0.0.1:5432/{name}"


@pytest.fixture
def fresh_redis() -> Iterator[str]:
    """A journal under its own key prefix, deleted afterwards, so test runs never pile up."""
    import redis

    prefix = f"tune-test-{uuid.uuid4().hex[:8]}"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    server = redis.Redis(host="127.0.0.1", port=6379, db=0)
    keys = list(server.scan_iter(f"{prefix}:*"))
    if keys:
        server.delete(*keys)


@pytest.fixture
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param in ("postgresql", "redis"):
        return request.getfixturevalue(f"fresh_{request.param}")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return f"journal:{tmp_path / 'mlruns/optuna/journal.log'}"


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A tracking server as docs/several-machines.md runs one: PostgreSQL backend store in a
    database of its own, artifacts served from a folder, one worker, bound to loopback; its whole
    process group is stopped at the end."""
    port = free_port()
    artifacts = tmp_path / "server-artifacts"
    with _fresh_database() as name, (tmp_path / "mlflow-server.txt").open("w") as log:
        backend = f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/{name}"
        server = subprocess.Popen(
            tracking_server_command(backend, artifacts, port),
            env=server_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: serves(port) or server.poll() is not None,
                180,
                f"the MLflow server on port {port}",
            )
            assert server.poll() is None, (tmp_path / "mlflow-server.txt").read_text()[-3000:]
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_group(server, 5)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Starts `tune run` as each machine would, in a session of its own, so that a test can kill
    or pause a worker together with its trial processes; whatever is left is killed at the end."""
    started: list[subprocess.Popen[str]] = []
    env = {**os.environ, "TUNE_STORE_DIR": str(tmp_path / "mlruns"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("TUNE_STORAGE", None)

    def start(space: Path, seed: int, *options: str) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tune", "run", str(space), "--seed", str(seed), *options],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is None:
            signal_group(worker.pid, signal.SIGKILL)
            worker.communicate()


def small_space(tmp_path: Path, trials: int, epochs: int) -> tuple[str, Path]:
    name = f"workers-{uuid.uuid4().hex[:8]}"
    space = tiny_space(
        study={"name": name, "trials": trials, "pruner": {"type": "none"}},
        training={"epochs": epochs},
    )
    return name, write_space(tmp_path / "space.yaml", space)


def finish(workers: list[subprocess.Popen[str]]) -> list[str]:
    """Each worker's stdout and stderr, once it exited with status 0."""
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
        outputs.append(out + err)
    return outputs


def assert_every_trial_stored_once(storage: str, study_name: str, count: int) -> list[FrozenTrial]:
    trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).trials
    assert sorted(t.number for t in trials) == list(range(count))
    unfinished = {
        t.number: (t.state.name, t.user_attrs.get(TrialAttr.FAILURE))
        for t in trials
        if t.state != TrialState.COMPLETE
    }
    assert not unfinished, f"trials not COMPLETE (state, failure): {unfinished}"
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    return trials


def assert_one_child_run_per_trial(client: MlflowClient, study_name: str, count: int) -> None:
    """Under one parent run per worker, every run closed."""
    experiment = client.get_experiment_by_name(study_name)
    parents = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'study'")
    children = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(parents) == WORKERS
    assert sorted(int(r.data.tags["tune.trial_number"]) for r in children) == list(range(count))
    assert {r.data.tags[PARENT_TAG] for r in children} == {p.info.run_id for p in parents}
    assert {r.info.status for r in parents + children} == {"FINISHED"}


# Two workers on PostgreSQL run in test_workers_on_postgresql_log_to_one_mlflow_tracking_server.
@pytest.mark.parametrize(
    "storage_url", [param for param in STORAGES if param.id != "postgresql"], indirect=True
)
def test_parallel_workers_share_one_study(storage_url: str, tmp_path: Path, launch: Launch) -> None:
    study_name, space = small_space(tmp_path, TRIALS_PER_WORKER, epochs=2)
    outputs = finish([launch(space, seed, "--storage", storage_url) for seed in range(WORKERS)])
    assert_every_trial_stored_once(storage_url, study_name, WORKERS * TRIALS_PER_WORKER)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    assert_one_child_run_per_trial(client, study_name, WORKERS * TRIALS_PER_WORKER)
    files = [
        path
        for path in (tmp_path / "mlruns").rglob("*")
        if path.is_file() and "optuna" not in path.parts
    ]
    assert any(path.name == "mlflow.db" for path in files)
    _assert_password_never_stored(files, outputs)


@pytest.mark.services
@needs_postgresql
def test_workers_on_postgresql_log_to_one_mlflow_tracking_server(
    fresh_postgresql: str, mlflow_server: str, tmp_path: Path, launch: Launch,
) -> None:
    """The multi-machine set-up of the README, on one machine: Optuna and the MLflow server both
    on PostgreSQL, the workers talking to the server over HTTP only."""
    study_name, space = small_space(tmp_path, TRIALS_PER_WORKER, epochs=2)
    options = ("--storage", fresh_postgresql, "--tracking-uri", mlflow_server)
    outputs = finish([launch(space, seed, *options) for seed in range(WORKERS)])
    assert_every_trial_stored_once(fresh_postgresql, study_name, WORKERS * TRIALS_PER_WORKER)
    client = MlflowClient(mlflow_server)
    assert_one_child_run_per_trial(client, study_name, WORKERS * TRIALS_PER_WORKER)
    served = [path for path in (tmp_path / "server-artifacts").rglob("*") if path.is_file()]
    assert (
        len([path for path in served if path.name == "learning_curve.png"])
        == WORKERS * TRIALS_PER_WORKER
    ), "artifacts went through the server to its folder"
    assert (
        not (tmp_path / "mlruns/mlflow.db").exists()
        and not (tmp_path / "mlruns/artifacts").exists()
    )
    runs = client.search_runs([client.get_experiment_by_name(study_name).experiment_id])
    stored = [f"{run.data.tags} {run.data.params}" for run in runs]
    _assert_password_never_stored(served, outputs + stored)


@pytest.mark.parametrize(
    "storage_url", [*STORAGES, pytest.param("sqlite", id="sqlite")], indirect=True
)
def test_workers_opening_a_new_study_together_queue_each_first_trial_once(
    storage_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Optuna's enqueue_trial(skip_if_exists=True) checks and then adds: two workers that opened
    a new study at once both found no baseline and both queued one. Here every worker waits after
    its check until all have checked, so without the lock the race happens every time; with it,
    the first waits alone for a second and gives up waiting."""
    openers = 4
    everyone_checked = threading.Barrier(openers, timeout=1)
    check = optuna.Study._should_skip_enqueue

    def check_then_wait(study: optuna.Study, params: dict[str, object]) -> bool:
        found = check(study, params)
        try:
            everyone_checked.wait()
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(optuna.Study, "_should_skip_enqueue", check_then_wait)
    space = SearchSpace.model_validate(
        tiny_space(study={"warm_start": True, "enqueue": [{"dropout": 0.1}]})
    )
    name = f"together-{uuid.uuid4().hex[:8]}"
    optuna.create_study(
        study_name=name, storage=open_storage(storage_url)
    )  # as the first worker has just done
    with ThreadPoolExecutor(openers) as pool:
        list(pool.map(lambda _: open_study(space, name, storage_url, "space.yaml"), range(openers)))
    waiting = optuna.load_study(study_name=name, storage=open_storage(storage_url)).get_trials(
        states=(TrialState.WAITING,)
    )
    assert [(t.user_attrs.get("baseline"), t.user_attrs.get("warm_start")) for t in waiting] == [
        (True, None), (None, True), (None, None),
    ]
    assert waiting[-1].system_attrs["fixed_params"] == {"dropout": 0.1}


def trials_mid_training(storage: str, study_name: str) -> dict[int, FrozenTrial]:
    """RUNNING trials that have reported an epoch, by the pid of their worker."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
        trials = study.get_trials(deepcopy=False)
    except KeyError:  # no worker has created the study yet
        return {}
    return {
        Worker.from_json(t.user_attrs[TrialAttr.WORKER]).pid: t
        for t in trials
        if t.state == TrialState.RUNNING
        and t.intermediate_values
        and TrialAttr.WORKER in t.user_attrs
    }


def wait_mid_trial(
    storage: str, study_name: str, workers: list[subprocess.Popen[str]]
) -> tuple[subprocess.Popen[str], FrozenTrial]:
    """The first of ``workers`` seen mid-trial, with its trial."""
    found: list[tuple[subprocess.Popen[str], FrozenTrial]] = []

    def one_training() -> bool:
        for worker in workers:
            assert worker.poll() is None, (
                f"worker {worker.pid} ended early: {worker.communicate()[1][-3000:]}"
            )
        training = trials_mid_training(storage, study_name)
        found[:] = [(worker, training[worker.pid]) for worker in workers if worker.pid in training]
        return bool(found)

    wait_for(one_training, 240, "a worker mid-trial")
    return found[0]


def signal_between_epochs(
    worker: subprocess.Popen[str],
    sig: signal.Signals,
    study: optuna.Study,
    number: int,
    journal: Path,
) -> int:
    """``sig`` to the worker's whole group once trial ``number`` has reported its next epoch and
    the worker has let go of the journal's lock: that epoch is then written to MLflow and Optuna,
    and no lock is taken again before the next one, so a paused or dead worker stalls no one.
    Returns the epochs the trial had reported."""
    lock = journal.with_name(f"{journal.name}.lock")  # Optuna's JournalFileSymlinkLock

    def epochs() -> int:  # read often: no copy of every trial each time
        return len(study.get_trials(deepcopy=False)[number].intermediate_values)

    reported = epochs()
    deadline = time.monotonic() + 120
    while epochs() == reported or lock.exists():
        assert time.monotonic() < deadline and worker.poll() is None, (
            f"trial {number} reported no further epoch"
        )
        time.sleep(0.01)
    signal_group(worker.pid, sig)
    assert not lock.exists(), f"{sig.name} while the worker held the journal's lock"
    return len(study.trials[number].intermediate_values)


def test_two_workers_one_killed_mid_trial_the_next_run_spares_the_survivor(
    tmp_path: Path, launch: Launch
) -> None:
    """kill -9 of one worker's whole process group (worker, fork server, trial process), as a power
    cut would, while the other is mid-trial. The first worker to train is the survivor: it is paused
    until the other is killed and the same command has run again, so the start-up sweep surely finds
    its trial RUNNING. A paused worker is alive, as a slow one is."""
    epochs = 12  # enough that the second worker is still mid-trial once the first is paused
    study_name, space = small_space(tmp_path, trials=1, epochs=epochs)
    journal = tmp_path / "mlruns/optuna/journal.log"
    storage = f"journal:{journal}"
    seeds = {launch(space, seed): seed for seed in range(WORKERS)}
    survivor, spared = wait_mid_trial(storage, study_name, list(seeds))
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    assert (
        signal_between_epochs(survivor, signal.SIGSTOP, study, spared.number, journal) < epochs
    ), "paused mid-trial"
    (killed,) = [worker for worker in seeds if worker is not survivor]
    _, dead = wait_mid_trial(storage, study_name, [killed])
    assert signal_between_epochs(killed, signal.SIGKILL, study, dead.number, journal) < epochs, (
        "killed mid-trial"
    )
    killed.communicate()
    assert [study.trials[t.number].state for t in (dead, spared)] == [TrialState.RUNNING] * 2, (
        "neither trial finished"
    )

    again = launch(space, seeds[killed])
    (out,) = finish([again])
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    assert study.trials[spared.number].state == TrialState.RUNNING, (
        "the live worker's trial was left alone"
    )
    assert f"trial {dead.number:>3}  FAIL" in out and f"trial {spared.number:>3}  FAIL" not in out
    signal_group(survivor.pid, signal.SIGCONT)
    finish([survivor])

    trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2 and len(trials) == 3, (
        "each run ran its one trial"
    )
    assert (
        trials[spared.number].state == TrialState.COMPLETE
        and TrialAttr.FAILURE not in trials[spared.number].user_attrs
    )
    assert trials[dead.number].state == TrialState.FAIL
    assert (
        f"its worker {socket.gethostname()}:{killed.pid} died"
        in trials[dead.number].user_attrs[TrialAttr.FAILURE]
    )
    (retry,) = [t for t in trials if t.user_attrs.get(TrialAttr.RETRY_OF) == dead.number]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    assert Worker.from_json(retry.user_attrs[TrialAttr.WORKER]).pid == again.pid

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    dead_run, spared_run = (
        client.get_run(trials[t.number].user_attrs[TrialAttr.RUN_ID]) for t in (dead, spared)
    )
    assert dead_run.info.status == "FAILED" and "died" in dead_run.data.tags[FAILURE_TAG]
    assert client.get_run(dead_run.data.tags[PARENT_TAG]).info.status == "KILLED"
    assert spared_run.info.status == "FINISHED" and FAILURE_TAG not in spared_run.data.tags
    assert client.get_run(spared_run.data.tags[PARENT_TAG]).info.status == "FINISHED"
    runs = client.search_runs([client.get_experiment_by_name(study_name).experiment_id])
    assert len(runs) == 3 + 3 and "RUNNING" not in {run.info.status for run in runs}, (
        "three parents, three trials"
    )


def _assert_password_never_stored(files: list[Path], texts: list[str]) -> None:
    """Neither a store file nor an output or stored text holds the password, in clear or
    URL-encoded (the workers' storage URL carried it for PostgreSQL)."""
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)}
    for path in files:
        content = path.read_bytes()
        assert not any(form.encode() in content for form in forms), (
            f"{path} holds the storage password"
        )
    assert not any(form in text for form in forms for text in texts)


CORES = len(os.sched_getaffinity(0))  # what nproc counts


@pytest.mark.parametrize(
    ("args", "threads"),
    [(["WORKERS=2", "THREADS=3"], 3), ([f"WORKERS={CORES}"], 1), (["WORKERS=1"], CORES)],
)
def test_make_workers_shares_the_cores_and_deals_out_the_gpus(
    tmp_path: Path, args: list[str], threads: int
) -> None:
    """One TensorFlow thread pool per core, not every worker's pools on every core (make
    bench-overhead: two one-thread workers did 1.34-1.67x the trials of one two-thread worker),
    and the GPUs dealt round-robin. The real Makefile runs, with a ``tune`` that prints what it
    was given in place of a study."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("python", f'exec {sys.executable} "$@"'),
        ("tune", 'echo "threads=$TF_NUM_INTRAOP_THREADS/$TF_NUM_INTEROP_THREADS'
                 ' gpu=$CUDA_VISIBLE_DEVICES growth=$TF_FORCE_GPU_ALLOW_GROWTH $*"'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "-o", ".venv/.installed", "workers",
         f"BIN={bin_dir}", "SEED=4", *args],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "5,7"},
    )
    logs = sorted((tmp_path / "mlruns").glob("worker-*.log"))
    said = [log.read_text().splitlines()[-1] for log in logs]
    workers = int(next(arg for arg in args if arg.startswith("WORKERS=")).split("=")[1])
    assert len(said) == workers
    for index, line in enumerate(said):
        assert line.startswith(f"threads={threads}/{threads} gpu={'57'[index % 2]} growth=true ")
        assert line.endswith(f"--seed {4 + index}")
