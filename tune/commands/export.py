"""``tune export``: the best completed trials, each as a search-space file with every value fixed
and an ``origin`` section (study, trial, rank, objective, validation accuracy, best epoch,
diagnosis), loadable by ``tune run`` or any later training step. Pruned and failed trials are
never exported."""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import cast

import optuna
from optuna.trial import FrozenTrial

from tune import __version__
from tune.contract import VAL_ACCURACY, Curves, Objective, best_epoch
from tune.engine.config import Origin, SearchSpace, dump_space, load_space
from tune.engine.study import load_existing_study, stored_space, study_objective
from tune.engine.trial_record import ranked, trial_curves, trial_diagnosis
from tune.errors import StudyError
from tune.paths import exports_dir
from tune.tracking.tracker import Tracker

SPACE_SUFFIXES = (".yaml", ".yml", ".json")


def study_name_of(target: str) -> str:
    """``tune export`` takes a study name or the search-space file that names it."""
    path = Path(target)
    if path.suffix in SPACE_SUFFIXES and path.is_file():
        return load_space(path).study_name(path)
    return target


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The ``k`` completed trials with the best objective, best first."""
    best = ranked(study.get_trials(deepcopy=False), study_objective(study))
    if not best:
        raise StudyError(
            f"study {study.study_name!r} has no completed trial yet ({len(study.trials)} trials in "
            "all)"
        )
    return best[:k]


def origin_of(study_name: str, trial: FrozenTrial, rank: int, objective: Objective) -> Origin:
    """The numbers at the trial's best epoch, read from its stored curves."""
    diagnosis = trial_diagnosis(trial)
    curves = trial_curves(trial)
    best = best_epoch(curves, objective) if curves else None
    return Origin(
        study=study_name,
        trial=trial.number,
        rank=rank,
        objective=trial.value,
        # a best epoch comes from curves
        val_accuracy=None if best is None else cast(Curves, curves)[VAL_ACCURACY][best],
        best_epoch=None if best is None else best + 1,
        regime=diagnosis.regime,
        reason=diagnosis.reason,
    )


def exported_configs(study: optuna.Study, k: int) -> list[SearchSpace]:
    """Rank 1 keeps the name ``STUDY-best``; the others are ``STUDY-rankN``."""
    space = stored_space(study)
    return [
        space.with_fixed(
            trial.params,
            study_name=f"{study.study_name}-{'best' if rank == 1 else f'rank{rank}'}",
            origin=origin_of(study.study_name, trial, rank, space.objective),
        )
        for rank, trial in enumerate(top_trials(study, k), start=1)
    ]


def write_atomically(path: Path, text: str) -> None:
    """A crash mid-write must never leave a truncated config where a good one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _destination(config: SearchSpace, out: Path | None, count: int, fmt: str) -> Path:
    """``--out`` names the file of a single export and the folder of several."""
    if out is not None and count == 1:
        return out
    return (out or exports_dir()) / f"{config.study.name}.{fmt}"


def _header(config: SearchSpace, path: Path) -> str:
    origin = cast(Origin, config.origin)  # every exported config has one
    return (
        f"Rank {origin.rank} of study {origin.study!r}: trial {origin.trial}, "
        f"{config.objective.metric}={origin.objective:.4f}, "
        f"{origin.regime}\n"
        f"Exported {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by tune {__version__}; "
        f"every value fixed. Train it with: tune run {path}"
    )


def export_best(
    target: str,
    *,
    storage: str | None,
    tracking_uri: str | None,
    out: Path | None,
    top_k: int = 1,
    fmt: str = "yaml",
) -> list[Path]:
    name = study_name_of(target)
    configs = exported_configs(load_existing_study(name, storage), top_k)
    paths = [_destination(config, out, len(configs), fmt) for config in configs]
    for config, path in zip(configs, paths):
        write_atomically(path, dump_space(config, _header(config, path), fmt))
    tracker = Tracker(name, tracking_uri)
    parent = tracker.latest_parent()
    for path in paths if parent is not None else []:
        tracker.log_file(cast(str, parent), path, "export")
    return paths
