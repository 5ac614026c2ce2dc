"""``tune dashboard``: optuna-dashboard on the study storage, bound to 127.0.0.1 and stopped with
``tune`` the way ``tune ui`` is.

The server runs as ``python -m tune.commands.dashboard PORT`` in a process group of its own. It
opens the storage the way every ``tune`` command does (journal file, SQLite, PostgreSQL, Redis
with its prefix), so it sees the same studies; the storage URL reaches it in ``$TUNE_STORAGE``
rather than on its command line, where a password would show in ``ps``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tune.runtime.processes import LOOPBACK, serve
from tune.runtime.storage import STORAGE_ENV, open_storage, redact


def dashboard_command(port: int) -> list[str]:
    return [sys.executable, "-m", __name__, str(port)]


def serve_dashboard(url: str, port: int, echo: Callable[[str], None]) -> int:
    """The storage is opened here first, so a bad URL is one error message rather than a
    server that dies on start."""
    open_storage(url)
    echo(
        f"Optuna dashboard on http://{LOOPBACK}:{port}/dashboard for {redact(url)} (Ctrl-C to stop)"
    )
    return serve(dashboard_command(port), env={**os.environ, STORAGE_ENV: url})


def _main(port: int) -> None:
    from optuna_dashboard import run_server

    run_server(open_storage(os.environ[STORAGE_ENV]), host=LOOPBACK, port=port)


if __name__ == "__main__":
    _main(int(sys.argv[1]))
