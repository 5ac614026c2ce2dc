"""``tune ui``: the MLflow UI on these stores, stopped with ``tune`` however ``tune`` is stopped.

``mlflow ui`` runs a server with worker processes of its own. Were ``tune`` to die alone, they
would keep the port, so ``tune.runtime.processes.serve`` gives the server a process group of its
own and ends that whole group on every signal that ends ``tune``.
"""

from __future__ import annotations

import sys

from tune.runtime.processes import LOOPBACK
from tune.tracking.tracker import Tracker, runs_page, study_names


def ui_command(tracking_uri: str, port: int) -> list[str]:
    """Bound to the loopback interface: a tracking store is nobody else's business by default.
    One worker serves one person's browser; MLflow's default four each load MLflow, which takes
    a minute on a busy 2-core machine."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def study_pages(tracking_uri: str, port: int) -> str:
    """One line per study with the address of its runs, so a click lands on the trials rather
    than on the UI's start page; opening each study's tracker gives an older experiment the kind
    and view that address relies on."""
    ui_url = f"http://{LOOPBACK}:{port}"
    pages = [
        f"  {name}: {runs_page(ui_url, Tracker(name, tracking_uri).experiment_id)}"
        for name in study_names(tracking_uri)
    ]
    return (
        "\n".join(["the runs of each study:", *pages])
        if pages
        else "no study in this store yet: `make tune` runs one"
    )
