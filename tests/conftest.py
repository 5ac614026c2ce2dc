"""Shared fixtures: isolated stores per test and a tiny search space on synthetic data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private store folder (what ``mlruns/`` is for a user), so tests never touch the real one."""
    store = tmp_path / "mlruns"
    monkeypatch.setenv("TUNE_STORE_DIR", str(store))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNE_STORAGE", raising=False)
    return store


def tiny_space(**sections: dict[str, Any]) -> dict[str, Any]:
    """The real quick.yaml shrunk to seconds: synthetic data, a few epochs, small sets, and no
    warm-start trial, so a study's trials are the baseline's and the sampler's, as tests script them."""
    space = yaml.safe_load((ROOT / "search_spaces" / "quick.yaml").read_text())
    space["data"].update(source="synthetic:600", validation_size=200, clean_train_size=200, train_subset=None)
    space["training"].update(epochs=3, batch_size=64)
    space["study"].update(trials=4, warm_start=False)
    for section, values in sections.items():
        space.setdefault(section, {}).update(values)
    return space


def write_space(path: Path, space: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def tune_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tune", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}, cwd=ROOT,
    )


def curves_from(
    train_loss: Sequence[float], val_loss: Sequence[float],
    train_acc: Sequence[float], val_acc: Sequence[float],
) -> dict[str, list[float]]:
    """Scripted learning curves: the honest ones given, Keras-like ones derived (a penalty on
    the loss, dropout lowering the accuracy), for diagnosis and report tests without training."""
    train_loss, val_loss = np.asarray(train_loss, float), np.asarray(val_loss, float)
    train_acc, val_acc = np.asarray(train_acc, float), np.asarray(val_acc, float)
    return {
        "loss": list(train_loss * 1.1 + 0.1), "accuracy": list(train_acc - 0.05),
        "data_loss": list(train_loss * 1.1), "val_loss": list(val_loss + 0.1),
        "val_accuracy": list(val_acc), "val_data_loss": list(val_loss),
        "clean_train_loss": list(train_loss), "clean_train_accuracy": list(train_acc),
    }
