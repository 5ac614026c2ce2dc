"""``make bench-peers``: a wall-clock race between ``tune`` and other tuners on one task.

The arms run one after the other on the same search-space file, each in a process group of its
own that the race kills when the budget is spent, so every arm pays for its own start-up (imports,
data, tracing) and is cut off the same way. Each arm appends one line per finished epoch to its
events file, timed on the monotonic clock from the moment the race started its process, and the
results come from those files alone (``benchmarks.race``). TensorFlow is loaded only in the arms'
processes (and in one short process that resolves ``precision: auto``, which every arm is then
given explicitly); the tune arm, like ``tune run``, trains each trial in a child of its own.

With ``--seeds``, the race runs once per sampler seed, each into ``seed-<seed>/`` of the output
folder, and a summary over the seeds goes at its top: one race is one draw of every tuner's luck.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Protocol, TypedDict

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
from benchmarks.race import (
    Event,
    Record,
    markdown_table,
    race_results,
    read_events,
    seeds_results,
    seeds_table,
)
from benchmarks.studies import DEFAULT_SPACE
from tune.cli import quiet_libraries, user_errors
from tune.commands.run import RunOverrides, load_splits, resolve_space, run_study
from tune.contract import (
    AUTO_PRECISION,
    VAL_ACCURACY,
    EpochHook,
    Params,
    Splits,
    Trainer,
    TrainingResult,
    TrainSettings,
)
from tune.engine.config import SearchSpace, dump_space
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
# With --seeds: each seed's race in its own folder under the output folder, whose own results,
# table and plot then summarize the seeds.
SEED_DIR = "seed-{}"
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
    seed: int | None = None,
) -> tuple[SearchSpace, RaceTask]:
    """The space with the race's options applied (``seed``, if given, as the sampler seed, the
    way ``tune run --seed`` sets it), and the task it describes; its data is loaded once here so
    that a bad file or source fails before any arm starts."""
    space = resolve_space(
        space_path, RunOverrides(timeout=budget, data=data, epochs=epochs, seed=seed)
    )
    task = _task(space, space_path, load_splits(space))
    echo(
        f"{task['training_images']} training / {task['validation_images']} validation images, "
        f"{space.model.name}, at most {space.training.epochs} epochs; {budget:g} s per arm"
    )
    return space, task


@functools.cache
def resolved_precision(precision: str) -> str:
    """What ``precision`` resolves to where the arms train, asked of a process of its own so that
    TensorFlow (and on a GPU, a context holding its memory) stays out of the race's. Written into
    the race's space, it makes every arm train in that one precision, so a ratio of times measures
    the search and not the arithmetic; cached, so several seeds ask once."""
    if precision != AUTO_PRECISION:
        return precision
    answer = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", "precision", precision],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if answer.returncode != 0:
        raise TuneError(f"resolving precision {precision!r} failed: {answer.stderr[-2000:]}")
    return answer.stdout.split()[-1]


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
    seed: int | None = None,
) -> dict[str, Any]:
    """Run the arms on the task, with ``seed`` as every arm's sampler seed (the space's if None),
    and write the results, table and plot into ``out``."""
    _known_arms(arms)
    space, task = race_task(
        space_path, budget=budget, data=data, epochs=epochs, echo=echo, seed=seed
    )
    space = space.with_overrides(
        training={"precision": resolved_precision(space.training.precision)}
    )
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
        "precision": space.training.precision,
        # None where the space sets ``seed: null``: tune's sampler is then unseeded, the peers' 0.
        "sampler_seed": space.study.sampler.seed,
        **race_results(events, ended, budget, TARGET_ARM),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    table = markdown_table(results)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / TABLE_FILE).write_text(f"{_title(results)}\n\n{table}", encoding="utf-8")
    plot_race(results, out / PLOT_FILE, f"{len(arms)} tuners, {budget:g} s each, on {task['data']}")
    echo(table + f"results in {out}: {RESULTS_FILE}, {TABLE_FILE}, {PLOT_FILE}")
    return results


class Race(Protocol):
    """``run_race`` with everything but its output folder and sampler seed given."""

    def __call__(self, *, out: Path, seed: int | None) -> dict[str, Any]: ...


def run_seeds(
    race: Race, seeds: Sequence[int], out: Path, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """A race per sampler seed, in the order given, each into its own folder, then the summary
    over them into ``out``."""
    races = {seed: race(out=out / SEED_DIR.format(seed), seed=seed) for seed in seeds}
    first = races[seeds[0]]
    budget = first["budget_s"]
    summary = {
        "task": first["task"],
        "precision": first["precision"],
        "budget_s": budget,
        **seeds_results(races),
        "races": {str(seed): SEED_DIR.format(seed) for seed in seeds},
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    table = seeds_table(summary)
    listed = ", ".join(map(str, seeds))
    title = (
        f"Time to the same seed's {summary['target_arm']} best within {budget:g} s per tuner, "
        f"sampler seeds {listed}: {_task_text(summary)}."
    )
    (out / RESULTS_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / TABLE_FILE).write_text(f"{title}\n\n{table}", encoding="utf-8")
    plot_seeds(
        summary,
        out / PLOT_FILE,
        f"{len(summary['arms'])} tuners, {budget:g} s each, sampler seeds {listed}",
    )
    echo(table + f"summary in {out}: {RESULTS_FILE}, {TABLE_FILE}, {PLOT_FILE}")
    return summary


def plot_seeds(summary: dict[str, Any], path: Path, title: str) -> Path:
    """Per arm, a dot per seed at its time to that seed's target and a bar at the median; a seed
    that never got there is a cross at the end of the budget, so a spread shows at a glance."""
    fig = Figure(figsize=(9, 1.5 + 0.6 * len(summary["arms"])), layout="constrained")
    axes = fig.subplots()
    budget = summary["budget_s"]
    for row, arm in enumerate(summary["arms"].values()):
        colour = f"C{row}"
        for seed, seconds in arm["time_to_target_s"].items():
            if summary["targets"][seed] is not None:
                x = budget if seconds is None else seconds
                axes.plot(x, row, "x" if seconds is None else "o", color=colour)
                axes.annotate(seed, (x, row), (0, 12), textcoords="offset points", ha="center")
        if arm["median_s"] is not None:
            axes.plot([arm["median_s"]] * 2, [row - 0.2, row + 0.2], color=colour, linewidth=2)
    axes.set_yticks(range(len(summary["arms"])), list(summary["arms"]))
    axes.invert_yaxis()
    axes.set_xlim(0, budget * 1.05)
    axes.axvline(budget, color="#555555", linestyle=":", linewidth=1)
    axes.set_xlabel(f"seconds to the same seed's {summary['target_arm']} best")
    axes.set_title(f"{title}\ndot: a seed; bar: the median; cross at the budget: never")
    return save_figure(fig, path)


def _title(results: dict[str, Any]) -> str:
    return (
        f"Best validation accuracy within {results['budget_s']:g} s per tuner: "
        f"{_task_text(results)}."
    )


def _task_text(results: dict[str, Any]) -> str:
    task = results["task"]
    return (
        f"{task['model']} on {task['training_images']} images of {task['data']}, at most "
        f"{task['epochs']} epochs, searching {', '.join(task['searched'])}, in "
        f"{results['precision']}"
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
    seeds: Annotated[
        str | None,
        typer.Option(
            help="comma-separated sampler seeds: a race per seed in OUT/seed-<seed>/ and a "
            "summary over them in OUT [default: one race, the space's seed]"
        ),
    ] = None,
) -> None:
    """Race tune against KerasTuner Hyperband, Optuna TPE + median pruning, and random search."""
    from benchmarks.variants import parse_seeds  # it imports this module

    quiet_libraries()
    one_race = functools.partial(
        run_race,
        space,
        budget=budget,
        data=data,
        epochs=epochs,
        arms=[name.strip() for name in arms.split(",")],
        echo=typer.echo,
    )
    folder = results_folder(out, "peers")
    if seeds is None:
        one_race(out=folder)
    else:
        run_seeds(one_race, parse_seeds(seeds), folder, typer.echo)


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


@app.command(hidden=True)
def precision(name: Annotated[str, typer.Argument()]) -> None:
    """Prints what ``name`` resolves to here: ``resolved_precision`` runs this in a process of its
    own."""
    from tune.training.fit import resolve_precision

    typer.echo(resolve_precision(name))


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.peers")
