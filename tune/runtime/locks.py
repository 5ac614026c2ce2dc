"""Locks that every worker of a study shares, on the storage they share: a file lock beside a
journal file or SQLite database, an advisory lock on PostgreSQL and MySQL, a Redis lock beside a
Redis journal. A lock held by a worker that dies is released with it (file and database locks) or
expires (Redis)."""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import sqlalchemy

from tune.runtime.storage import (
    default_storage_url,
    journal_path,
    redis_url,
    scheme,
    with_driver,
)

# Workers that start together wait this long for each other's enqueueing, which takes milliseconds;
# a Redis lock whose holder died expires after _LOCK_EXPIRY_S.
_LOCK_WAIT_S = 300
_LOCK_EXPIRY_S = 60
_LOCK_NAME = "tune-queue"


@contextmanager
def queue_lock(url: str | None) -> Iterator[None]:
    """Held by one worker at a time, on the storage every worker shares, around queueing a
    study's first trials. Optuna's ``enqueue_trial(skip_if_exists=True)`` checks and then adds:
    two workers that start together both find no baseline and both queue one. A lock held by a
    worker that dies is released with it (file and database locks) or expires (Redis)."""
    url = url or default_storage_url()
    kind, path = scheme(url), journal_path(url)
    if path is None and kind == "sqlite":
        database = sqlalchemy.engine.make_url(url).database
        path = Path(database) if database and database != ":memory:" else None
    if path is not None:
        with file_lock(path.with_name(f"{path.name}.{_LOCK_NAME}.lock")):
            yield
    elif kind in ("redis", "rediss"):
        bare, prefix = redis_url(url)
        with (
            redis.Redis.from_url(bare) as client,
            client.lock(
                f"{prefix}:{_LOCK_NAME}",
                timeout=_LOCK_EXPIRY_S,
                blocking_timeout=_LOCK_WAIT_S,
            ),
        ):
            yield
    elif kind in ("postgresql", "mysql"):
        with _database_lock(with_driver(url)):
            yield
    else:
        yield  # an in-memory SQLite database: one process only


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive among the processes of one machine; released when the holder exits, however."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def _database_lock(url: str) -> Iterator[None]:
    """A session-level advisory lock: the server drops it when the connection closes."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    postgresql = engine.dialect.name == "postgresql"
    take, release = (
        ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)")
        if postgresql
        else (f"SELECT GET_LOCK(:name, {_LOCK_WAIT_S})", "SELECT RELEASE_LOCK(:name)")
    )
    key = {"key": zlib.crc32(_LOCK_NAME.encode())} if postgresql else {"name": _LOCK_NAME}
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(take), key)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(release), key)
    finally:
        engine.dispose()
