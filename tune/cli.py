"""The ``tune`` command line. Each command parses its options and calls one recipe; every
``TuneError`` becomes one message on stderr and exit status 2."""

from __future__ import annotations

import atexit
import enum
import gc
import logging
import os
import signal
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from tune.engine.config import SPACE_FORMATS
from tune.errors import Interrupted, TuneError
from tune.runtime.devices import share_gpu_memory
from tune.runtime.processes import answer_ctrl_c
from tune.runtime.storage import STORAGE_ENV
from tune.training.tf_logs import choose_tensorflow_logs, filter_stderr

app = typer.Typer(
    help="Find how much regularization a Keras image model needs (Optuna + MLflow).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
P = ParamSpec("P")
R = TypeVar("R")


@atexit.register  # registered first, so it runs last, after every library's own exit handler
def _skip_the_final_collections() -> None:
    """At exit the interpreter's garbage collector walks every object MLflow, Optuna, SQLAlchemy
    and matplotlib created: measured at 1.1-1.3 s per command on 2 cores, after the work is done.
    Frozen, the heap is left to the OS; nothing left holds unwritten data (every file is closed by
    its ``with``, logging flushes in its own exit handler)."""
    gc.freeze()
# Built from SPACE_FORMATS, so mypy cannot list its members (hence ExportFormat["yaml"] below).
ExportFormat = enum.Enum(  # type: ignore[misc]
    "ExportFormat", {name: name for name in SPACE_FORMATS}, type=str
)

Storage = Annotated[
    str | None,
    typer.Option(
        help="Optuna storage: journal:PATH, PATH.log, redis://..., sqlite:///..., postgresql://... "
        "[default: journal file under mlruns/optuna/]",
        envvar=STORAGE_ENV,
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db]"
    ),
]
SpaceFile = Annotated[Path, typer.Argument(help="search-space YAML file")]
DataSource = Annotated[
    str | None, typer.Option(help="cifar10, synthetic, or a path (image folder, .tar.gz, .npz)")
]
StudyName = Annotated[str | None, typer.Option(help="study name [default: from the file]")]


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TuneError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def interrupted(stop: KeyboardInterrupt, kept: str) -> typer.Exit:
    """Ctrl-C, TERM or HUP: what was kept, how to carry on, and the exit status a shell expects
    of a process that signal ended."""
    signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
    typer.echo(
        f"interrupted by {signal.Signals(signum).name}: {kept}; run the same command again to "
        "resume",
        err=True,
    )
    return typer.Exit(128 + signum)


def terminal() -> Console | None:
    """Where the live progress bars go: stdout when it is a terminal; None elsewhere (CI, files),
    where plain lines go through ``typer.echo``."""
    console = Console()
    return console if console.is_terminal else None


def quiet_libraries(tensorflow_logs: bool = False) -> None:
    """Before TensorFlow loads anywhere: its INFO lines off and its warnings on, unless
    ``tensorflow_logs`` asks for all of them (``tune.training.tf_logs``)."""
    choose_tensorflow_logs(unfiltered=tensorflow_logs)
    share_gpu_memory()
    # MLflow sets its loggers' levels from this when it is imported, which in tune train, compare,
    # export and report happens after this function and would undo a level set here.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import optuna

    # our own line per trial says how each ended, with the reason; Optuna's would add tracebacks
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.WARNING)


@app.command()
@user_errors
def run(
    space: SpaceFile,
    trials: Annotated[int | None, typer.Option(help="trials to run in this process")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="stop starting trials after SECONDS")
    ] = None,
    data: DataSource = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    study: StudyName = None,
    seed: Annotated[
        int | None, typer.Option(help="sampler seed; give each parallel worker its own")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="print only errors and the final summary")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="also a line per epoch of every trial, and TensorFlow's own logs unfiltered",
        ),
    ] = False,
    data_sizes: Annotated[
        str | None,
        typer.Option(
            help="e.g. 5000,10000,20000: one study per training-set size "
            "(named STUDY-nSIZE), then how the balanced band moves"
        ),
    ] = None,
) -> None:
    """Run (or resume) the study a search-space file describes."""
    answer_ctrl_c()
    import optuna

    from tune.commands.progress import Verbosity
    from tune.commands.run import RunOverrides, run_study
    from tune.commands.sizes import parse_sizes, run_data_sizes

    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    verbosity = Verbosity.QUIET if quiet else Verbosity.VERBOSE if verbose else Verbosity.NORMAL
    quiet_libraries(tensorflow_logs=verbose)
    overrides = RunOverrides(trials=trials, timeout=timeout, data=data, study=study, seed=seed)
    console = terminal()

    def run_one(path: Path, run_overrides: RunOverrides) -> optuna.Study:
        return run_study(
            path,
            run_overrides,
            storage=storage,
            tracking_uri=tracking_uri,
            echo=typer.echo,
            verbosity=verbosity,
            console=console,
        )

    try:
        if data_sizes is not None:
            run_data_sizes(space, overrides, parse_sizes(data_sizes), run_one, typer.echo)
            return
        result = run_one(space, overrides)
    except KeyboardInterrupt as stop:
        raise interrupted(
            stop, "the running trial is marked failed and every finished one is kept"
        ) from None
    typer.echo(
        f"done: {len(result.trials)} trials in study {result.study_name!r}; see them with `make ui`"
    )


