"""``make bench-load``: many ``tune run`` workers on one study, one PostgreSQL storage and one
MLflow tracking server: every trial stored once and tracked once, no lock, connection or database
error in any worker's log, and the trials per minute each number of workers gets through.

One arm per worker count, one after the other, each on a study of its own in a fresh PostgreSQL
database. One MLflow tracking server serves the whole benchmark, set up as
docs/several-machines.md has a team run one (runs in a fresh PostgreSQL database, artifacts served
from a folder, loopback only; one server worker unless ``--server-workers`` says otherwise), each
arm's study an experiment of its own in it. Started once because that is what the workers of a
team meet, a long-lived server, and so that its start (mostly MLflow's migrations) is paid once;
the arms still never mix: each arm's runs are read from its own experiment, and its server log
lines from the part of the log written while it ran.

Each worker is a real ``tune run`` process, started as ``make workers`` starts one: its
environment from ``python -m tune.runtime.devices INDEX WORKERS`` (its share of the cores as
TensorFlow threads, its GPU), which also begins its log, its own ``--seed``, and ``--timeout`` for
the arm's minutes. The study is tiny on purpose (synthetic data, a four-layer model, two epochs,
the median pruner from the first epoch) so that trials are short and the storage and tracking
paths, not training, carry the load. More workers than cores oversubscribe the machine: that is
the point.

Trials per minute are the COMPLETE and PRUNED trials over the minutes from the first trial's start
to the last one's end, as the storage recorded them, so the workers' start-up (TensorFlow's
import) and their reports at the end lie outside; the arm's whole wall time is recorded beside.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict
from urllib.parse import urlsplit

import typer
import yaml

from benchmarks.output import OutOption, bench_app, results_folder, write_results
from tune.cli import quiet_libraries, user_errors
from tune.contract import TrialAttr
from tune.engine.config import load_space
from tune.errors import TuneError
from tune.paths import STORE_ENV
from tune.runtime.devices import THREAD_ENVS
from tune.runtime.processes import LOOPBACK, stop_group
from tune.runtime.storage import STORAGE_ENV, redact, with_driver
from tune.tracking.server import server_environment, tracking_server_command
from tune.tracking.tracker import PARENT_TAG, ROLE_TAG, TRACKING_URI_ENV, TRIAL_TAG, WORKER_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run

TABLE_FILE = "load.md"
ADMIN_DATABASE = "postgresql://127.0.0.1:5432/test"
# Trials that count towards the throughput. Once every worker has exited, a trial still RUNNING
# or FAIL is a problem; one WAITING is not: it was queued (the baseline, the warm start) and no
# worker reached it before its timeout.
COUNTED = ("COMPLETE", "PRUNED")
# What no worker's log may hold: ``lock`` not inside a word ("block", "clock"), so "database is
# locked", ``LockTimeout`` and ``file_lock`` match.
WORKER_LOG_TROUBLE = re.compile(
    r"(?<![a-z])lock|deadlock|connection|OperationalError|Traceback", re.IGNORECASE
)
# The server's start-up banner speaks of connections; only errors count in its log.
SERVER_LOG_TROUBLE = re.compile(
    r"deadlock|database is locked|OperationalError|Traceback", re.IGNORECASE
)
SERVER_START_S = 180.0
STOP_GRACE_S = 10.0
FINISH_GRACE_S = 300.0  # how long a worker may run past its --timeout: its last trial, its report
SERVER_LOG, WORKER_LOG = "mlflow-server.log", "worker-{}.log"

TINY_MODEL = '''"""The load benchmark's model: a small convolution, a hidden Dense with L2 and a
Dropout, so the searched L2 and dropout act on it as given, and a trial trains in moments."""

import keras


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


def load_space_dict(name: str, builder: str) -> dict[str, Any]:
    """Short trials that take every path a real study takes: the queued baseline and warm start
    (the storage's lock), TPE after four random trials, the median pruner reading every trial's
    epochs, a learning-curve figure per trial sent to the tracking server."""
    return {
        "study": {
            "name": name,
            "trials": 1_000_000,  # the workers' --timeout ends the study
            "baseline": True,
            "warm_start": True,
            "sampler": {"type": "tpe", "n_startup_trials": 4},
            "pruner": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        },
        "data": {
            "source": "synthetic:600",
            "validation_size": 200,
            "train_subset": None,
            "clean_train_size": 200,
        },
        "model": {"builder": builder},
        "training": {"epochs": 2, "batch_size": 64, "precision": "float32"},
        "regularization": {
            "l2_conv": {"type": "categorical", "choices": [0.0, 1.0e-4, 1.0e-3]},
            "l2_dense": {"type": "float", "low": 1.0e-5, "high": 1.0e-1, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.7, "step": 0.05},
        },
    }


# --- what the stores and logs hold, and the checks on them: pure, for hand-made inputs ---


@dataclass(frozen=True)
class StoredTrial:
    """A trial as Optuna stored it."""

    number: int
    state: str
    run_id: str | None = None  # TrialAttr.RUN_ID: its MLflow run
    failure: str | None = None
    started: float | None = None  # seconds since the epoch
    ended: float | None = None


@dataclass(frozen=True)
class TrackedRun:
    """A run as the tracking server stored it: a worker's parent run (role ``study``) or a
    trial's (role ``trial``)."""

    run_id: str
    role: str | None
    status: str
    trial: int | None = None  # TRIAL_TAG
    parent: str | None = None  # PARENT_TAG
    worker_pid: int | None = None  # from WORKER_TAG


def states(trials: Sequence[StoredTrial]) -> dict[str, int]:
    return dict(sorted(Counter(trial.state for trial in trials).items()))


def trial_problems(trials: Sequence[StoredTrial]) -> list[str]:
    """Every trial number from 0 once, and none left RUNNING or failed."""
    if not trials:
        return ["no trial stored"]
    problems = []
    counts = Counter(trial.number for trial in trials)
    duplicated = sorted(number for number, count in counts.items() if count > 1)
    if duplicated:
        problems.append(f"trial numbers stored more than once: {duplicated}")
    missing = sorted(set(range(max(counts) + 1)) - set(counts))
    if missing:
        problems.append(f"trial numbers missing: {missing}")
    running = sorted(t.number for t in trials if t.state == "RUNNING")
    if running:
        problems.append(f"trials left RUNNING: {running}")
    return problems + [
        f"trial {t.number} FAIL: {(t.failure or 'no reason stored').splitlines()[0]}"
        for t in trials
        if t.state == "FAIL"
    ]


def run_problems(
    trials: Sequence[StoredTrial], runs: Sequence[TrackedRun], worker_pids: Sequence[int]
) -> list[str]:
    """Exactly one trial run per trial that started (not WAITING), the one the trial names, under
    one parent run per worker, and no run left RUNNING."""
    problems = []
    parents = [run for run in runs if run.role == "study"]
    children = [run for run in runs if run.role == "trial"]
    by_number: dict[int | None, list[TrackedRun]] = {}
    for run in children:
        by_number.setdefault(run.trial, []).append(run)
    for trial in (trial for trial in trials if trial.state != "WAITING"):
        found = by_number.pop(trial.number, [])
        if len(found) != 1:
            problems.append(f"trial {trial.number}: {len(found)} MLflow runs, not 1")
        elif found[0].run_id != trial.run_id:
            problems.append(
                f"trial {trial.number}: its MLflow run is {found[0].run_id}, the trial names "
                f"{trial.run_id}"
            )
    problems += [
        f"trial {number}: {len(found)} MLflow runs, and no such trial started in Optuna"
        for number, found in by_number.items()
    ]
    per_worker = Counter(run.worker_pid for run in parents)
    problems += [
        f"worker {pid}: {per_worker[pid]} parent runs, not 1"
        for pid in worker_pids
        if per_worker[pid] != 1
    ]
    strangers = sorted(str(pid) for pid in set(per_worker) - set(worker_pids))
    if strangers:
        problems.append(f"parent runs of no worker of this arm: {', '.join(strangers)}")
    parent_ids = {run.run_id for run in parents}
    orphans = sorted(run.run_id for run in children if run.parent not in parent_ids)
    if orphans:
        problems.append(f"trial runs under no parent run: {orphans}")
    running = sorted(run.run_id for run in runs if run.status == "RUNNING")
    if running:
        problems.append(f"MLflow runs left RUNNING: {running}")
    return problems


def log_problems(logs: Mapping[str, str], trouble: re.Pattern[str]) -> list[str]:
    """``NAME:LINE: text`` for each line of a log that ``trouble`` finds."""
    return [
        f"{name}:{number}: {line.strip()}"
        for name, text in logs.items()
        for number, line in enumerate(text.splitlines(), 1)
        if trouble.search(line)
    ]


def exit_problems(statuses: Sequence[int | None]) -> list[str]:
    """Each worker's exit status, None for one that had to be stopped."""
    return [
        f"worker {index}: still running {FINISH_GRACE_S:.0f} s past its timeout, stopped"
        if status is None
        else f"worker {index}: exit status {status}"
        for index, status in enumerate(statuses)
        if status != 0
    ]


def trial_window_s(trials: Sequence[StoredTrial]) -> float:
    """From the first trial's start to the last one's end."""
    starts = [t.started for t in trials if t.started is not None]
    ends = [t.ended for t in trials if t.ended is not None]
    return max(ends) - min(starts) if starts and ends else 0.0


def trials_per_minute(trials: Sequence[StoredTrial]) -> float:
    window = trial_window_s(trials)
    return sum(t.state in COUNTED for t in trials) * 60 / window if window > 0 else 0.0


# --- the services: fresh databases, one MLflow tracking server ---


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` naming database ``name``, with a user (PostgreSQL's default, the login name),
    which Optuna's and MLflow's SQLAlchemy URLs need."""
    parts = urlsplit(admin_url)
    netloc = parts.netloc if "@" in parts.netloc else f"{getpass.getuser()}@{parts.netloc}"
    return parts._replace(netloc=netloc, path=f"/{name}", query="").geturl()


def postgresql_answers(admin_url: str = ADMIN_DATABASE) -> bool:
    import psycopg

    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards even while a client still holds a
    connection to it."""
    import psycopg

    name = f"tune_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextmanager
def mlflow_server(backend_url: str, folder: Path, workers: int) -> Iterator[str]:
    """A tracking server as a team runs one: runs in ``backend_url``, artifacts served from
    ``folder``, its log beside them, bound to loopback, without MLflow's job runner; its whole
    process group is stopped at the end."""
    port = _free_port()
    with (folder / SERVER_LOG).open("wb") as log:
        command = tracking_server_command(
            with_driver(backend_url), folder / "server-artifacts", port, workers
        )
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=server_environment(),
            start_new_session=True,
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise TuneError(f"the MLflow server did not start; see {folder / SERVER_LOG}")
            time.sleep(0.25)
        yield url
    finally:
        stop_group(server, STOP_GRACE_S)


# --- one arm: N workers on one study ---


class ArmResult(TypedDict):
    """What one number of workers did, and every problem found."""

    study: str
    workers: int
    threads_each: int
    trials: dict[str, int]  # by state
    trial_runs: int
    parent_runs: int
    window_s: float
    wall_s: float
    trials_per_minute: float
    vs_first: float
    offending_lines: list[str]
    problems: list[str]


class LoadResults(TypedDict):
    """What ``make bench-load`` writes to its results file."""

    cores: int
    cpu: str
    minutes: float
    server_workers: int
    space: dict[str, Any]
    arms: list[ArmResult]
    passed: bool


def worker_environment(index: int, workers: int) -> dict[str, str]:
    """What ``make workers`` gives worker ``index`` of ``workers``, from the same command."""
    printed = subprocess.run(
        [sys.executable, "-m", "tune.runtime.devices", str(index), str(workers)],
        capture_output=True, text=True, check=True,
    ).stdout
    pairs = (line.removeprefix("export ").split("=", 1) for line in printed.splitlines())
    return {key: value for key, value in pairs}


def start_worker(
    index: int, given: Mapping[str, str], space: Path, options: Sequence[str], folder: Path
) -> subprocess.Popen[bytes]:
    """``tune run`` in a session of its own, so that its fork server and trial process can be
    stopped with it, its log beginning with the environment it was given."""
    env = {**os.environ, STORE_ENV: str(folder / "store"), **given}
    for name in (TRACKING_URI_ENV, STORAGE_ENV):
        env.pop(name, None)
    log = folder / WORKER_LOG.format(index)
    log.write_text("".join(f"export {key}={value}\n" for key, value in given.items()))
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tune", "run", str(space), "--seed", str(index), *options],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )


def wait_all(workers: Sequence[subprocess.Popen[bytes]], deadline: float) -> list[int | None]:
    """Each worker's exit status; one still running at ``deadline`` is stopped and gets None."""
    statuses: list[int | None] = []
    for worker in workers:
        try:
            statuses.append(worker.wait(max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            stop_group(worker, STOP_GRACE_S)
            statuses.append(None)
    return statuses


def stored_trials(storage_url: str, study: str) -> list[StoredTrial]:
    import optuna

    from tune.runtime.storage import open_storage

    try:
        loaded = optuna.load_study(study_name=study, storage=open_storage(storage_url))
    except KeyError:  # no worker got as far as creating it
        return []
    return [
        StoredTrial(
            t.number,
            t.state.name,
            t.user_attrs.get(TrialAttr.RUN_ID),
            t.user_attrs.get(TrialAttr.FAILURE),
            t.datetime_start.timestamp() if t.datetime_start else None,
            t.datetime_complete.timestamp() if t.datetime_complete else None,
        )
        for t in loaded.get_trials(deepcopy=False)
    ]


def tracked_runs(tracking_uri: str, study: str) -> list[TrackedRun]:
    """Every run of the study's experiment, page by page."""
    from mlflow.tracking import MlflowClient

    from tune.runtime.liveness import Worker

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return []
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            break
    found = []
    for run in runs:
        tags = run.data.tags
        worker = Worker.from_json(tags.get(WORKER_TAG))
        number = tags.get(TRIAL_TAG)
        found.append(
            TrackedRun(
                run.info.run_id,
                tags.get(ROLE_TAG),
                run.info.status,
                int(number) if number is not None else None,
                tags.get(PARENT_TAG),
                worker.pid if worker else None,
            )
        )
    return found


def run_arm(
    study: str, workers: int, minutes: float, folder: Path, *, admin_url: str, tracking: str
) -> ArmResult:
    """``workers`` workers of ``study`` for ``minutes`` each on a fresh Optuna database, logging
    to ``tracking``, their files in ``folder`` (emptied first); the problems its workers' exit
    statuses, logs and stores show."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "tiny_model.py").write_text(TINY_MODEL, encoding="utf-8")
    space = folder / "space.yaml"
    space.write_text(yaml.safe_dump(load_space_dict(study, f"{folder / 'tiny_model.py'}:build")))
    load_space(space)  # a bad space fails here, before any worker starts
    environments = [worker_environment(index, workers) for index in range(workers)]
    options = ["--timeout", f"{minutes * 60:g}", "--tracking-uri", tracking]
    with fresh_database(admin_url) as storage:
        started = time.monotonic()
        launched: list[subprocess.Popen[bytes]] = []
        try:
            for index, given in enumerate(environments):
                args = [*options, "--storage", storage]
                launched.append(start_worker(index, given, space, args, folder))
            statuses = wait_all(launched, started + minutes * 60 + FINISH_GRACE_S)
        finally:
            for worker in launched:
                if worker.poll() is None:  # an error or Ctrl-C here
                    stop_group(worker, STOP_GRACE_S)
        wall_s = time.monotonic() - started
        trials = stored_trials(storage, study)
    runs = tracked_runs(tracking, study)
    logs = {
        path.name: path.read_text(errors="replace")
        for path in (folder / WORKER_LOG.format(index) for index in range(workers))
    }
    offending = log_problems(logs, WORKER_LOG_TROUBLE)
    problems = (
        exit_problems(statuses)
        + trial_problems(trials)
        + run_problems(trials, runs, [worker.pid for worker in launched])
        + ([f"{len(offending)} offending log lines"] if offending else [])
    )
    return {
        "study": study,
        "workers": workers,
        "threads_each": int(environments[0][THREAD_ENVS[0]]),
        "trials": states(trials),
        "trial_runs": sum(run.role == "trial" for run in runs),
        "parent_runs": sum(run.role == "study" for run in runs),
        "window_s": round(trial_window_s(trials), 3),
        "wall_s": round(wall_s, 3),
        "trials_per_minute": round(trials_per_minute(trials), 3),
        "vs_first": 1.0,
        "offending_lines": offending,
        "problems": problems,
    }


def with_server_log(arm: ArmResult, log: str) -> ArmResult:
    """The arm with the errors the server logged while it ran."""
    offending = log_problems({SERVER_LOG: log}, SERVER_LOG_TROUBLE)
    if not offending:
        return arm
    return {
        **arm,
        "offending_lines": arm["offending_lines"] + offending,
        "problems": arm["problems"] + [f"{len(offending)} error lines in {SERVER_LOG}"],
    }


def compare_to_first(arms: list[ArmResult]) -> list[ArmResult]:
    """Each arm's trials per minute as a multiple of the first arm's (one worker, by default)."""
    base = arms[0]["trials_per_minute"] if arms else 0.0
    return [
        {**arm, "vs_first": round(arm["trials_per_minute"] / base, 3) if base else 0.0}
        for arm in arms
    ]


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else "unknown"


def markdown(results: LoadResults) -> str:
    arms = results["arms"]
    first = arms[0]["workers"] if arms else 1
    lines = [
        f"`tune run` workers on one study each, {results['minutes']:g} min per arm (`--timeout`), "
        "each arm on a fresh PostgreSQL database, all logging to one MLflow tracking server "
        f"({results['server_workers']} server worker(s)); {results['cores']} CPU cores "
        f"({results['cpu']}): more workers than cores oversubscribe them. Trials per minute: "
        "COMPLETE + PRUNED over the minutes from the first trial's start to the last one's end.",
        "",
        "| workers | threads each | trials by state | MLflow trial runs | parent runs | "
        f"offending log lines | trials per min | × {first} worker(s) | checks |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {a['workers']} | {a['threads_each']} | "
        f"{', '.join(f'{state} {n}' for state, n in a['trials'].items()) or 'none'} | "
        f"{a['trial_runs']} | {a['parent_runs']} | {len(a['offending_lines'])} | "
        f"{a['trials_per_minute']:.1f} | {a['vs_first']:.2f} | "
        f"{'FAIL' if a['problems'] else 'pass'} |"
        for a in arms
    ]
    for arm in (arm for arm in arms if arm["problems"]):
        lines += ["", f"{arm['workers']} workers:", *(f"- {p}" for p in arm["problems"])]
        lines += [f"  - `{line}`" for line in arm["offending_lines"][:50]]
    return "\n".join(lines) + "\n"


def measure(
    workers: Sequence[int],
    minutes: float,
    folder: Path,
    *,
    admin_url: str = ADMIN_DATABASE,
    server_workers: int = 1,
) -> LoadResults:
    """Every arm against one tracking server, then the results written into ``folder`` and the
    table printed."""
    if not postgresql_answers(admin_url):
        raise TuneError(f"PostgreSQL does not answer at {redact(admin_url)} (--admin-db)")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / "server-artifacts", ignore_errors=True)
    arms = []
    with (
        fresh_database(admin_url) as backend,
        mlflow_server(backend, folder, server_workers) as tracking,
    ):
        for index, count in enumerate(workers, 1):
            logged = (folder / SERVER_LOG).stat().st_size
            arm = run_arm(
                f"bench_load_arm{index}_{count}w",
                count,
                minutes,
                folder / f"arm{index}-{count}-workers",
                admin_url=admin_url,
                tracking=tracking,
            )
            with (folder / SERVER_LOG).open("rb") as log:
                log.seek(logged)
                arms.append(with_server_log(arm, log.read().decode(errors="replace")))
    results: LoadResults = {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu_name(),
        "minutes": minutes,
        "server_workers": server_workers,
        "space": load_space_dict("bench_load_armN_Nw", "tiny_model.py:build"),
        "arms": compare_to_first(arms),
        "passed": not any(arm["problems"] for arm in arms),
    }
    write_results(folder, results, TABLE_FILE, markdown(results), typer.echo)
    return results


def worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise typer.BadParameter(f"worker counts like 1,2,8 (each at least 1), got {text!r}")
    return counts


app = bench_app(__doc__)


@app.command()
@user_errors
def run(
    workers: Annotated[
        str, typer.Option(help="worker counts, one arm each, in this order")
    ] = "1,2,8",
    minutes: Annotated[float, typer.Option(min=0.01, help="each worker's --timeout")] = 3.0,
    admin_db: Annotated[
        str, typer.Option(help="a PostgreSQL database to create the fresh ones from")
    ] = ADMIN_DATABASE,
    server_workers: Annotated[int, typer.Option(min=1, help="the MLflow server's workers")] = 1,
    out: OutOption = None,
) -> None:
    """The arms one after the other; exit status 1 if any check failed."""
    quiet_libraries()
    results = measure(
        worker_counts(workers),
        minutes,
        results_folder(out, "load"),
        admin_url=admin_db,
        server_workers=server_workers,
    )
    if not results["passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.load")
