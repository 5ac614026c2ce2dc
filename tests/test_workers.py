"""Several `tune run` processes on one study: the journal file (one machine), PostgreSQL and
Redis (several machines) must each hand out distinct trials and keep every result."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from conftest import ROOT, tiny_space, write_space
from mlflow.tracking import MlflowClient

from tune.engine.storage import open_storage
from tune.tracking.tracker import ROLE_TAG

TRIALS_PER_WORKER = 2
WORKERS = 2
# PostgreSQL's trust auth ignores passwords, so the workers can carry one to show it never leaks.
PASSWORD = "pg-Se@cret-9f"


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


STORAGES = [
    pytest.param(None, id="journal-file"),
    pytest.param("postgresql", id="postgresql", marks=[
        pytest.mark.services,
        pytest.mark.skipif(not _answers(5432), reason="no PostgreSQL on 127.0.0.1:5432 (.ci/run checks it)"),
    ]),
    pytest.param("redis", id="redis", marks=[
        pytest.mark.services,
        pytest.mark.skipif(not _answers(6379), reason="no Redis on 127.0.0.1:6379 (.ci/run checks it)"),
    ]),
]


@pytest.fixture
def fresh_postgresql() -> Iterator[str]:
    """An empty database, so the workers also race to create Optuna's tables, as on a new server."""
    import psycopg

    name = f"tune_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 port=5432 dbname=test", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://{getpass.getuser()}:{quote(PASSWORD, safe='')}@127.0.0.1:5432/{name}"
    with psycopg.connect("host=127.0.0.1 port=5432 dbname=test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


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
    return f"journal:{tmp_path / 'mlruns/optuna/journal.log'}"


@pytest.mark.parametrize("storage_url", STORAGES, indirect=True)
def test_parallel_workers_share_one_study(storage_url: str, tmp_path: Path) -> None:
    study_name = f"workers-{uuid.uuid4().hex[:8]}"
    storage = storage_url
    space = write_space(tmp_path / "space.yaml", tiny_space(
        study={"name": study_name, "trials": TRIALS_PER_WORKER, "pruner": {"type": "none"}},
        training={"epochs": 2},
    ))
    env = {**os.environ, "TUNE_STORE_DIR": str(tmp_path / "mlruns"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("MLFLOW_TRACKING_URI", None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tune", "run", str(space), "--storage", storage, "--seed", str(seed)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for seed in range(WORKERS)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    trials = study.trials
    assert len(trials) == WORKERS * TRIALS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}")
    experiment = client.get_experiment_by_name(study_name)
    parents = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'study'")
    children = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(parents) == WORKERS
    assert sorted(int(r.data.tags["tune.trial_number"]) for r in children) == list(range(len(trials)))
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {p.info.run_id for p in parents}
    _assert_password_never_stored(tmp_path / "mlruns", [out + err for out, err in outputs])


def _assert_password_never_stored(store: Path, outputs: list[str]) -> None:
    """Neither the MLflow database nor any artifact nor the terminal holds the password, in clear
    or URL-encoded (the workers' storage URL carried it for PostgreSQL)."""
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD)}
    files = [path for path in store.rglob("*") if path.is_file() and "optuna" not in path.parts]
    assert any(path.name == "mlflow.db" for path in files)
    for path in files:
        content = path.read_bytes()
        assert not any(form.encode() in content for form in forms), f"{path} holds the storage password"
    assert not any(form in output for form in forms for output in outputs)