@app.command()
@user_errors
def export(
    study_or_space: Annotated[
        str, typer.Argument(help="study name, or the search-space file that names it")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="output file, or folder with --top-k > 1 [default: mlruns/exports/]"),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, help="export the K best completed trials")
    ] = 1,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="file format")] = ExportFormat[
        "yaml"
    ],
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write the best trials as fixed-value configs that `tune run` loads directly."""
    from tune.commands.export import export_best

    quiet_libraries()
    for path in export_best(
        study_or_space,
        storage=storage,
        tracking_uri=tracking_uri,
        out=out,
        top_k=top_k,
        fmt=fmt.value,
    ):
        typer.echo(str(path))


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Argument(help="a fixed config, as tune export writes")],
    data: Annotated[str | None, typer.Option(help="data source [default: the config's]")] = None,
    seeds: Annotated[
        int, typer.Option(min=1, help="retrain with seeds 0..N-1: mean and spread")
    ] = 1,
    epochs: Annotated[
        int | None, typer.Option(help="maximum epochs [default: the config's]")
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="then retrain on training + validation images for the chosen epochs"
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Retrain a fixed config on the whole training set, test it once, register the model."""
    quiet_libraries()
    noise_filter = filter_stderr()  # noqa: F841 (lives as long as the command); TensorFlow loads in this process
    from tune.commands.train import train_config

    train_config(
        config,
        data=data,
        seeds=seeds,
        epochs=epochs,
        full=full,
        tracking_uri=tracking_uri,
        echo=typer.echo,
        console=terminal(),
    )


@app.command()
@user_errors
def compare(
    study_or_space: Annotated[
        str, typer.Argument(help="study name, or the search-space file that names it")
    ],
    seeds: Annotated[int, typer.Option(min=1, help="retrain each config with seeds 0..N-1")] = 1,
    epochs: Annotated[
        int | None, typer.Option(help="maximum epochs [default: the study's]")
    ] = None,
    data: Annotated[str | None, typer.Option(help="data source [default: the study's]")] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Seed 000's model against the study's best config, both retrained and tested once."""
    quiet_libraries()
    noise_filter = filter_stderr()  # noqa: F841 (lives as long as the command); TensorFlow loads in this process
    from tune.commands.compare import compare_study

    try:
        compare_study(
            study_or_space,
            storage=storage,
            tracking_uri=tracking_uri,
            seeds=seeds,
            epochs=epochs,
            data=data,
            echo=typer.echo,
            console=terminal(),
        )
    except KeyboardInterrupt as stop:
        raise interrupted(stop, "every finished retrain is kept, the running one is not") from None


@app.command()
@user_errors
def prove(
    space: SpaceFile,
    seeds: Annotated[int, typer.Option(min=1, help="retrain each config with seeds 0..N-1")] = 3,
    trials: Annotated[
        int | None, typer.Option(help="the study's trials in all, this run and earlier ones")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="the study's seconds in all: no new trial starts once they are spent"),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="maximum epochs, tuning and retrains [default: the file's]")
    ] = None,
    data: DataSource = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    study: StudyName = None,
) -> None:
    """Tune within the study's budget, then retrain and test the reference and the best config
    SEEDS times each: one table. Run it again to carry on where it stopped."""
    answer_ctrl_c()
    quiet_libraries()
    noise_filter = filter_stderr()  # noqa: F841 (lives as long as the command); TensorFlow loads in this process
    from tune.commands.prove import prove_space
    from tune.commands.run import RunOverrides

    overrides = RunOverrides(trials=trials, timeout=timeout, data=data, study=study, epochs=epochs)
    try:
        prove_space(
            space,
            overrides,
            seeds=seeds,
            storage=storage,
            tracking_uri=tracking_uri,
            echo=typer.echo,
            console=terminal(),
        )
    except KeyboardInterrupt as stop:
        raise interrupted(
            stop, "every finished trial and retrain is kept, the running one is not"
        ) from None


@app.command()
@user_errors
def report(
    study: Annotated[
        str, typer.Argument(help="study name, or the search-space file that names it")
    ],
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    early_calls: Annotated[
        bool,
        typer.Option(
            "--early-calls",
            help="also replay the early regime call on the stored curves: how often it agrees with "
            "the full run",
        ),
    ] = False,
    classes: Annotated[
        int, typer.Option(min=2, help="number of classes, for --early-calls: sets chance accuracy")
    ] = 10,
) -> None:
    """Diagnose every trial of a study: regimes, parameter effects, plots; logged to MLflow."""
    from tune.commands.export import study_name_of
    from tune.commands.report import report_study, write_early_calls
    from tune.report.text import render_text

    quiet_libraries()
    name = study_name_of(study)
    typer.echo(render_text(report_study(name, storage=storage, tracking_uri=tracking_uri)))
    if early_calls:
        table, folder = write_early_calls(name, storage=storage, classes=classes)
        typer.echo(table + f"written to {folder}")


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5000,
    tracking_uri: TrackingUri = None,
) -> None:
    """Open the MLflow UI on these stores, bound to 127.0.0.1."""
    from tune.commands.ui import study_pages, ui_command
    from tune.runtime.processes import LOOPBACK, serve
    from tune.tracking.server import server_environment
    from tune.tracking.tracker import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    typer.echo(f"MLflow UI on http://{LOOPBACK}:{port} for {uri} (Ctrl-C to stop)")
    typer.echo(study_pages(uri, port))
    raise typer.Exit(serve(ui_command(uri, port), server_environment()))


@app.command()
@user_errors
def dashboard(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8080,
    storage: Storage = None,
) -> None:
    """Open optuna-dashboard on the study storage, bound to 127.0.0.1."""
    from tune.commands.dashboard import serve_dashboard
    from tune.runtime.storage import default_storage_url

    raise typer.Exit(serve_dashboard(storage or default_storage_url(), port, typer.echo))
