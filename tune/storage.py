"""Where studies live: the Optuna storage behind a URL, and the local store folder.

The default is an Optuna journal file under ``mlruns/optuna/``: it needs no server, is safe for
several worker processes on one machine (file lock), and is kept apart from MLflow's database so
neither tool's migrations can touch the other's tables. For several machines, point every worker
at the same PostgreSQL/MySQL URL or at Redis.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from tune.errors import StudyError

STORE_ENV = "TUNE_STORE_DIR"
_RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


def store_dir() -> Path:
    """The folder holding every store (``mlruns/`` unless ``$TUNE_STORE_DIR`` says otherwise)."""
    return Path(os.environ.get(STORE_ENV, "mlruns"))


def default_storage_url() -> str:
    return f"journal:{store_dir() / 'optuna' / 'journal.log'}"


def redact(url: str) -> str:
    """A storage URL fit for logs: the password, if any, replaced."""
    return re.sub(r"(//[^:/@]+:)[^@]+@", r"\1***@", url)


def journal_path(url: str) -> Path | None:
    """The journal file a URL names (``journal:PATH`` or a bare ``PATH.log``), else None."""
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:"))
    return Path(url) if url.endswith(".log") and "://" not in url else None


def _with_driver(url: str) -> str:
    """Plain ``postgresql://`` means psycopg2 or psycopg 3 depending on the SQLAlchemy version;
    name the driver that ``tune`` installs."""
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url


def _redis_backend(url: str) -> JournalRedisBackend:
    """``?prefix=NAME`` keeps one team's or project's journal apart from others on a shared server."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", [""])[0]
    bare = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return JournalRedisBackend(bare, prefix=prefix)


def _connect(url: str) -> BaseStorage | None:
    path = journal_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme in ("redis", "rediss"):
        return JournalStorage(_redis_backend(url))
    if scheme in _RDB_SCHEMES:
        return _rdb_storage(_with_driver(url))
    return None


def _rdb_storage(url: str, attempts: int = 5) -> RDBStorage:
    """Workers starting together on an empty database race to create Optuna's tables and all but
    one fail; once the winner is done, a retry finds the tables in place."""

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=60, grace_period=180)

    for attempt in range(1, attempts):
        try:
            return connect()
        except sqlalchemy.exc.SQLAlchemyError:
            time.sleep(attempt)
    return connect()


def open_storage(url: str | None) -> BaseStorage:
    """An Optuna storage for ``url``: ``journal:PATH`` or a ``.log`` path, ``redis://``, or an RDB URL."""
    url = url or default_storage_url()
    try:
        storage = _connect(url)
    except Exception as exc:  # any driver error means the same thing to the user: cannot open
        raise StudyError(f"storage {redact(url)!r}: cannot open: {exc}") from None
    if storage is None:
        raise StudyError(
            f"storage {redact(url)!r}: unknown kind; use journal:PATH, a PATH ending in .log, "
            "redis://HOST:PORT/DB[?prefix=NAME], or a database URL (sqlite:///, postgresql://, mysql://)"
        )
    return storage


def load_existing_study(name: str, url: str | None) -> optuna.Study:
    """Open a study that must already exist: reading commands never create an empty one."""
    url = url or default_storage_url()
    path = journal_path(url)
    if path is not None and not path.exists():
        raise StudyError(f"study {name!r} not found: no study has been run with storage {url!r} yet")
    storage = open_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StudyError(f"study {name!r} not found in {redact(url)}; studies there: {known}")
    return optuna.load_study(study_name=name, storage=storage)
