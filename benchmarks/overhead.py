"""``make bench-overhead``: what a study spends outside Keras's ``fit``, and whether two one-thread
workers get through more trials per hour than one two-thread worker.

The overhead run is ``tune run`` itself (``run_study`` with its real trial processes, journal
storage, MLflow file store and report) with the trainer wrapped to note when each trial's process
was asked for and answered; each result carries the seconds its ``fit`` took. A trial's wall time
runs from its start to the next trial's start (the last one's to the study's end, report
included), so everything the orchestration does between two fits is charged to some trial.

The worker run starts ``tune run`` processes on one journal for a fixed wall time, each with its
TensorFlow thread pools capped through TensorFlow's environment variables, and counts the epochs
they finished (every trial trains the same epochs, none is pruned).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypedDict

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
from tune.contract import EpochHook, Params, Splits, TrainingResult, TrainSettings
from tune.engine.config import load_space
from tune.paths import STORE_ENV
from tune.runtime.processes import stop_group
from tune.runtime.storage import open_storage
from tune.tracking.tracker import TRACKING_URI_ENV
from tune.training.isolated import start_fork_server, train_isolated

TABLE_FILE = "overhead.md"
JOURNAL = "optuna/journal.log"
# TensorFlow's own variables for the sizes of its thread pools.
THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


class OverheadSummary(TypedDict):
    """Where a study's wall time went, per ``overhead_summary``."""

    trials: int
    wall_s: float
    fit_s: float
    mean_trial_wall_s: float
    mean_fit_s: float
    overhead_share: float
    trial_process_share: float
    study_process_share: float
    report_s: float
    outside_s: list[float]
    after_first_overhead_share: float | None


class WorkerRun(TypedDict):
    """Epochs finished by one layout of workers and threads, per ``measure_workers``."""

    workers: int
    threads_each: int
    seconds: float
    epochs_finished: int
    epochs_per_hour: float
    trials_per_hour: float


class OverheadResults(TypedDict):
    """What ``make bench-overhead`` writes to its results file."""

    space: str
    data: str | None
    epochs: int
    overhead: OverheadSummary
    workers: list[WorkerRun]


@dataclass
class _Call:
    started: float
    answered: float
    fit_seconds: float


def measure_overhead(
    space_path: Path, *, data: str | None, trials: int, epochs: int
) -> OverheadSummary:
    calls: list[_Call] = []

    def trainer(
        params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
    ) -> TrainingResult:
        started = time.time()  # the clock of Optuna's trial timestamps
        result = train_isolated(params, splits, settings, on_epoch)
        calls.append(_Call(started, time.time(), result.fit_seconds))
        return result

    with tempfile.TemporaryDirectory() as folder, scratch_store(Path(folder) / "store"):
        space_file = fixed_length_space(
            space_path, Path(folder), data=data, trials=trials, epochs=epochs
        )
        start_fork_server()  # as run_study does for its own trainer
        study = run_study(
            space_file,
            RunOverrides(),
            storage=None,
            tracking_uri=None,
            trainer=trainer,
            echo=lambda line: None,
        )
        ended = time.time()
        last = max(
            trial.datetime_complete for trial in study.trials if trial.datetime_complete is not None
        )
    return overhead_summary(calls, trials_ended=last.timestamp(), ended=ended)


def overhead_summary(calls: list[_Call], *, trials_ended: float, ended: float) -> OverheadSummary:
    """Shares of the wall time from the first trial's start to the last one's end (when Optuna
    stored it, after its MLflow run and figure); the study's report after that is timed apart,
    as it comes once per study, not per trial."""
    starts = [call.started for call in calls] + [trials_ended]
    walls = [later - call.started for call, later in zip(calls, starts[1:])]
    fit = sum(call.fit_seconds for call in calls)
    in_process = sum(call.answered - call.started - call.fit_seconds for call in calls)
    total = sum(walls)
    return {
        "trials": len(calls),
        "wall_s": total,
        "fit_s": fit,
        "mean_trial_wall_s": total / len(calls),
        "mean_fit_s": fit / len(calls),
        "overhead_share": 1 - fit / total,
        # Forking the trial, handing the data over, building the model, sending the result back.
        "trial_process_share": in_process / total,
        # Storage, MLflow and the trial's figure in the study's process, and the next suggestion.
        "study_process_share": (total - fit - in_process) / total,
        "report_s": ended - trials_ended,
        # The first trial also waits for the fork server's TensorFlow and starts the trial process,
        # which later trials reuse (``TRIALS_PER_PROCESS``): shown apart, per trial.
        "outside_s": [wall - call.fit_seconds for call, wall in zip(calls, walls)],
        "after_first_overhead_share": 1 - sum(c.fit_seconds for c in calls[1:]) / sum(walls[1:])
        if calls[1:]
        else None,
    }


