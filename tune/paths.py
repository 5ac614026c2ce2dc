"""Where ``tune`` keeps things on disk: one store folder (``mlruns/`` unless ``$TUNE_STORE_DIR``
says otherwise) holding the Optuna journal, the MLflow database and artifacts, reports and
exports. Storage URLs, which may point anywhere, are ``tune.runtime.storage``'s business."""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "TUNE_STORE_DIR"


def store_dir() -> Path:
    return Path(os.environ.get(STORE_ENV, "mlruns"))


def journal_file() -> Path:
    """The default Optuna storage: a journal file needs no server and is safe for several worker
    processes on one machine (file lock)."""
    return store_dir() / "optuna" / "journal.log"


def mlflow_database() -> Path:
    """Kept apart from the Optuna journal so neither tool's migrations can touch the other's."""
    return store_dir() / "mlflow.db"


def artifacts_dir(study_name: str) -> Path:
    return store_dir() / "artifacts" / study_name


def report_dir(study_name: str) -> Path:
    return store_dir() / "reports" / study_name


def exports_dir() -> Path:
    return store_dir() / "exports"


def models_dir(study_name: str) -> Path:
    """Retrained models, kept beside the MLflow artifacts that copy them."""
    return store_dir() / "models" / study_name
