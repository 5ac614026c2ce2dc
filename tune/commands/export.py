"""``tune export``: the best trial as a search-space file with every value fixed, loadable by
``tune run`` or any later training step."""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import optuna

from tune import __version__
from tune.contract import OBJECTIVE
from tune.engine.space import SearchSpace, dump_space, load_space
from tune.engine.study import load_existing_study, stored_space
from tune.engine.trial_record import completed_trials
from tune.errors import StudyError
from tune.paths import export_file
from tune.tracking.tracker import Tracker


def study_name_of(target: str) -> str:
    """``tune export`` takes a study name or the search-space file that names it."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_space(path).study_name(path)
    return target


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    if not completed_trials(study.get_trials(deepcopy=False)):
        raise StudyError(f"study {study.study_name!r} has no completed trial yet ({len(study.trials)} trials in all)")
    return study.best_trial


def best_config(study: optuna.Study) -> tuple[SearchSpace, optuna.trial.FrozenTrial]:
    space = stored_space(study)
    trial = best_trial(study)
    return space.with_fixed(trial.params, study_name=f"{study.study_name}-best"), trial


def write_atomically(path: Path, text: str) -> None:
    """A crash mid-write must never leave a truncated config where a good one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def export_best(target: str, *, storage: str | None, tracking_uri: str | None, out: Path | None) -> Path:
    name = study_name_of(target)
    study = load_existing_study(name, storage)
    space, trial = best_config(study)
    out = out or export_file(name)
    header = (
        f"Best trial {trial.number} of study {name!r}: {OBJECTIVE}={trial.value:.4f}\n"
        f"Exported {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by tune {__version__}; "
        f"every value fixed. Train it with: tune run {out}"
    )
    write_atomically(out, dump_space(space, header))
    tracker = Tracker(name, tracking_uri)
    parent = tracker.latest_parent()
    if parent is not None:
        tracker.log_file(parent, out, "export")
    return out
