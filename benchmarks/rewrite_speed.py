"""``make bench-rewrite``: the seed CNN trained through the rewrite path (a plain architecture,
every knob applied by ``tune.training.rewrite``) against the built-in builder it replaced, read
from git at ``BEFORE``. Both models live in one process and train in alternating blocks of a few
seconds, the order swapped every block, so a shared machine's changing speed hits both alike;
the ratio is the median over adjacent pairs of blocks, by the wall clock and by the process's
CPU time. Only training steps are timed: validation and the clean-train evaluation run the same
layers in inference mode on both paths."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from benchmarks.output import OutOption, bench_app, results_folder, write_results
from tune.cli import quiet_libraries, user_errors
from tune.contract import SEED_CNN, ModelSource, Params
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning
from tune.engine.config import BASELINE

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

BEFORE = "0c04542"  # the last commit whose built-ins had their own builder
TABLE_FILE = "rewrite_speed.md"
VALIDATION_IMAGES = 500  # split off as in a study, never used: only training steps are timed
BUILDER, REWRITE = "built-in builder (before)", "rewrite path"
CONFIGS: dict[str, Params] = {
    "seed 000 (baseline)": dict(BASELINE),
    "batch norm + augmentation + weight noise": {
        **BASELINE,
        "batch_norm": True,
        "flip": True,
        "width_shift": 0.1,
        "height_shift": 0.1,
        "weight_noise": 0.01,
    },
}
app = bench_app(__doc__)


def _old_builder() -> Callable[..., keras.Model]:
    """``build_model`` as it was at ``BEFORE``: the only copy is git's."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(
        ["git", "-C", str(root), "show", f"{BEFORE}:tune/training/models.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "models_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("models_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model


def _compiled(build: Callable[[], keras.Model], params: Params) -> keras.Model:
    import keras

    from tune.training.fit import _dtype_policy, compile_model

    keras.utils.set_random_seed(0)
    with _dtype_policy("auto"):
        model = build()
    compile_model(model, params)
    return model


def _block_seconds(model: keras.Model, batches: tf.data.Dataset, steps: int) -> tuple[float, float]:
    """Wall seconds, and the process's CPU seconds over all its threads: a stall of the machine
    lengthens the first but not the second."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def _compare(seconds: dict[str, list[tuple[float, float]]], images: int) -> dict[str, object]:
    """Both clocks' view of the paired blocks: the wall clock is what a user waits, CPU time what
    the code costs when the machine stalls one arm's block and not the other's."""
    row: dict[str, object] = {}
    for clock, name in enumerate(("wall", "cpu")):
        pairs = [b[clock] / a[clock] for b, a in zip(seconds[BUILDER], seconds[REWRITE])]
        row |= {
            f"{arm} img/{name}-s": round(images / statistics.median(v[clock] for v in values))
            for arm, values in seconds.items()
        }
        row |= {
            f"{name} ratio": round(statistics.median(pairs), 3),
            f"{name} pair range": f"{min(pairs):.3f}-{max(pairs):.3f}",
            f"block_{name}_seconds": {
                arm: [round(v[clock], 3) for v in values] for arm, values in seconds.items()
            },
        }
    return row


@app.command()
@user_errors
def run(
    data: Annotated[str, typer.Option(help="data source")] = "../shared/data/cifar10-jpeg.tar.gz",
    images: Annotated[int, typer.Option(help="training images")] = 10_000,
    blocks: Annotated[
        int, typer.Option(help="timed blocks per arm, after one untimed (graph tracing)")
    ] = 12,
    steps: Annotated[int, typer.Option(help="training steps per block")] = 150,
    out: OutOption = None,
) -> None:
    quiet_libraries()
    import keras
    import tensorflow as tf

    from tune.training.models import build_model

    splits = split_for_tuning(load_dataset(data), VALIDATION_IMAGES, images, seed=0)
    shape, classes = splits.x_train.shape[1:], len(splits.class_names)
    old = _old_builder()
    rows = []
    for config, params in CONFIGS.items():
        keras.backend.clear_session()
        batch = int(params["batch_size"])
        # Batched once and repeated: a block starts a new iterator, which must not refill a shuffle
        # buffer.
        batches = (
            tf.data.Dataset.from_tensor_slices((splits.x_train, splits.y_train))
            .batch(batch)
            .repeat()
        )
        # each lambda is called at once, in its own iteration
        models = {
            BUILDER: _compiled(lambda: old(SEED_CNN, params, shape, classes), params),  # noqa: B023
            REWRITE: _compiled(
                lambda: build_model(ModelSource(), params, shape, classes)[0],  # noqa: B023
                params,
            ),
        }
        for model in models.values():
            _block_seconds(model, batches, steps)
        seconds: dict[str, list[tuple[float, float]]] = {arm: [] for arm in models}
        for turn in range(blocks):
            for arm, model in sorted(models.items(), reverse=bool(turn % 2)):
                seconds[arm].append(_block_seconds(model, batches, steps))
        rows.append({"config": config, **_compare(seconds, steps * batch)})
        typer.echo(
            str({key: value for key, value in rows[-1].items() if not key.startswith("block")})
        )
    folder = results_folder(out, "rewrite_speed")
    header = [
        "config",
        f"{BUILDER} img/wall-s",
        f"{REWRITE} img/wall-s",
        "wall ratio",
        "wall pair range",
        f"{BUILDER} img/cpu-s",
        f"{REWRITE} img/cpu-s",
        "cpu ratio",
        "cpu pair range",
    ]
    table = (
        "| "
        + " | ".join(header)
        + " |\n|"
        + " --- |" * len(header)
        + "\n"
        + "".join("| " + " | ".join(str(row[key]) for key in header) + " |\n" for row in rows)
    )
    write_results(
        folder,
        {
            "command": " ".join(sys.argv),
            "images": images,
            "blocks": blocks,
            "steps": steps,
            "rows": rows,
        },
        TABLE_FILE,
        table,
        typer.echo,
    )


if __name__ == "__main__":
    app()
