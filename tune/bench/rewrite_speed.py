"""``make bench-rewrite``: the seed CNN trained through the rewrite path (a plain architecture,
every knob applied by ``tune.training.rewrite``) against the built-in builder it replaced, read
from git at ``BEFORE``, side by side in one process, arms interleaved. Images per second are the
training images over the median epoch, the first (graph tracing) left out."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tune.bench.output import OutOption, bench_app, results_folder, write_results
from tune.cli import quiet_libraries, user_errors
from tune.contract import ModelSource, Params
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning
from tune.engine.space import BASELINE

BEFORE = "0c04542"  # the last commit whose built-ins had their own builder
TABLE_FILE = "rewrite_speed.md"
CONFIGS: dict[str, Params] = {
    "seed 000 (baseline)": dict(BASELINE),
    "batch norm + augmentation + weight noise": {
        **BASELINE, "batch_norm": True, "flip": True, "width_shift": 0.1, "height_shift": 0.1, "weight_noise": 0.01},
}
app = bench_app(__doc__)


def _old_builder() -> Callable[..., Any]:
    """``build_model`` as it was at ``BEFORE``: the only copy is git's."""
    root = Path(__file__).resolve().parents[2]
    text = subprocess.run(["git", "-C", str(root), "show", f"{BEFORE}:tune/training/models.py"],
                          capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "models_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("models_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model


def _epoch_seconds(build: Callable[[], Any], params: Params, data: tuple[Any, Any], epochs: int) -> list[float]:
    import keras

    from tune.training.fit import _dtype_policy, compile_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    with _dtype_policy("auto"):
        model = build()
    compile_model(model, params)
    marks = [time.perf_counter()]
    stamp = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: marks.append(time.perf_counter()))
    model.fit(data[0], validation_data=data[1], epochs=epochs, callbacks=[stamp], verbose=0)
    return [b - a for a, b in zip(marks, marks[1:])]


@app.command()
@user_errors
def run(
    data: Annotated[str, typer.Option(help="data source")] = "../shared/data/cifar10-jpeg.tar.gz",
    images: Annotated[int, typer.Option(help="training images")] = 10_000,
    validation: Annotated[int, typer.Option(help="validation images")] = 2_000,
    epochs: Annotated[int, typer.Option(help="epochs per arm, the first left out")] = 4,
    rounds: Annotated[int, typer.Option(help="times each arm runs, interleaved")] = 2,
    out: OutOption = None,
) -> None:
    quiet_libraries()
    from tune.training.models import build_model
    from tune.training.pipeline import eval_dataset, train_dataset

    splits = split_for_tuning(load_dataset(data), validation, images, seed=0)
    shape, classes = splits.x_train.shape[1:], len(splits.class_names)
    old = _old_builder()
    rows = []
    for config, params in CONFIGS.items():
        batches = (train_dataset(splits.x_train, splits.y_train, int(params["batch_size"]), 0), eval_dataset(splits.x_val, splits.y_val))
        arms = {"built-in builder (before)": lambda: old("seed_cnn", params, shape, classes),
                "rewrite path": lambda: build_model(ModelSource(), params, shape, classes)[0]}
        medians: dict[str, list[float]] = {arm: [] for arm in arms}
        for _ in range(rounds):
            for arm, build in arms.items():
                medians[arm].append(statistics.median(_epoch_seconds(build, params, batches, epochs)[1:]))
        speed = {arm: len(splits.y_train) / statistics.median(values) for arm, values in medians.items()}
        rows.append({"config": config, **{f"{arm} img/s": round(value) for arm, value in speed.items()},
                     "ratio": round(speed["rewrite path"] / speed["built-in builder (before)"], 3)})
        typer.echo(str(rows[-1]))
    folder = results_folder(out, "rewrite_speed")
    header = ["config", "built-in builder (before) img/s", "rewrite path img/s", "ratio"]
    table = "| " + " | ".join(header) + " |\n|" + " --- |" * len(header) + "\n" + "".join(
        "| " + " | ".join(str(row[key]) for key in header) + " |\n" for row in rows)
    write_results(folder, {"command": " ".join(sys.argv), "images": images, "epochs": epochs, "rounds": rounds, "rows": rows},
                  TABLE_FILE, table, typer.echo)


if __name__ == "__main__":
    app()
