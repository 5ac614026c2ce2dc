"""``make bench-speed``: how fast the seed CNN trains through ``tune``'s trial path against the seed
scripts' own way, with augmentation off and on, side by side in one run, read against the
machine's measured arithmetic peak.

A tune arm is a real trial: ``train_isolated`` runs it in the trial process (as ``tune run`` does)
and the parent times each epoch as its metrics arrive, so an epoch counts its training, its
validation and the clean-train evaluation, and the pipe to the parent. A seed arm is the seed
scripts' code in a process of its own (``benchmarks.speed_arms``). The first epoch, which traces
the graphs, is left out; images per second are the training images over the median of the other
epochs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict, cast

import typer

from benchmarks.output import OutOption, bench_app, results_folder, write_results
from tune.cli import quiet_libraries, user_errors
from tune.contract import MIXED_BFLOAT16, ModelSource, Params, Splits
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning
from tune.engine.config import BASELINE, default_train_settings
from tune.training.isolated import train_isolated

TABLE_FILE = "speed.md"
MODEL = ModelSource()
# Seed 002's ImageDataGenerator ranges: what every augmented arm applies.
SEED_AUGMENTATION: Params = {
    "flip": True,
    "rotation": 10.0,
    "width_shift": 0.1,
    "height_shift": 0.1,
}


class Machine(TypedDict):
    """What the ``machine`` command measures in a process of its own."""

    matmul_gflops: dict[str, float]
    forward_flops_per_image: int
    auto_precision: str


@dataclass(frozen=True)
class Arm:
    """One way of training; ``batch_size`` and ``precision`` apply to tune arms only (the seed
    scripts fix batch 32 and float32 arithmetic on float64 arrays)."""

    way: str  # "seed_script" | "tune"
    augment: bool
    precision: str = "float32"
    batch_size: int = 32

    @property
    def name(self) -> str:
        what = (
            "seed script"
            if self.way == "seed_script"
            else f"tune {self.precision} batch {self.batch_size}"
        )
        return f"{what}, {'augmented' if self.augment else 'no augmentation'}"


ARMS = [
    arm
    for augment in (False, True)
    for arm in (
        Arm("seed_script", augment),
        Arm("tune", augment, "float32", 64),
        Arm("tune", augment, "auto", 64),
        Arm("tune", augment, "auto", 256),
    )
]


@dataclass(frozen=True)
class Task:
    """Where and how much: the data source and the sizes every arm trains on."""

    data: str
    train_images: int
    validation_images: int
    clean_train_images: int
    epochs: int

    def splits(self) -> Splits:
        return split_for_tuning(
            load_dataset(self.data), self.validation_images, self.train_images, seed=0
        )


def _child(command: str, task: Task, *options: str) -> object:
    """A Keras-side measurement in a fresh process; its answer is the last line it prints."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.speed",
            command,
            "--task",
            json.dumps(asdict(task)),
            *options,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"{command} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _tune_epochs(arm: Arm, task: Task, splits: Splits) -> list[float]:
    """Seed 000's hyperparameters (and seed 002's augmentation) through a real trial process."""
    seconds: list[float] = []
    mark = [time.perf_counter()]

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        seconds.append(now - mark[0])
        mark[0] = now

    params = {
        **BASELINE,
        "batch_size": arm.batch_size,
        **(SEED_AUGMENTATION if arm.augment else {}),
    }
    settings = default_train_settings(
        MODEL,
        task.epochs,
        seed=0,
        precision=arm.precision,
        clean_train_size=task.clean_train_images,
    )
    mark[0] = time.perf_counter()
    train_isolated(params, splits, settings, on_epoch)
    return seconds


def _measure(arm: Arm, task: Task, splits: Splits) -> list[float]:
    if arm.way == "seed_script":
        return cast(list[float], _child("seed-arm", task, *(["--augment"] if arm.augment else [])))
    return _tune_epochs(arm, task, splits)


