"""The MLflow server as ``tune`` starts it (``tune ui``) and as a team runs one for many workers
(docs/several-machines.md): the command line and the environment, with two settings MLflow's
defaults get wrong for this job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tune.runtime.processes import LOOPBACK

# MLflow 3's server starts a job runner and eight huey consumers for its GenAI jobs, which tune
# never uses: on 2 cores they load MLflow all at once as the server starts, and hold up its stop
# by more than 10 s. A value the user set wins.
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
# uvicorn closes a connection idle for 5 s. A worker whose trial trained longer than that reuses
# its pooled connection just as the server closes it, gets "connection reset by peer", and
# MLflow's client retries with a warning in the worker's log; kept open longer than a trial's
# gaps between two requests, nothing is reset.
KEEP_ALIVE_S = 120


def server_environment() -> dict[str, str]:
    """This process's environment, with MLflow's job runner off unless the user turned it on."""
    return {JOB_EXECUTION_ENV: "false", **os.environ}


def tracking_server_command(
    backend_store_uri: str, artifacts: Path, port: int, workers: int = 1
) -> list[str]:
    """A tracking server for several ``tune`` workers: runs in ``backend_store_uri``, artifacts
    served from the folder ``artifacts``, bound to the loopback interface (docs/several-machines.md
    says how to open it up)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts.resolve().as_uri(),
        "--uvicorn-opts",
        f"--timeout-keep-alive {KEEP_ALIVE_S}",
    ]
