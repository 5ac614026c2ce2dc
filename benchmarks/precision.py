"""``make bench-precision``: does computing in bfloat16 change what a study finds?

The same fixed-length study runs twice through ``tune run``, once in float32 and once with
``precision: auto``. The sampler seed is the same, so trial N gets the same hyperparameters in
both; per trial, the best validation accuracy and the regime label are set side by side, with
the wall time of each study.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import optuna
import typer

from benchmarks.output import (
    DataOption,
    OutOption,
    SpaceOption,
    bench_app,
    results_folder,
    write_results,
)
from benchmarks.studies import DEFAULT_SPACE, fixed_length_space, scratch_store
from tune.cli import quiet_libraries, user_errors
from tune.commands.run import RunOverrides, run_study
from tune.contract import (
    AUTO_PRECISION,
    BEST_EPOCH,
    VAL_ACCURACY,
    Objective,
    at_best,
    at_best_epoch,
)
from tune.engine import trial_record
from tune.engine.config import load_space

TABLE_FILE = "precision.md"
PRECISIONS = ("float32", AUTO_PRECISION)


class PrecisionRun(TypedDict):
    """One trial as one of the two studies ran it."""

    state: str
    regime: str
    value: float | None
    val_accuracy: float | None
    best_epoch: float | None


def _study(
    space_path: Path, precision: str, *, data: str | None, trials: int, epochs: int
) -> tuple[list[optuna.trial.FrozenTrial], float]:
    with tempfile.TemporaryDirectory() as folder, scratch_store(Path(folder) / "store"):
        space_file = fixed_length_space(
            space_path, Path(folder), data=data, trials=trials, epochs=epochs, precision=precision
        )
        started = time.perf_counter()
        study = run_study(
            space_file, RunOverrides(), storage=None, tracking_uri=None, echo=lambda line: None
        )
        return study.get_trials(deepcopy=False), time.perf_counter() - started


def _row(trial: optuna.trial.FrozenTrial, objective: Objective) -> PrecisionRun:
    """The trial's regime, and its validation accuracy at the epoch it kept (its best objective)."""
    curves = trial_record.trial_curves(trial)
    kept = curves and at_best_epoch(curves, objective)
    return {
        "state": trial.state.name,
        "regime": trial_record.trial_regime(trial),
        "value": trial.value,
        "val_accuracy": kept[at_best(VAL_ACCURACY)] if kept else None,
        "best_epoch": kept[BEST_EPOCH] if kept else None,
    }


def compare_precisions(
    space_path: Path, *, data: str | None, trials: int, epochs: int
) -> dict[str, Any]:
    studies = {
        precision: _study(space_path, precision, data=data, trials=trials, epochs=epochs)
        for precision in PRECISIONS
    }
    first, second = (studies[p][0] for p in PRECISIONS)
    objective = load_space(space_path).objective
    # a JSON row per trial, with a run per precision under the precision's name
    rows: list[dict[str, Any]] = [
        {
            "trial": a.number,
            "params": a.params,
            "same_params": a.params == b.params,
            **{precision: _row(t, objective) for precision, t in zip(PRECISIONS, (a, b))},
        }
        for a, b in zip(first, second)
    ]
    return {
        "trials": rows,
        "wall_s": {p: studies[p][1] for p in PRECISIONS},
        "same_regime": sum(r[PRECISIONS[0]]["regime"] == r[PRECISIONS[1]]["regime"] for r in rows),
    }


def markdown(results: dict[str, Any]) -> str:
    walls = results["wall_s"]
    lines = [
        f"{len(results['trials'])} trials of {results['epochs']} epochs each, same hyperparameters "
        f"trial for trial; study wall time float32 {walls['float32']:.0f} s, auto "
        f"{walls[AUTO_PRECISION]:.0f} s ({walls['float32'] / walls[AUTO_PRECISION]:.2f}× faster); "
        f"same regime in {results['same_regime']} of {len(results['trials'])} trials.",
        "",
        "| trial | float32 val accuracy | float32 regime | auto val accuracy | auto regime |",
        "| ---: | ---: | --- | ---: | --- |",
    ]
    for row in results["trials"]:
        a, b = row["float32"], row[AUTO_PRECISION]
        lines.append(
            f"| {row['trial']} | {a['val_accuracy'] or float('nan'):.4f} | {a['regime']} | "
            f"{b['val_accuracy'] or float('nan'):.4f} | {b['regime']} |"
        )
    return "\n".join(lines) + "\n"


app = bench_app(__doc__)


@app.command()
@user_errors
def run(
    data: DataOption = None,
    space: SpaceOption = DEFAULT_SPACE,
    trials: Annotated[int, typer.Option(min=1, help="trials per study")] = 4,
    epochs: Annotated[int, typer.Option(min=1, help="epochs per trial")] = 10,
    out: OutOption = None,
) -> None:
    """The study in float32, then in precision auto."""
    quiet_libraries()
    folder = results_folder(out, "precision")
    results = {
        "space": str(space),
        "data": data,
        "epochs": epochs,
        **compare_precisions(space, data=data, trials=trials, epochs=epochs),
    }
    write_results(folder, results, TABLE_FILE, markdown(results), typer.echo)


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.precision")
