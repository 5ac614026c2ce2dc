"""``tune run``: the recipe from a search-space file to a finished (or resumed) study."""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console

from tune.commands.progress import Echo, RunProgress, Verbosity
from tune.commands.report import publish_report
from tune.contract import Describer, ModelFacts, Splits, Trainer, TrialAttr
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning
from tune.engine import trial_record
from tune.engine.budget import Budget
from tune.engine.config import SearchSpace, dump_space, load_space
from tune.engine.knobs import check_knobs, reference_values, rewrite_notes
from tune.engine.model_source import layer_table, pin
from tune.engine.objective import INTERRUPTED, TrialContext, make_objective
from tune.engine.study import open_study, study_objective
from tune.errors import StudyError
from tune.report.curves import learning_curve_figure
from tune.report.text import render_text
from tune.runtime.liveness import recover_dead_trials
from tune.runtime.processes import STOP_SIGNALS, deliver_held, handling, interrupt
from tune.runtime.storage import default_storage_url, redact
from tune.tracking.provenance import provenance_tags
from tune.tracking.tracker import (
    MODEL_LAYERS_FILE,
    MODEL_PARAMETERS,
    MODEL_SHA256_TAG,
    MODEL_SOURCE_TAG,
    Tracker,
)
from tune.training.isolated import (
    close_trial_process,
    describe_isolated,
    start_fork_server,
    train_isolated,
)


@dataclass(frozen=True)
class RunOverrides:
    """Command-line values that take precedence over the search-space file."""

    trials: int | None = None
    timeout: float | None = None
    data: str | None = None
    study: str | None = None
    seed: int | None = None
    train_subset: int | None = None
    epochs: int | None = None


def resolve_space(path: Path, overrides: RunOverrides) -> SearchSpace:
    """The file's space with the overrides applied, validated before any store is touched."""
    space = load_space(path).with_overrides(
        study={"trials": overrides.trials, "timeout": overrides.timeout, "name": overrides.study},
        data={"source": overrides.data, "train_subset": overrides.train_subset},
        training={"epochs": overrides.epochs},
    )
    if overrides.seed is not None:
        space = space.with_overrides(
            study={"sampler": {**space.study.sampler.model_dump(), "seed": overrides.seed}}
        )
    return space


def load_splits(space: SearchSpace) -> Splits:
    data = space.data
    return split_for_tuning(
        load_dataset(data.source), data.validation_size, data.train_subset, data.seed
    )


def _trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    objective = study_objective(study)
    metric = objective.metric
    value = f"{metric}={trial.value:.4f}" if trial.value is not None else f"{'':>{len(metric) + 7}}"
    epochs = len(trial.intermediate_values)
    regime = trial_record.trial_regime(trial)
    leader = trial_record.best_completed(study.get_trials(deepcopy=False), objective)
    best = " *best*" if leader is not None and trial.number == leader.number else ""
    failure = trial_record.trial_failure(trial)
    why = f"  ({failure.splitlines()[0]})" if failure else ""
    return (
        f"trial {trial.number:>3}  {trial.state.name:<8} {value}  epochs={epochs:<3} "
        f"{regime}{best}{why}"
    )


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """TERM and HUP (a closed terminal, a scheduler's stop) end the run the way Ctrl-C does, and
    none of them lands inside a store write (``tune.runtime.processes.interrupts_held``)."""
    try:
        with handling(STOP_SIGNALS, interrupt):
            yield
    finally:
        deliver_held()  # one that came while the last trial was being recorded


def _recover(study: optuna.Study, tracker: Tracker, progress: RunProgress) -> None:
    """What dead workers left RUNNING, in Optuna and in MLflow, is closed before new trials
    start."""
    for trial, reason in recover_dead_trials(study):
        tracker.close_dead_trial(trial.user_attrs.get(TrialAttr.RUN_ID), reason)
        progress.line(
            f"trial {trial.number:>3}  FAIL     ({reason}); its parameters are queued again"
        )
    tracker.close_dead_parents()


def _check_not_all_failed(finished: list[optuna.trial.FrozenTrial]) -> None:
    """One failed trial is the study's business; all of them failing is the user's."""
    if finished and all(trial.state == TrialState.FAIL for trial in finished):
        last = trial_record.trial_failure(finished[-1]) or "no reason recorded"
        raise StudyError(f"all {len(finished)} trials of this run failed; the last: {last}")