def summarize(
    arms: list[Arm], seconds: list[list[float]], task: Task, machine: Machine
) -> list[dict[str, Any]]:
    """Per arm: images per second, the ratio to the seed script with the same augmentation, and
    the arithmetic it achieved against the matrix-multiply peak of the dtype it computed in."""
    forward = machine["forward_flops_per_image"]
    rows = []
    for arm, epochs in zip(arms, seconds):
        epoch_s = statistics.median(epochs[1:] or epochs)
        evaluated = task.validation_images + (task.clean_train_images if arm.way == "tune" else 0)
        dtype = machine["auto_precision"] if arm.precision == "auto" else arm.precision
        peak = machine["matmul_gflops"]["bfloat16" if dtype == MIXED_BFLOAT16 else "float32"]
        gflops = (3 * forward * task.train_images + forward * evaluated) / epoch_s / 1e9
        rows.append(
            {
                **asdict(arm),
                "name": arm.name,
                "computes_in": dtype,
                "epoch_seconds": [round(s, 3) for s in epochs],
                "images_per_s": task.train_images / epoch_s,
                "gflops": gflops,
                "share_of_peak": gflops / peak,
            }
        )
    for row in rows:
        base = next(r for r in rows if r["way"] == "seed_script" and r["augment"] == row["augment"])
        row["vs_seed_script"] = row["images_per_s"] / base["images_per_s"]
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| arm | computes in | images/s | × seed script | GFLOP/s | share of the matmul peak |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['name']} | {r['computes_in']} | {r['images_per_s']:,.0f} | "
        f"{r['vs_seed_script']:.2f} | {r['gflops']:.0f} | {r['share_of_peak']:.0%} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def run_speed(
    task: Task, out: Path, arms: list[Arm] = ARMS, echo: Callable[[str], None] = print
) -> dict[str, object]:
    machine = cast(Machine, _child("machine", task))
    splits = task.splits()
    seconds = []
    for arm in arms:
        echo(f"{arm.name}: {task.epochs} epochs on {task.train_images} images")
        seconds.append(_measure(arm, task, splits))
    rows = summarize(arms, seconds, task, machine)
    results: dict[str, object] = {"task": asdict(task), "machine": machine, "arms": rows}
    title = (
        f"Seed CNN training throughput, {task.train_images:,} training and "
        f"{task.validation_images:,} validation images of {task.data}, median epoch after the "
        f"first of {task.epochs}. Matmul peak: {machine['matmul_gflops']['float32']:.0f} GFLOP/s "
        f"float32, {machine['matmul_gflops']['bfloat16']:.0f} bfloat16; a training image costs "
        f"{3 * machine['forward_flops_per_image'] / 1e6:.1f} MFLOP."
    )
    write_results(out, results, TABLE_FILE, f"{title}\n\n{markdown_table(rows)}", echo)
    return results


app = bench_app(__doc__)


@app.command()
@user_errors
def run(
    data: Annotated[str, typer.Option(help="data source")],
    train_images: Annotated[int, typer.Option(min=10, help="training images per epoch")] = 10000,
    validation_images: Annotated[
        int, typer.Option(min=10, help="validation images per epoch")
    ] = 5000,
    clean_train_images: Annotated[
        int, typer.Option(min=1, help="clean-train images per epoch (tune arms)")
    ] = 2000,
    epochs: Annotated[int, typer.Option(min=2, help="epochs per arm; the first is left out")] = 3,
    out: OutOption = None,
) -> None:
    """Every arm, one after the other, on the same data."""
    quiet_libraries()
    task = Task(data, train_images, validation_images, clean_train_images, epochs)
    run_speed(task, results_folder(out, "speed"), echo=typer.echo)


def _task(text: str) -> Task:
    return Task(**json.loads(text))


@app.command("seed-arm", hidden=True)
def seed_arm(
    task: Annotated[str, typer.Option()], augment: Annotated[bool, typer.Option()] = False
) -> None:
    from benchmarks.speed_arms import seed_script_epochs

    parsed = _task(task)
    print(json.dumps(seed_script_epochs(parsed.splits(), parsed.epochs, augment)))


@app.command(hidden=True)
def machine(task: Annotated[str, typer.Option()]) -> None:
    from benchmarks.speed_arms import forward_flops, matmul_peak
    from tune.training.fit import resolve_precision

    splits = _task(task).splits()
    flops = forward_flops(MODEL, BASELINE, splits.x_train.shape[1:], len(splits.class_names))
    print(
        json.dumps(
            {
                "matmul_gflops": matmul_peak(),
                "forward_flops_per_image": flops,
                "auto_precision": resolve_precision("auto"),
            }
        )
    )


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.speed")
