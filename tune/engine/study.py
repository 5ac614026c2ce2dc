"""The Optuna side of a study: sampler and pruner from the search space, parameter suggestion,
the seed baseline, and the one place a study is opened: created or resumed by ``tune run``,
loaded read-only by every other command."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

import optuna
from pydantic import BaseModel

from tune.contract import DEFAULT_OBJECTIVE, OBJECTIVES, Objective, Scalar, TrialAttr
from tune.engine.config import (
    BASELINE,
    TYPICAL,
    CategoricalSpec,
    FloatSpec,
    IntSpec,
    PrunerSettings,
    SamplerSettings,
    SearchSpace,
    SearchSpec,
    validate_space,
)
from tune.errors import StudyError, StudyNotFound
from tune.runtime.locks import queue_lock
from tune.runtime.storage import default_storage_url, journal_path, open_storage, redact

log = logging.getLogger(__name__)
SPACE_ATTR = "search_space"
SOURCE_ATTR = "search_space_file"


def make_sampler(settings: SamplerSettings, seed: int | None) -> optuna.samplers.BaseSampler:
    if settings.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.type == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=settings.n_startup_trials, multivariate=settings.multivariate
    )


def make_pruner(settings: PrunerSettings, max_epochs: int) -> optuna.pruners.BasePruner:
    if settings.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.n_startup_trials, n_warmup_steps=settings.n_warmup_steps
        )
    if settings.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.min_resource, reduction_factor=settings.reduction_factor
        )
    if settings.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=settings.min_resource,
            max_resource=max_epochs,
            reduction_factor=settings.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def _suggest(trial: optuna.Trial, name: str, dist: SearchSpec) -> Scalar:
    if isinstance(dist, CategoricalSpec):
        return cast(Scalar, trial.suggest_categorical(name, dist.choices))
    if isinstance(dist, FloatSpec):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)


def suggest_params(trial: optuna.Trial, space: SearchSpace) -> dict[str, Scalar]:
    """Every hyperparameter for one trial: searched ones from the sampler, the rest as fixed."""
    return {
        name: _suggest(trial, name, spec) if isinstance(spec, BaseModel) else spec
        for name, spec in space.params().items()
    }


def _contains(dist: SearchSpec, value: Scalar) -> bool:
    if isinstance(dist, CategoricalSpec):
        return value in dist.choices
    return dist.low <= cast(float, value) <= dist.high  # a range only searches a number


def baseline_params(
    space: SearchSpace, reference: Mapping[str, Scalar] = BASELINE
) -> dict[str, Scalar]:
    """The reference configuration (seed 000's, or the user's model as given) restricted to what
    the space searches and can represent; a value outside a searched range, or one the model's
    layers do not agree on, is left to the sampler rather than forced outside the space."""
    params: dict[str, Scalar] = {}
    for name, dist in space.searched().items():
        if name in reference and _contains(dist, reference[name]):
            params[name] = reference[name]
        else:
            log.warning(
                "baseline %s=%r is not in the searched range; the sampler picks it",
                name,
                reference.get(name),
            )
    return params


def _nearest(dist: SearchSpec, value: Scalar) -> Scalar | None:
    """``value`` moved into the distribution: a range clips it (onto its step grid, rounded for
    integers, on a log scale geometrically by clipping first); a categorical takes it if listed,
    else the numerically nearest choice; None where nothing is near (a non-numeric miss)."""
    if isinstance(dist, CategoricalSpec):
        if value in dist.choices:
            return value
        numeric = [
            c for c in dist.choices if isinstance(c, int | float) and not isinstance(c, bool)
        ]
        if isinstance(value, bool) or not isinstance(value, int | float) or not numeric:
            return None
        return min(numeric, key=lambda choice: abs(choice - value))
    clipped = min(max(cast(float, value), dist.low), dist.high)  # a range only searches a number
    if dist.step is not None:
        clipped = min(dist.low + round((clipped - dist.low) / dist.step) * dist.step, dist.high)
    return round(clipped) if isinstance(dist, IntSpec) else round(float(clipped), 12)


def warm_start_params(space: SearchSpace) -> dict[str, Scalar]:
    """The seeds' typical values (``TYPICAL``), each searched one moved to the nearest value the
    space holds; unlike the baseline, which must be seed 000 exactly or not at all."""
    nearest = {
        name: _nearest(dist, TYPICAL[name])
        for name, dist in space.searched().items()
        if name in TYPICAL
    }
    return {name: value for name, value in nearest.items() if value is not None}


def open_study(
    space: SearchSpace,
    name: str,
    storage_url: str | None,
    source: str,
    reference: Mapping[str, Scalar] = BASELINE,
) -> optuna.Study:
    """Create the study or resume it; running the same command again continues where it stopped.
    ``reference`` is what the baseline trial trains (``tune.engine.knobs.reference_values``)."""
    study = optuna.create_study(
        storage=open_storage(storage_url),
        study_name=name,
        sampler=make_sampler(space.study.sampler, space.study.sampler.seed),
        pruner=make_pruner(space.study.pruner, space.training.epochs),
        direction=space.objective.direction,
        load_if_exists=True,
    )
    if study.trials and space.study.sampler.seed is not None:
        # seeded as on the first run, the sampler would propose that run's trials again
        study.sampler = make_sampler(
            space.study.sampler, space.study.sampler.seed + len(study.trials)
        )
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is not None and study_objective(study) != space.objective:
        raise StudyError(
            f"study {name!r} optimizes {study_objective(study).metric}, not "
            f"{space.objective.metric}; name a new study (study.name or --study) to optimize "
            "another objective"
        )
    pinned = (stored or {}).get("model", {}).get("sha256")
    if pinned and space.model.sha256 and pinned != space.model.sha256:
        raise StudyError(
            f"study {name!r} tunes model {space.model.source().describe()} as it was when the "
            f"study began (sha256 {pinned[:12]}...), and it has changed since (now "
            f"{space.model.sha256[:12]}...); restore it, or name a new study (study.name or "
            "--study) for the changed model"
        )
    if stored is not None and stored != space.to_dict():
        log.warning(
            "study %r was created from a different search space; the stored copy is updated", name
        )
    study.set_user_attr(SPACE_ATTR, space.to_dict())
    study.set_user_attr(SOURCE_ATTR, source)
    with queue_lock(storage_url):
        _enqueue_first_trials(study, space, reference)
    return study


def _enqueue_first_trials(
    study: optuna.Study, space: SearchSpace, reference: Mapping[str, Scalar]
) -> None:
    """Each once per study, however many workers open it."""
    if space.study.baseline and space.searched():
        study.enqueue_trial(
            baseline_params(space, reference),
            user_attrs={TrialAttr.BASELINE: True},
            skip_if_exists=True,
        )
    if space.study.warm_start and space.searched():
        study.enqueue_trial(
            warm_start_params(space), user_attrs={TrialAttr.WARM_START: True}, skip_if_exists=True
        )
    for params in space.study.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)


def study_objective(study: optuna.Study) -> Objective:
    """What the study ranks its trials by. Values of two objectives cannot be ranked together, so
    a study keeps the one it began with; studies stored before ``study.objective`` used the
    default."""
    stored = study.user_attrs.get(SPACE_ATTR) or {}
    return OBJECTIVES[stored.get("study", {}).get("objective", DEFAULT_OBJECTIVE.metric)]


def load_existing_study(name: str, url: str | None) -> optuna.Study:
    """Open a study that must already exist: reading commands never create an empty one."""
    url = url or default_storage_url()
    path = journal_path(url)
    if path is not None and not path.exists():
        raise StudyNotFound(
            f"study {name!r} not found: no study has been run with storage {url!r} yet"
        )
    storage = open_storage(url)
    names = [s.study_name for s in storage.get_all_studies()]
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StudyNotFound(
            f"study {name!r} not found in {redact(url)}; studies there: {known}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def find_study(name: str, url: str | None) -> optuna.Study | None:
    """The study if it exists, else None, creating nothing (not even an empty journal file): what
    a command that may be the study's first asks before it decides what to run."""
    try:
        return load_existing_study(name, url)
    except StudyNotFound:  # an unreachable storage still fails: that is the user's to fix
        return None


def stored_space(study: optuna.Study) -> SearchSpace:
    """The space the study was last run with; only ``tune run`` creates studies that have one."""
    if SPACE_ATTR not in study.user_attrs:
        raise StudyError(
            f"study {study.study_name!r} was not created by tune run: it stores no search space"
        )
    return validate_space(
        study.user_attrs[SPACE_ATTR], f"the search space stored in study {study.study_name!r}"
    )
