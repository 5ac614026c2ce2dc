"""Storage URLs shown to people and to MLflow: every password hidden, whatever form it takes."""

from __future__ import annotations

import pytest
import redis.connection
from sqlalchemy.engine import make_url

from tune.runtime.storage import redact

URLS = [  # (url, the host that must stay readable)
    ("postgresql://tune:hunter2-pw@db.example:5432/studies", "db.example:5432"),
    ("postgresql+psycopg://tune:p%40ss-word@db.example/studies", "db.example"),
    ("mysql+pymysql://tune@db.example/studies?password=qu3ry-pw&charset=utf8mb4", "db.example"),
    ("redis://:r3dis-pw@cache.example:6379/0", "cache.example:6379"),
    ("redis://tune:at@sign-pw@cache.example:6379/0?prefix=team", "cache.example:6379"),
    ("rediss://cache.example:6380?password=tls-query-pw", "cache.example:6380"),
]


def library_passwords(url: str) -> set[str]:
    """What the drivers themselves would send as the password."""
    if url.startswith("redis"):
        return {redis.connection.parse_url(url)["password"]}
    parsed = make_url(url)
    return {value for value in (parsed.password, parsed.query.get("password")) if value}


@pytest.mark.parametrize(("url", "host"), URLS)
def test_no_password_survives_in_any_form(url: str, host: str) -> None:
    shown = redact(url)
    secrets = library_passwords(url)
    assert secrets and all(len(secret) > 6 for secret in secrets)
    for secret in secrets:
        pieces = [
            secret,
            secret.replace("@", "%40"),
            *(piece for piece in secret.split("@") if len(piece) > 3),
        ]
        assert not any(piece in shown for piece in pieces), shown
    assert "***" in shown and host in shown, "the rest of the URL stays readable"


@pytest.mark.parametrize("url", ["sqlite:///mlruns/optuna.db", "journal:mlruns/optuna/journal.log",
                                 "mlruns/x.log", "postgresql://tune@db.example/studies",
                                 "redis://cache.example:6379/0?prefix=team"])
def test_urls_without_a_password_are_shown_unchanged(url: str) -> None:
    assert redact(url) == url
