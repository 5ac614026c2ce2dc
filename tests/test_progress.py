"""What ``tune run`` shows while it works: the live bar on a terminal, plain lines elsewhere,
``--quiet`` and ``--verbose``, the closing lines, and no TensorFlow noise from a machine without a
GPU while real warnings still show."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import tiny_space, tune_cli, write_space
from optuna.trial import TrialState
from rich.console import Console
from scripted import ScriptedTrainer, describe_scripted
from typer.testing import CliRunner

from tune.cli import app
from tune.commands.progress import RunProgress, Verbosity
from tune.commands.run import RunOverrides, run_study
from tune.training.tf_logs import copy_without_noise, is_no_gpu_noise

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EPOCH_LINE = re.compile(r"^  trial +(\d+)  epoch +(\d+)/(\d+) +val_data_loss=(\d+\.\d{4})$")
# What TensorFlow printed on this CPU-only machine before the filter: once per process, and the
# cuInit error once per trial.
NO_GPU_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796154924.228642    8212 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "E0000 00:00:1796154938.625586    8212 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    # an Intel Xeon's (AVX-512, AMX) start-up line, at INFO like the cuda one
    "I0000 00:00:1796538656.462278   10811 port.cc:153] oneDNN custom operations are on. You may see slightly different "
    "numerical results due to floating-point round-off errors from different computation orders. To turn them off, "
    "set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
)
REAL_LINES = (
    "W0000 00:00:1796154938.625586    8212 cpu_allocator_impl.cc:83] Allocation of 99 exceeds 10% of free system memory.",
    "E0000 00:00:1796154938.625586    8212 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_OUT_OF_MEMORY (2)",
    "Traceback (most recent call last):",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR, and more",
)
NOISE_WORDS = ("absl::InitializeLog", "cudart_stub", "cuInit", "Could not find cuda drivers")


def scripted_space(path: Path, name: str) -> Path:
    """Three trials, one of each end: baseline dropout 0.5 completes, 0.413 diverges before its
    first epoch ends, 0.713 cannot fit and the median pruner stops it after its first."""
    return write_space(path, tiny_space(
        study={"name": name, "trials": 3, "sampler": {"type": "random", "seed": 1},
               "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0}},
        training={"epochs": 4}, diagnosis={"min_epochs": 2},
        regularization={"l2_conv": 0.0, "l2_dense": 0.001, "dropout": {"type": "float", "low": 0.0, "high": 0.99}},
    ))


def diverging_trainer() -> ScriptedTrainer:
    return ScriptedTrainer(diverges_after=lambda params: 0 if 0.4 < params["dropout"] < 0.45 else None)


def test_on_a_terminal_the_bar_counts_each_end_and_shows_the_best_and_every_epoch(stores: Path, tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    study = run_study(scripted_space(tmp_path / "space.yaml", "live"), RunOverrides(), storage=None, tracking_uri=None,
                      trainer=diverging_trainer(), describer=describe_scripted, verbosity=Verbosity.VERBOSE, console=console)
    states = [trial.state for trial in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    text = ANSI.sub("", screen.getvalue()).replace("\r", "\n")
    (last_bar, *_) = [line for line in reversed(text.splitlines()) if line.startswith("trials ")]
    assert "3/3" in last_bar
    assert last_bar.endswith(f"best val_data_loss={study.best_value:.4f} (trial 0) · 1 complete · 1 pruned · 1 failed")

    lines = text.splitlines()
    epochs = [match.groups() for match in map(EPOCH_LINE.match, lines) if match]
    assert epochs == [(str(trial.number), str(step + 1), "4", f"{value:.4f}")
                      for trial in study.trials for step, value in sorted(trial.intermediate_values.items())]
    finished = [line for line in lines if line.startswith("trial  ")]
    assert [line.split()[2] for line in finished] == ["COMPLETE", "FAIL", "PRUNED"]
    assert "export the best trial: tune export live" in lines


def test_quiet_prints_the_summary_and_exact_export_command_only(stores: Path, tmp_path: Path) -> None:
    journal, tracking = tmp_path / "elsewhere" / "journal.log", f"sqlite:///{tmp_path / 'elsewhere.db'}"
    lines: list[str] = []
    study = run_study(scripted_space(tmp_path / "space.yaml", "hushed"), RunOverrides(), storage=f"journal:{journal}",
                      tracking_uri=tracking, echo=lines.append, trainer=diverging_trainer(), describer=describe_scripted, verbosity=Verbosity.QUIET)
    assert not [line for line in lines if line.lstrip().startswith(("trial ", "study 'hushed'"))]
    assert lines[0].startswith("study hushed: 3 trials (1 complete, 1 fail, 1 pruned)")
    assert not any("\x1b" in line or "\r" in line for line in lines)
    (report,) = [line.removeprefix("report: ") for line in "\n".join(lines).splitlines() if line.startswith("report: ")]
    assert Path(report).is_file()
    assert lines[-2] == f"MLflow runs: {tracking} (browse them with `tune ui --tracking-uri {tracking}`)"
    export = lines[-1].removeprefix("export the best trial: ")
    assert export == f"tune export hushed --storage journal:{journal} --tracking-uri {tracking}"

    exported = CliRunner().invoke(app, [*shlex.split(export)[1:], "--out", str(tmp_path / "best.yaml")])
    assert exported.exit_code == 0, exported.output
    assert f"trial {study.best_trial.number}," in (tmp_path / "best.yaml").read_text()


def test_without_a_terminal_the_lines_are_plain_and_epochs_show_only_when_verbose() -> None:
    for verbosity, expected in [
        (Verbosity.QUIET, ["summary"]),
        (Verbosity.NORMAL, ["a line", "trial 0 ended", "summary"]),
        (Verbosity.VERBOSE, ["a line", "  trial   0  epoch   1/4   val_data_loss=0.7000", "trial 0 ended", "summary"]),
    ]:
        lines: list[str] = []
        study, progress = optuna.create_study(), RunProgress(lines.append, verbosity)
        with progress.running(study, 1):
            progress.line("a line")
            trial = study.ask()
            study.tell(trial, progress.watch(lambda t: progress.epoch(1, 4, 0.7) or 0.7)(trial))
            progress.finished(study, study.trials[0], "trial 0 ended")
        progress.summary("summary")
        assert lines == expected, verbosity


def test_quiet_and_verbose_exclude_each_other(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "space.yaml"), "--quiet", "--verbose"])
    assert result.exit_code == 2 and "--quiet and --verbose exclude each other" in result.output


@pytest.mark.parametrize("line", NO_GPU_NOISE)
def test_the_known_no_gpu_lines_are_noise(line: str) -> None:
    assert is_no_gpu_noise(line + "\n")


@pytest.mark.parametrize("line", REAL_LINES)
def test_real_warnings_and_errors_are_not(line: str) -> None:
    assert not is_no_gpu_noise(line + "\n")


def test_the_filter_keeps_real_lines_in_order_and_drops_only_the_noise() -> None:
    sink = io.BytesIO()
    copy_without_noise(io.BytesIO("\n".join([*NO_GPU_NOISE, *REAL_LINES, *NO_GPU_NOISE, ""]).encode()), sink)
    assert sink.getvalue().decode().splitlines() == list(REAL_LINES)


def test_a_filtered_process_and_its_children_write_real_lines_and_no_noise(tmp_path: Path) -> None:
    """At the file-descriptor level, as TensorFlow's C++ logging writes, for the process that
    filters and for a child that inherits its stderr, as trial processes do."""
    written = tmp_path / "stderr.txt"
    written.write_text("\n".join([*NO_GPU_NOISE, REAL_LINES[0], ""]))
    emit = f"import os; os.write(2, open({str(written)!r}, 'rb').read())"
    code = (f"import subprocess, sys\nfrom tune.training.tf_logs import filter_stderr\nfilter_stderr()\n{emit}\n"
            f"subprocess.run([sys.executable, '-c', {emit!r}], check=True)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [REAL_LINES[0], REAL_LINES[0]]


def test_a_real_trial_prints_no_tensorflow_noise(tmp_path: Path) -> None:
    """One real trial through the command line, stdout a file as under ``make workers``, with
    TensorFlow's log level left to ``tune``."""
    space = write_space(tmp_path / "space.yaml", tiny_space(
        study={"name": "calm", "trials": 1, "pruner": {"type": "none"}}, training={"epochs": 1},
        data={"source": "synthetic:300", "validation_size": 100, "clean_train_size": 100},
    ))
    env = {"TUNE_STORE_DIR": str(tmp_path / "mlruns"), "MLFLOW_TRACKING_URI": "", "TF_CPP_MIN_LOG_LEVEL": ""}
    result = tune_cli("run", str(space), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert not [word for word in NOISE_WORDS if word in output], output[-3000:]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.stdout), "no control characters in a log"
    assert re.search(r"^trial   0  COMPLETE val_data_loss=\d\.\d{4}  epochs=1 ", result.stdout, re.MULTILINE)
    assert "export the best trial: tune export calm\n" in result.stdout
