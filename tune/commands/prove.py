"""``tune prove``: from a search-space file to the table a team reads, in one command that can be
stopped at any point and run again to carry on. Three phases, each announced as it starts and
ends:

1. the study, ``tune run``'s recipe, within what is left of the study's budget: the space's
   ``study.trials`` and ``study.timeout`` are the study's total, not a run's
   (``tune.engine.budget`` says what counts); a spent budget skips the phase;
2. the reference config's retrains (seed 000's baseline for a built-in model, the model as given
   for the user's own), ``tune compare``'s way;
3. the best config's retrains, on the same data and seeds.

A seed whose retrain finished in an earlier, interrupted run of the same comparison is found in
MLflow and not trained again (``tune.tracking.resume``). The table (``tune.report.proof``) is
printed, written as ``prove.md`` and ``prove.json`` beside the study report, and logged to the
comparison run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
from rich.console import Console

from tune.commands.compare import (
    CompareOptions,
    Comparison,
    open_comparison,
    publish_comparison,
)
from tune.commands.progress import Echo, RetrainProgress
from tune.commands.run import RunOverrides, resolve_space, run_study, signals_interrupt
from tune.contract import Describer, Trainer
from tune.engine.budget import Budget, add_spent_seconds, study_budget
from tune.engine.config import StudySettings
from tune.engine.study import find_study
from tune.paths import report_dir
from tune.report.comparison import ArmSummary, mean_and_spread
from tune.report.proof import JSON_FILE, TABLE_FILE, Proof, proof_json, proof_markdown
from tune.training.isolated import describe_isolated

PHASES = 3


def prove_space(
    path: Path,
    overrides: RunOverrides,
    *,
    seeds: int,
    storage: str | None,
    tracking_uri: str | None,
    echo: Echo = print,
    console: Console | None = None,
    trainer: Trainer | None = None,
    describer: Describer = describe_isolated,
) -> Proof:
    """The study, then both configs' retrains, then the table. ``overrides.epochs`` and
    ``overrides.data`` hold for the study and the retrains alike. Lines go to ``echo``, or above
    the live bars on ``console``, a terminal. ``trainer`` and ``describer`` are the study's (the
    retrains train in this process, as ``tune compare``'s do)."""
    started = time.perf_counter()
    progress = RetrainProgress(echo, console)
    space = resolve_space(path, overrides)  # every option checked before anything runs
    name = space.study_name(path)
    with signals_interrupt():
        study_seconds = _study_phase(
            path,
            overrides,
            space.study,
            name,
            storage=storage,
            tracking_uri=tracking_uri,
            progress=progress,
            console=console,
            trainer=trainer,
            describer=describer,
        )
        options = CompareOptions(storage, tracking_uri, seeds, overrides.epochs, overrides.data)
        with open_comparison(name, options, progress) as comparison:
            reference, tuned = (
                _retrain_phase(comparison, label, phase, progress)
                for phase, label in enumerate(comparison.plans, start=2)
            )
            publish_comparison(comparison, [reference, tuned], progress)
            proof = Proof(name, reference, tuned, study_seconds)
            folder = _publish(comparison, proof, progress)
    progress.line(
        f"proof written to {folder / TABLE_FILE} and {JSON_FILE}; this run took "
        f"{time.perf_counter() - started:.0f} s"
    )
    return proof


def _study_phase(
    path: Path,
    overrides: RunOverrides,
    settings: StudySettings,
    name: str,
    *,
    storage: str | None,
    tracking_uri: str | None,
    progress: RetrainProgress,
    console: Console | None,
    trainer: Trainer | None,
    describer: Describer,
) -> float:
    """What is left of the study's budget, run with ``tune run``'s recipe; its wall time is added
    to the study's spent seconds however the phase ends. Returns the study's spent seconds, every
    ``tune prove`` of it together."""
    budget = study_budget(settings, find_study(name, storage))
    if budget.exhausted:
        progress.line(f"phase 1/{PHASES} study {name!r}: budget spent ({_spent(budget)}); skipped")
        return budget.spent_seconds
    progress.line(f"phase 1/{PHASES} study {name!r}: {_left(budget)}")
    started = time.perf_counter()
    study: optuna.Study | None = None
    try:
        study = run_study(
            path,
            overrides,
            storage=storage,
            tracking_uri=tracking_uri,
            echo=progress.echo,
            console=console,
            trainer=trainer,
            describer=describer,
            budget=budget,
        )
    finally:
        stored = study if study is not None else find_study(name, storage)
        if stored is not None:  # None: stopped before the study was created
            add_spent_seconds(stored, time.perf_counter() - started)
    spent = study_budget(settings, study)
    progress.line(f"phase 1/{PHASES} study done: {_spent(spent)}")
    return spent.spent_seconds


def _spent(budget: Budget) -> str:
    seconds = f", {budget.spent_seconds:.0f} of {budget.timeout:.0f} s" if budget.timeout else ""
    return f"{budget.spent_trials} of {budget.trials} trials{seconds} spent"


def _left(budget: Budget) -> str:
    seconds = f", {budget.seconds_left:.0f} of {budget.timeout:.0f} s" if budget.timeout else ""
    return f"{budget.trials_left} of {budget.trials} trials{seconds} left"


def _retrain_phase(
    comparison: Comparison, label: str, phase: int, progress: RetrainProgress
) -> ArmSummary:
    seeds = f"{comparison.seeds} seed{'s' * (comparison.seeds > 1)}"
    progress.line(f"phase {phase}/{PHASES} retrains: {label}, {seeds}")
    arm = comparison.arm(label, progress)
    progress.line(
        f"phase {phase}/{PHASES} done: {label}, test accuracy "
        f"{mean_and_spread(arm.test_accuracies)}, {sum(arm.seconds):.0f} s of retraining"
    )
    return arm


def _publish(comparison: Comparison, proof: Proof, progress: RetrainProgress) -> Path:
    """Printed, written beside the study report, and logged to the comparison run; returns the
    folder."""
    table = proof_markdown(proof)
    progress.line(table)
    folder = report_dir(proof.study)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ((TABLE_FILE, table), (JSON_FILE, json.dumps(proof_json(proof), indent=2))):
        (folder / name).write_text(text)
        comparison.tracker.log_file(comparison.run_id, folder / name)
    return folder