def _start_parent(
    tracker: Tracker,
    space: SearchSpace,
    name: str,
    path: Path,
    storage: str | None,
    facts: ModelFacts,
) -> str:
    """This worker's parent run, with everything needed to reproduce it and the model it tunes."""
    source = space.model.source()
    parent = tracker.start_parent(
        f"{name}@{socket.gethostname()}:{os.getpid()}",
        params={**space.to_dict(), MODEL_PARAMETERS: facts.parameters},
        tags={
            **provenance_tags(),
            "tune.storage": redact(storage or default_storage_url()),
            "tune.space_file": str(path),
            MODEL_SOURCE_TAG: source.describe(),
            MODEL_SHA256_TAG: source.sha256 or "built-in",
        },
    )
    tracker.log_file(parent, path, "space")
    tracker.log_text(parent, dump_space(space), "search_space.yaml")
    tracker.log_text(parent, layer_table(facts), MODEL_LAYERS_FILE)
    return parent


def prepare_model(
    space: SearchSpace, splits: Splits, path: Path, describer: Describer, pinned_by: str
) -> tuple[SearchSpace, ModelFacts]:
    """The space with its model pinned by hash, and what the model holds, once every knob has been
    checked against it: before any store is opened."""
    space = pin(space, pinned_by)
    facts = describer(
        space.model.source(), tuple(splits.x_train.shape[1:]), len(splits.class_names)
    )
    check_knobs(space, facts, path)
    return space, facts


def _next_steps(
    name: str, storage: str | None, tracking_uri: str | None, tracker: Tracker
) -> list[str]:
    """Where the results are, as commands to paste, with the stores this run was given."""
    tracking = ["--tracking-uri", tracking_uri] if tracking_uri else []
    stores = (["--storage", redact(storage)] if storage else []) + tracking
    return [
        f"MLflow runs: {tracker.tracking_uri} (browse them with "
        f"`{shlex.join(['tune', 'ui', *tracking])}`)",
        f"export the best trial: {shlex.join(['tune', 'export', name, *stores])}",
    ]


def run_study(
    path: Path,
    overrides: RunOverrides,
    *,
    storage: str | None,
    tracking_uri: str | None,
    echo: Echo = print,
    trainer: Trainer | None = None,
    verbosity: Verbosity = Verbosity.NORMAL,
    console: Console | None = None,
    describer: Describer = describe_isolated,
    budget: Budget | None = None,
) -> optuna.Study:
    """Validate, load data, open the study and its parent run, run the trials, report. Lines go to
    ``echo``, or above a live progress bar on ``console``, a terminal. With no ``trainer``, trials
    train in the isolated trial process, whose fork server starts before the data loads. Without
    a ``budget`` the run adds the space's ``study.trials`` (within ``study.timeout``) to the study,
    as ``tune run`` does; with one, only what is left of it (``tune prove``)."""
    progress = RunProgress(echo, verbosity, console)
    space = resolve_space(path, overrides)
    name = space.study_name(path)
    if trainer is None:
        start_fork_server()
        trainer = train_isolated
    splits = load_splits(space)
    space, facts = prepare_model(space, splits, path, describer, f"study {name!r} began")
    progress.line(
        f"study {name!r}: {len(splits.y_train)} training / {len(splits.y_val)} validation images, "
        f"model {space.model.source().describe()} ({facts.parameters:,} parameters)"
    )
    for note in rewrite_notes(space, facts):
        progress.line(f"note: {note}")
    study = open_study(space, name, storage, str(path), reference_values(space, facts))
    tracker = Tracker(name, tracking_uri, draw_curves=learning_curve_figure)
    _recover(study, tracker, progress)
    parent = _start_parent(tracker, space, name, path, storage, facts)
    ctx = TrialContext(space, splits, name, parent, space.study.sampler.seed or 0)
    objective = progress.watch(make_objective(ctx, tracker, progress.watch_epochs(trainer)))
    status, finished = "FAILED", []
    trials, timeout = (
        (budget.trials_left, budget.seconds_left)
        if budget
        else (space.study.trials, space.study.timeout)
    )

    def on_finished(s: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        finished.append(t)
        progress.finished(s, t, _trial_line(s, t))

    try:
        with signals_interrupt(), progress.running(study, trials):
            study.optimize(
                objective,
                n_trials=trials,
                timeout=timeout,
                catch=(Exception,),
                callbacks=[on_finished],
            )
        _check_not_all_failed(finished)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        tracker.close_open_children(parent, INTERRUPTED)
        raise
    finally:
        close_trial_process()  # its memory back before the report
        progress.summary(render_text(publish_report(study, tracker, parent)))
        for line in _next_steps(name, storage, tracking_uri, tracker):
            progress.summary(line)
        tracker.finish_run(parent, status)
    return study
