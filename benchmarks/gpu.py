"""``make bench-gpu``: that a real trial uses the GPU, and how fast the seed CNN trains on it.

A few minutes on a GPU machine. Every arm is a real trial: ``train_isolated`` trains it in a trial
process forked from the fork server that imported TensorFlow (as ``tune run`` does), so the check
covers what matters: a process forked after TensorFlow loaded can still open the GPU. While the
first arm trains, ``nvidia-smi`` is asked which processes hold GPU memory; the trial process must
be one of them. Then float32 and ``auto`` (bfloat16 where the GPU computes it) at two batch sizes:
images per second over the median epoch, the first epoch (graph tracing) left out.
``--allow-cpu`` runs the same on a machine without a GPU, for the test suite.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Annotated

import psutil
import typer

from benchmarks.output import OutOption, bench_app, results_folder, write_results
from tune.cli import quiet_libraries, user_errors
from tune.contract import ModelSource, Splits
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning
from tune.engine.config import BASELINE, default_train_settings
from tune.errors import TuneError
from tune.runtime.devices import visible_gpus
from tune.training.isolated import close_trial_process, start_fork_server, train_isolated

TABLE_FILE = "gpu.md"
ARMS: tuple[tuple[str, int], ...] = (("float32", 64), ("auto", 64), ("float32", 256), ("auto", 256))


@dataclass(frozen=True)
class ArmSpeed:
    precision: str
    batch_size: int
    images_per_second: float


def gpu_holders() -> set[int]:
    """The pids holding GPU memory, as the driver sees them; empty without ``nvidia-smi``."""
    if shutil.which("nvidia-smi") is None:
        return set()
    query = ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"]
    listed = subprocess.run(query, capture_output=True, text=True, check=False)
    return {int(line) for line in listed.stdout.split() if line.strip().isdigit()}


def _descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def train_arm(
    splits: Splits, precision: str, batch_size: int, epochs: int, seen: set[int]
) -> ArmSpeed:
    """One trial; every epoch, the trial processes ``nvidia-smi`` lists go into ``seen``."""
    seconds: list[float] = []
    mark = [time.perf_counter()]

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        seconds.append(now - mark[0])
        mark[0] = now
        seen.update(gpu_holders() & _descendants())

    settings = default_train_settings(
        ModelSource(), epochs, seed=0, precision=precision, clean_train_size=len(splits.y_val)
    )
    train_isolated({**BASELINE, "batch_size": batch_size}, splits, settings, on_epoch)
    timed = seconds[1:] or seconds
    return ArmSpeed(precision, batch_size, len(splits.y_train) / statistics.median(timed))


def markdown(gpus: list[str], used: bool, arms: list[ArmSpeed]) -> str:
    lines = [
        f"# The seed CNN on {', '.join(gpus) or 'no GPU (CPU)'}",
        "",
        f"A real trial process held GPU memory: {'yes' if used else 'no'}.",
        "",
        "| precision | batch | images/s |",
        "| --- | --- | --- |",
        *(f"| {a.precision} | {a.batch_size} | {a.images_per_second:,.0f} |" for a in arms),
    ]
    return "\n".join(lines) + "\n"


app = bench_app(__doc__)


@app.command()
@user_errors
def main(
    data: Annotated[str, typer.Option(help="data source")] = "synthetic:12000",
    train_images: Annotated[int, typer.Option(min=64, help="training images per epoch")] = 10000,
    epochs: Annotated[int, typer.Option(min=2, help="epochs per arm")] = 4,
    allow_cpu: Annotated[bool, typer.Option(help="run without a GPU (for the tests)")] = False,
    out: OutOption = None,
) -> None:
    quiet_libraries()
    gpus = visible_gpus()
    if not gpus and not allow_cpu:
        raise TuneError("no GPU is visible (nvidia-smi lists none); --allow-cpu runs anyway")
    start_fork_server()
    dataset = load_dataset(data)
    validation = max(10, min(2000, len(dataset.y_train) - train_images))
    splits = split_for_tuning(dataset, validation, train_images, seed=0)
    seen: set[int] = set()
    try:
        arms = [train_arm(splits, p, b, epochs, seen) for p, b in ARMS]
    finally:
        close_trial_process()
    used = bool(seen)
    table = markdown(gpus, used, arms)
    results = {
        "gpus": gpus,
        "trial_process_used_gpu": used,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "train_images": len(splits.y_train),
        "epochs": epochs,
        "arms": [vars(arm) for arm in arms],
    }
    folder = results_folder(out, "gpu")
    write_results(folder, results, TABLE_FILE, table, typer.echo)
    if gpus and not used:
        raise typer.Exit(1)  # a GPU is there and no trial used it: the check failed


if __name__ == "__main__":
    app()
