"""Optuna storage URLs: which storage a URL names, opening it, and showing it without its
password. The default URL is the journal file of ``tune.paths``; for several machines, every
worker points at the same PostgreSQL/MySQL URL or at Redis.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from tune.errors import StudyError
from tune.paths import journal_file

# Where every command (and the dashboard's server process) takes the storage URL from when no
# --storage is given: the shell environment, or the dashboard's, which keeps a password out of `ps`.
STORAGE_ENV = "TUNE_STORAGE"
_RDB_SCHEMES = ("sqlite", "postgresql", "mysql")
_MASK = "***"
_SECRET_KEYS = frozenset({"password", "passwd", "pwd"})
_RDB_ATTEMPTS = 5


def default_storage_url() -> str:
    return f"journal:{journal_file()}"


def redact(url: str) -> str:
    """A storage URL fit for logs and MLflow: every password replaced, in any form the drivers
    accept. The URL is parsed the way redis-py parses it (``urllib``): the user info ends at the
    last ``@``, so a password holding ``@`` is masked whole, and ``?password=`` is masked too."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{_MASK}@{host}" if has_password else netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    masked = [(key, _MASK if key.lower() in _SECRET_KEYS else value) for key, value in pairs]
    if netloc == parts.netloc and masked == pairs:
        return url  # nothing to hide; re-assembling could change how the URL is written
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(masked, safe="*")))


def journal_path(url: str) -> Path | None:
    """The journal file a URL names (``journal:PATH`` or a bare ``PATH.log``), else None."""
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:"))
    return Path(url) if url.endswith(".log") and "://" not in url else None


def with_driver(url: str) -> str:
    """Plain ``postgresql://`` means psycopg2 or psycopg 3 depending on the SQLAlchemy version;
    name the driver that ``tune`` installs."""
    return (
        "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if url.startswith("postgresql://")
        else url
    )


def scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0]


def redis_url(url: str) -> tuple[str, str]:
    """The URL redis-py understands, and the key prefix: ``?prefix=NAME`` keeps one team's or
    project's journal apart from others on a shared server."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", [""])[0]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), prefix


def _redis_backend(url: str) -> JournalRedisBackend:
    bare, prefix = redis_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return JournalRedisBackend(bare, prefix=prefix)


def _connect(url: str) -> BaseStorage | None:
    path = journal_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    kind = scheme(url)
    if kind in ("redis", "rediss"):
        return JournalStorage(_redis_backend(url))
    if kind in _RDB_SCHEMES:
        return _rdb_storage(with_driver(url))
    return None


def _rdb_storage(url: str) -> RDBStorage:
    """Workers starting together on an empty database race to create Optuna's tables and all but
    one fail; once the winner is done, a retry finds the tables in place."""

    def connect() -> RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            return RDBStorage(
                url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=60, grace_period=180
            )

    for attempt in range(1, _RDB_ATTEMPTS):
        try:
            return connect()
        except sqlalchemy.exc.SQLAlchemyError:
            time.sleep(attempt)
    return connect()


def open_storage(url: str | None) -> BaseStorage:
    """An Optuna storage for ``url``: ``journal:PATH`` or a ``.log`` path, ``redis://``, or an
    RDB URL."""
    url = url or default_storage_url()
    try:
        storage = _connect(url)
    # any driver error means the same thing to the user: cannot open
    except Exception as exc:  # noqa: BLE001
        lines = str(exc).replace(url, redact(url)).strip().splitlines()
        detail = (lines or [type(exc).__name__])[0]
        raise StudyError(f"storage {redact(url)!r}: cannot open: {detail}") from None
    if storage is None:
        raise StudyError(
            f"storage {redact(url)!r}: unknown kind; use journal:PATH, a PATH ending in .log, "
            "redis://HOST:PORT/DB[?prefix=NAME], or a database URL (sqlite:///, postgresql://, mysql://)"
        )
    return storage
