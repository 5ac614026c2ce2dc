"""What ``tune run`` shows while it works: the live bar on a terminal, plain lines elsewhere,
``--quiet`` and ``--verbose``, the closing lines, and no TensorFlow noise from a machine without a
GPU while real warnings still show."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console
from typer.testing import CliRunner

from tests.support.scripted import ScriptedTrainer, describe_scripted
from tests.support.spaces import tiny_space, write_space
from tune.cli import app
from tune.commands.progress import RunProgress, Verbosity
from tune.commands.run import RunOverrides, run_study

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EPOCH_LINE = re.compile(r"^  trial +(\d+)  epoch +(\d+)/(\d+) +val_data_loss=(\d+\.\d{4})$")
def scripted_space(path: Path, name: str) -> Path:
    """Three trials, one of each end: baseline dropout 0.5 completes, 0.413 diverges before its
    first epoch ends, 0.713 cannot fit and the median pruner stops it after its first."""
    return write_space(
        path,
        tiny_space(
            study={
                "name": name,
                "trials": 3,
                "sampler": {"type": "random", "seed": 1},
                "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
            },
            training={"epochs": 4},
            diagnosis={"min_epochs": 2},
            regularization={
                "l2_conv": 0.0,
                "l2_dense": 0.001,
                "dropout": {"type": "float", "low": 0.0, "high": 0.99},
            },
        ),
    )


def diverging_trainer() -> ScriptedTrainer:
    return ScriptedTrainer(
        diverges_after=lambda params: 0 if 0.4 < params["dropout"] < 0.45 else None
    )


def test_on_a_terminal_the_bar_counts_each_end_and_shows_the_best_and_every_epoch(
    stores: Path, tmp_path: Path
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    study = run_study(
        scripted_space(tmp_path / "space.yaml", "live"),
        RunOverrides(),
        storage=None,
        tracking_uri=None,
        trainer=diverging_trainer(),
        describer=describe_scripted,
        verbosity=Verbosity.VERBOSE,
        console=console,
    )
    states = [trial.state for trial in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    text = ANSI.sub("", screen.getvalue()).replace("\r", "\n")
    (last_bar, *_) = [line for line in reversed(text.splitlines()) if line.startswith("trials ")]
    assert "3/3" in last_bar
    assert last_bar.endswith(
        f"best val_data_loss={study.best_value:.4f} (trial 0) · 1 complete · 1 pruned · 1 failed"
    )

    lines = text.splitlines()
    epochs = [match.groups() for match in map(EPOCH_LINE.match, lines) if match]
    assert epochs == [
        (str(trial.number), str(step + 1), "4", f"{value:.4f}")
        for trial in study.trials
        for step, value in sorted(trial.intermediate_values.items())
    ]
    finished = [line for line in lines if line.startswith("trial  ")]
    assert [line.split()[2] for line in finished] == ["COMPLETE", "FAIL", "PRUNED"]
    assert "export the best trial: tune export live" in lines


def test_quiet_prints_the_summary_and_exact_export_command_only(
    stores: Path, tmp_path: Path
) -> None:
    journal, tracking = (
        tmp_path / "elsewhere" / "journal.log",
        f"sqlite:///{tmp_path / 'elsewhere.db'}",
    )
    lines: list[str] = []
    study = run_study(
        scripted_space(tmp_path / "space.yaml", "hushed"),
        RunOverrides(),
        storage=f"journal:{journal}",
        tracking_uri=tracking,
        echo=lines.append,
        trainer=diverging_trainer(),
        describer=describe_scripted,
        verbosity=Verbosity.QUIET,
    )
    assert not [line for line in lines if line.lstrip().startswith(("trial ", "study 'hushed'"))]
    assert lines[0].startswith("study hushed: 3 trials (1 complete, 1 fail, 1 pruned)")
    assert not any("\x1b" in line or "\r" in line for line in lines)
    (report,) = [
        line.removeprefix("report: ")
        for line in "\n".join(lines).splitlines()
        if line.startswith("report: ")
    ]
    assert Path(report).is_file()
    assert (
        lines[-2]
        == f"MLflow runs: {tracking} (browse them with `tune ui --tracking-uri {tracking}`)"
    )
    export = lines[-1].removeprefix("export the best trial: ")
    assert export == f"tune export hushed --storage journal:{journal} --tracking-uri {tracking}"

    exported = CliRunner().invoke(
        app, [*shlex.split(export)[1:], "--out", str(tmp_path / "best.yaml")]
    )
    assert exported.exit_code == 0, exported.output
    assert f"trial {study.best_trial.number}," in (tmp_path / "best.yaml").read_text()


def test_without_a_terminal_the_lines_are_plain_and_epochs_show_only_when_verbose() -> None:
    for verbosity, expected in [
        (Verbosity.QUIET, ["summary"]),
        (Verbosity.NORMAL, ["a line", "trial 0 ended", "summary"]),
        (
            Verbosity.VERBOSE,
            [
                "a line",
                "  trial   0  epoch   1/4   val_data_loss=0.7000",
                "trial 0 ended",
                "summary",
            ],
        ),
    ]:
        lines: list[str] = []
        study, progress = optuna.create_study(), RunProgress(lines.append, verbosity)

        def one_epoch(trial: optuna.Trial, progress: RunProgress = progress) -> float:
            progress.epoch(1, 4, 0.7)
            return 0.7

        with progress.running(study, 1):
            progress.line("a line")
            trial = study.ask()
            study.tell(trial, progress.watch(one_epoch)(trial))
            progress.finished(study, study.trials[0], "trial 0 ended")
        progress.summary("summary")
        assert lines == expected, verbosity


def test_quiet_and_verbose_exclude_each_other(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "space.yaml"), "--quiet", "--verbose"])
    assert result.exit_code == 2 and "--quiet and --verbose exclude each other" in result.output
