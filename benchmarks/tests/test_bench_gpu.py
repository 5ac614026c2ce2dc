"""``make bench-gpu`` on tiny budgets: without a GPU it refuses unless told, and with
``--allow-cpu`` every arm trains through a real trial process and lands in its results file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.integration


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", *args], capture_output=True, text=True,
        cwd=ROOT, env={**env, "CUDA_VISIBLE_DEVICES": ""}, timeout=600, check=False,
    )


def test_without_a_gpu_it_says_so_and_stops() -> None:
    run = _bench()
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: no GPU is visible")


def test_every_arm_trains_in_a_trial_process_and_is_written(tmp_path: Path) -> None:
    run = _bench("--allow-cpu", "--data", "synthetic:300", "--train-images", "128",
                 "--epochs", "2", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    arms = [(arm["precision"], arm["batch_size"]) for arm in results["arms"]]
    assert arms == [("float32", 64), ("auto", 64), ("float32", 256), ("auto", 256)]
    assert all(arm["images_per_second"] > 0 for arm in results["arms"])
    assert results["gpus"] == [] and results["trial_process_used_gpu"] is False
    assert results["train_images"] == 128
    assert "| auto | 256 |" in (tmp_path / "gpu.md").read_text()