def measure_workers(
    space_path: Path, *, data: str | None, epochs: int, seconds: float, workers: int, threads: int
) -> WorkerRun:
    """Epochs finished in ``seconds`` by ``workers`` processes of ``threads`` threads each."""
    with tempfile.TemporaryDirectory() as folder:
        space_file = fixed_length_space(
            space_path, Path(folder), data=data, trials=10000, epochs=epochs
        )
        env = {
            **os.environ,
            STORE_ENV: str(Path(folder) / "store"),
            **dict.fromkeys(THREAD_ENV, str(threads)),
        }
        env.pop(TRACKING_URI_ENV, None)
        (Path(folder) / "store").mkdir()
        started = time.monotonic()
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tune",
                    "run",
                    str(space_file),
                    "--seed",
                    str(worker),
                    "--quiet",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for worker in range(workers)
        ]
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        for process in processes:
            stop_group(process, 5.0)
        storage = open_storage(f"journal:{Path(folder) / 'store' / JOURNAL}")
        import optuna

        study = optuna.load_study(
            study_name=load_space(space_file).study_name(space_file), storage=storage
        )
        finished = sum(len(trial.intermediate_values) for trial in study.trials)
    return {
        "workers": workers,
        "threads_each": threads,
        "seconds": seconds,
        "epochs_finished": finished,
        "epochs_per_hour": finished * 3600 / seconds,
        "trials_per_hour": finished * 3600 / seconds / epochs,
    }


def markdown(results: OverheadResults) -> str:
    overhead, arms = results["overhead"], results["workers"]
    after_first = overhead["after_first_overhead_share"]
    lines = [
        f"Per-trial overhead over {overhead['trials']} trials of {results['epochs']} epochs: "
        f"{overhead['overhead_share']:.2%} of the wall time is outside `fit` (trial process "
        f"{overhead['trial_process_share']:.2%}, study process "
        f"{overhead['study_process_share']:.2%}); mean trial {overhead['mean_trial_wall_s']:.1f} "
        f"s, of which `fit` {overhead['mean_fit_s']:.1f} s. Seconds outside `fit`, trial by trial: "
        f"{', '.join(f'{x:.2f}' for x in overhead['outside_s'])}"
        + (
            "."
            if after_first is None
            else f"; after the first trial, which waits for TensorFlow to load, {after_first:.2%}."
        )
        + f" The study's report, once at the end, took {overhead['report_s']:.1f} s.",
        "",
        "| workers × threads | epochs finished | trials per hour | × one worker |",
        "| --- | ---: | ---: | ---: |",
    ]
    base = arms[0]["trials_per_hour"] or 1.0
    lines += [
        f"| {a['workers']} × {a['threads_each']} | {a['epochs_finished']} | "
        f"{a['trials_per_hour']:.1f} | {a['trials_per_hour'] / base:.2f} |"
        for a in arms
    ]
    return "\n".join(lines) + "\n"


app = bench_app(__doc__)


@app.command()
@user_errors
def run(
    data: DataOption = None,
    space: SpaceOption = DEFAULT_SPACE,
    trials: Annotated[int, typer.Option(min=1, help="trials of the overhead study")] = 4,
    epochs: Annotated[int, typer.Option(min=1, help="epochs per trial (the race allows 15)")] = 15,
    seconds: Annotated[float, typer.Option(min=1, help="wall time per worker layout")] = 200,
    cores: Annotated[int, typer.Option(min=2, help="threads to share among the workers")] = 2,
    out: OutOption = None,
) -> None:
    """The overhead study, then one worker with every thread against one worker per thread."""
    quiet_libraries()
    folder = results_folder(out, "overhead")
    results: OverheadResults = {
        "space": str(space),
        "data": data,
        "epochs": epochs,
        "overhead": measure_overhead(space, data=data, trials=trials, epochs=epochs),
        "workers": [
            measure_workers(
                space, data=data, epochs=epochs, seconds=seconds, workers=w, threads=cores // w
            )
            for w in (1, cores)
        ],
    }
    write_results(folder, results, TABLE_FILE, markdown(results), typer.echo)


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.overhead")
