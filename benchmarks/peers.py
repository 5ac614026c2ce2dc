"""``make bench-peers``: a wall-clock race between ``tune`` and other tuners on one task.

The arms run one after the other on the same search-space file, each in a process group of its
own that the race kills when the budget is spent, so every arm pays for its own start-up (imports,
data, tracing) and is cut off the same way. Each arm appends one line per finished epoch to its
events file, timed on the monotonic clock from the moment the race started its process, and the
results come from those files alone (``benchmarks.race``). TensorFlow is loaded only in the arms'
processes; the tune arm, like ``tune run``, trains each trial in a child of its own.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypedDict

import typer
from matplotlib.figure import Figure

from benchmarks.output import (
    RESULTS_FILE,
    DataOption,
    EpochsOption,
    OutOption,
    SpaceOption,
    results_folder,
)
from benchmarks.race import Event, Record, markdown_table, race_results, read_events
from benchmarks.studies import DEFAULT_SPACE
from tune.cli import quiet_libraries, user_errors
from tune.commands.run import RunOverrides, load_splits, run_study
from tune.contract import (
    VAL_ACCURACY,
    EpochHook,
    Params,
    Splits,
    Trainer,
    TrainingResult,
    TrainSettings,
)
from tune.engine.config import SearchSpace, dump_space, load_space
from tune.errors import TuneError
from tune.paths import STORE_ENV
from tune.report.curves import LineStyle, save_figure
from tune.runtime.processes import stop_group
from tune.tracking.tracker import TRACKING_URI_ENV
from tune.training.isolated import start_fork_server, train_isolated

TABLE_FILE, PLOT_FILE = "peers.md", "peers.png"
# Per arm, under ARMS_DIR/<arm>/: its events, its output, and its own store (Optuna, MLflow,
# KerasTuner).
ARMS_DIR, EVENTS_FILE, LOG_FILE, STORE = "arms", "events.jsonl", "log.txt", "store"
# The task every arm reads: the space file with the race's options applied.
SPACE_FILE = "space.yaml"
KILL_GRACE_S = 5.0

Arm = Callable[[Path, Record], None]


class EventLog:
    """An arm's ``Record``: one line per epoch, flushed at once, so a killed arm leaves behind every
    epoch it finished. The monotonic clock is system-wide, so the arm and the race read one
    clock."""

    def __init__(self, path: Path, started: float) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._started = started

    def __call__(self, trial: int, epoch: int, val_accuracy: float) -> None:
        self._file.write(
            Event(time.monotonic() - self._started, trial, epoch, val_accuracy).to_line()
        )
        self._file.flush()


def _timed(record: Record) -> Trainer:
    """tune's isolated trainer, with each epoch recorded in this process as it arrives, before
    tune's own hook can prune the trial. Trials run one at a time in a new study, so counting them
    numbers them as Optuna does."""
    numbers = itertools.count()

    def trainer(
        params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
    ) -> TrainingResult:
        trial = next(numbers)

        def timed(epoch: int, logs: dict[str, float]) -> None:
            record(trial, epoch, logs[VAL_ACCURACY])
            on_epoch(epoch, logs)

        return train_isolated(params, splits, settings, timed)

    return trainer


def _tune(space_file: Path, record: Record) -> None:
    """tune as shipped: ``tune run`` on the space, whose timeout the race set to its budget (with
    the fork server started early, as ``run_study`` does for its own trainer)."""
    start_fork_server()
    run_study(space_file, RunOverrides(), storage=None, tracking_uri=None, trainer=_timed(record))


def _peer_arms() -> ModuleType:
    """Imported in a Keras-side arm's own process only, so TensorFlow stays out of the race's."""
    from benchmarks import peer_arms

    return peer_arms


# In running order. Hyperband's best validation accuracy is the target every arm is timed to.
ARMS: dict[str, Arm] = {
    "tune": _tune,
    "keras_tuner_hyperband": lambda *arm: _peer_arms().hyperband(*arm),
    "optuna_tpe_median": lambda *arm: _peer_arms().optuna_tpe_median(*arm),
    "random_search": lambda *arm: _peer_arms().random_search(*arm),
}
TARGET_ARM = "keras_tuner_hyperband"


def _known_arms(names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in ARMS]
    if unknown:
        raise TuneError(f"unknown arm {', '.join(map(repr, unknown))}; known: {', '.join(ARMS)}")
    return names


def run_arm(name: str, space_file: Path, budget: float, folder: Path) -> str:
    """One arm in a new session, for at most ``budget`` seconds; says how it ended."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / EVENTS_FILE).touch()
    env = {key: value for key, value in os.environ.items() if key != TRACKING_URI_ENV}
    env.update({STORE_ENV: str(folder / STORE), "TF_CPP_MIN_LOG_LEVEL": "2"})
    with (folder / LOG_FILE).open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.peers",
                "arm",
                name,
                "--space",
                str(space_file),
                "--events",
                str(folder / EVENTS_FILE),
                "--started",
                repr(started),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            process.wait(timeout=max(0.0, started + budget - time.monotonic()))
        except subprocess.TimeoutExpired:
            return "budget"
        finally:
            stop_group(process, KILL_GRACE_S)  # the arm's trial processes and fork server too
    return (
        "finished"
        if process.returncode == 0
        else f"failed (exit {process.returncode}, see {folder / LOG_FILE})"
    )


class RaceTask(TypedDict):
    """What every arm of a race trains on, as the results file records it."""

    space: str
    data: str
    training_images: int
    validation_images: int
    model: str | None
    epochs: int
    searched: list[str]


def _task(space: SearchSpace, space_path: Path, splits: Splits) -> RaceTask:
    return {
        "space": str(space_path),
        "data": space.data.source,
        "training_images": len(splits.y_train),
        "validation_images": len(splits.y_val),
        "model": space.model.name,
        "epochs": space.training.epochs,
        "searched": sorted(space.searched()),
    }


def matplotlib_style(_name: str) -> LineStyle:
    """Matplotlib's own colour cycle, one colour per arm."""
    return {}


def plot_race(
    results: dict[str, Any],
    path: Path,
    title: str,
    style: Callable[[str], LineStyle] = matplotlib_style,
) -> Path:
    """Each arm's best-so-far as a step line held to the end of the budget, the target dotted;
    ``style`` gives an arm's extra line properties (colour, dashes) from its name."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    axes = fig.subplots()
    budget = results["budget_s"]
    for name, arm in results["arms"].items():
        if arm["best_so_far"]:
            times, values = zip(*arm["best_so_far"])
            axes.step(
                [*times, budget],
                [*values, values[-1]],
                where="post",
                marker="o",
                markersize=4,
                markevery=list(range(len(times))),
                label=name,
                **style(name),
            )
    target = results["target"]
    if target[VAL_ACCURACY] is not None:
        axes.axhline(
            target[VAL_ACCURACY],
            color="#555555",
            linestyle=":",
            linewidth=1,
            label=f"{target['arm']}'s best",
        )
    axes.set_xlim(0, budget)
    axes.set_xlabel("seconds since the arm's process started")
    axes.set_ylabel(f"best {VAL_ACCURACY} so far")
    axes.set_title(title)
    axes.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def race_task(
    space_path: Path,
    *,
    budget: float,
    data: str | None,
    epochs: int | None,
    echo: Callable[[str], None],
) -> tuple[SearchSpace, RaceTask]:
    """The space with the race's options applied, and the task it describes; its data is loaded
    once here so that a bad file or source fails before any arm starts."""
    space = load_space(space_path).with_overrides(
        data={"source": data},
        training={"epochs": epochs},
        study={"timeout": budget},
    )
    task = _task(space, space_path, load_splits(space))
    echo(
        f"{task['training_images']} training / {task['validation_images']} validation images, "
        f"{space.model.name}, at most {space.training.epochs} epochs; {budget:g} s per arm"
    )
    return space, task


def arm_events(out: Path, name: str) -> list[Event]:
    return read_events((out / ARMS_DIR / name / EVENTS_FILE).read_text(encoding="utf-8"))


def run_race(
    space_path: Path,
    *,
    budget: float,
    data: str | None,
    epochs: int | None,
    out: Path,
    arms: list[str],
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the arms on the task and write the results, table and plot into ``out``."""
    _known_arms(arms)
    space, task = race_task(space_path, budget=budget, data=data, epochs=epochs, echo=echo)
    out.mkdir(parents=True, exist_ok=True)
    space_file = out / SPACE_FILE
    space_file.write_text(
        dump_space(space, f"The task of the race, from {space_path}"), encoding="utf-8"
    )
    ended: dict[str, str] = {}
    for name in arms:
        echo(f"{name}: running, output in {out / ARMS_DIR / name / LOG_FILE}")
        ended[name] = run_arm(name, space_file, budget, out / ARMS_DIR / name)
    events = {name: arm_events(out, name) for name in arms}
    results = {
        "task": task,
        **race_results(events, ended, budget, TARGET_ARM),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    table = markdown_table(results)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / TABLE_FILE).write_text(f"{_title(results)}\n\n{table}", encoding="utf-8")
    plot_race(results, out / PLOT_FILE, f"{len(arms)} tuners, {budget:g} s each, on {task['data']}")
    echo(table + f"results in {out}: {RESULTS_FILE}, {TABLE_FILE}, {PLOT_FILE}")
    return results


def _title(results: dict[str, Any]) -> str:
    task = results["task"]
    return (
        f"Best validation accuracy within {results['budget_s']:g} s per tuner: {task['model']} on "
        f"{task['training_images']} images of {task['data']}, at most {task['epochs']} epochs, "
        f"searching {', '.join(task['searched'])}."
    )


app = typer.Typer(
    help=__doc__.splitlines()[0],
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
@user_errors
def race(
    budget: Annotated[float, typer.Option(min=1, help="seconds per arm")],
    space: SpaceOption = DEFAULT_SPACE,
    data: DataOption = None,
    epochs: EpochsOption = None,
    out: OutOption = None,
    arms: Annotated[str, typer.Option(help="comma-separated arms, in running order")] = ",".join(
        ARMS
    ),
) -> None:
    """Race tune against KerasTuner Hyperband, Optuna TPE + median pruning, and random search."""
    quiet_libraries()
    run_race(
        space,
        budget=budget,
        data=data,
        epochs=epochs,
        out=results_folder(out, "peers"),
        arms=[name.strip() for name in arms.split(",")],
        echo=typer.echo,
    )


@app.command(hidden=True)
@user_errors
def arm(
    name: Annotated[str, typer.Argument()],
    space: Annotated[Path, typer.Option()],
    events: Annotated[Path, typer.Option()],
    started: Annotated[
        float, typer.Option(help="time.monotonic() when the race started this process")
    ],
) -> None:
    """One arm, in the process the race started for it."""
    (name,) = _known_arms([name])
    quiet_libraries()
    ARMS[name](space, EventLog(events, started))


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.peers")
