"""``tune train``: prove a fixed config on data tuning never saw. Retrain it on the whole
training set (the validation split held out, so the retrain has honest curves and its own
diagnosis), evaluate it once on the test set, save and register the model, and repeat over seeds
for a mean and a spread.

This recipe is the only code that hands the test set to anything, and it does so once per seed,
after training.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from rich.console import Console

from tune.commands.progress import RetrainProgress
from tune.commands.run import Echo, prepare_model
from tune.contract import (
    BEST_EPOCH,
    RETRAIN_SECONDS,
    TEST_ACCURACY,
    TEST_LOSS,
    TESTED_EPOCHS,
    Curves,
    EpochHook,
    ModelFacts,
    Params,
    Splits,
    TestedResult,
    TestSplit,
    TrainingResult,
    TrainSettings,
    at_best,
)
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning, with_validation_in_training
from tune.engine.config import SearchSpace, load_space
from tune.engine.diagnosis import Diagnosis, diagnose
from tune.errors import SpaceError
from tune.paths import models_dir
from tune.report.comparison import mean_and_spread
from tune.report.curves import learning_curve_figure
from tune.tracking.resume import finished_retrain
from tune.tracking.tracker import SEED_TAG, SOURCE_TRIAL_TAG, Tracker


@dataclass(frozen=True)
class Retrain:
    """One seed's retrain: where it was logged and registered, and what it scored; ``reused``
    when a rerun found it finished in MLflow instead of training it again, so every field is
    what MLflow holds rather than what is in memory."""

    seed: int
    run_id: str
    version: int
    model_path: Path
    test_accuracy: float
    test_loss: float
    tested_epochs: int
    diagnosis: Diagnosis
    seconds: float
    reused: bool = False


def fixed_config(path: Path, data: str | None, epochs: int | None) -> SearchSpace:
    """A config with nothing left to search: what ``tune export`` writes."""
    space = load_space(path).with_overrides(data={"source": data}, training={"epochs": epochs})
    if space.searched():
        raise SpaceError(
            f"{path}: searches {sorted(space.searched())}; tune train takes a fixed config "
            "(tune export writes one from a study)"
        )
    return space


def model_name(space: SearchSpace, path: Path) -> str:
    """Registered under the study the config came from, so its versions sit together."""
    return space.origin.study if space.origin else space.study_name(path)


@dataclass(frozen=True)
class HeldOut:
    """The whole training set less the validation split (never the tuning subset), and the test
    set, which only ``tune.training.final`` is given."""

    splits: Splits
    test: TestSplit


@dataclass(frozen=True)
class Plan:
    """One config to retrain: where its runs nest, under which name its models register,
    whether the validation images join the training set (``--full``), and whether a seed that
    already finished under ``parent_id`` is taken as it is (``resume``: a comparison carrying on
    after an interrupt)."""

    space: SearchSpace
    registered_as: str
    parent_id: str | None
    full: bool = False
    resume: bool = False


def held_out(space: SearchSpace, echo: Echo) -> HeldOut:
    dataset = load_dataset(space.data.source)
    splits = split_for_tuning(dataset, space.data.validation_size, None, space.data.seed)
    echo(
        f"retraining on {len(splits.y_train)} training images, {len(splits.y_val)} held out, "
        f"then testing once on {len(dataset.y_test)}"
    )
    return HeldOut(splits, TestSplit(dataset.x_test, dataset.y_test))


def checked_model(
    space: SearchSpace, splits: Splits, path: Path | str, pinned_by: str
) -> tuple[SearchSpace, ModelFacts]:
    """The config's model, unchanged since ``pinned_by`` and able to take every knob, before any run
    is written. In this process: a retrain loads TensorFlow here anyway."""
    from tune.training.models import (
        describe,  # here, so importing this module stays TensorFlow-free
    )

    return prepare_model(space, splits, Path(path), describe, pinned_by)


def train_config(
    path: Path,
    *,
    data: str | None,
    seeds: int,
    epochs: int | None,
    full: bool,
    tracking_uri: str | None,
    echo: Echo = print,
    console: Console | None = None,
) -> list[Retrain]:
    """Retrain ``seeds`` times on the whole training set, test each once, log and register each.
    Lines go to ``echo``, or above a live bar over the seeds on ``console``, a terminal."""
    progress = RetrainProgress(echo, console)
    space = fixed_config(path, data, epochs)
    data_held_out = held_out(space, progress.line)
    space, _ = checked_model(space, data_held_out.splits, path, f"{path} was exported")
    name = model_name(space, path)
    tracker = Tracker(name, tracking_uri, draw_curves=learning_curve_figure)
    plan = Plan(space, name, tracker.latest_parent(), full)
    retrains = retrain_seeds(plan, data_held_out, seeds, tracker, progress)
    progress.line(summary_line(retrains))
    return retrains


def retrain_seeds(
    plan: Plan, data: HeldOut, seeds: int, tracker: Tracker, progress: RetrainProgress
) -> list[Retrain]:
    """Seeds 0..seeds-1, each logged as a run and registered as a model version; with
    ``plan.resume``, a seed found finished is not trained again."""
    retrains: list[Retrain] = []
    config = plan.space.study.name or plan.registered_as  # an export or a reference: named
    with progress.seeds(config, seeds):
        for seed in range(seeds):
            found = _finished(plan, seed, tracker) if plan.resume else None
            retrain = found if found is not None else _retrain(plan, data, seed, tracker, progress)
            retrains.append(retrain)
            progress.seed_done(seed_line(config, retrain))
    return retrains


def seed_line(config: str, retrain: Retrain) -> str:
    reused = " (finished before: reused, not trained again)" if retrain.reused else ""
    return (
        f"{config} seed {retrain.seed}: test accuracy {retrain.test_accuracy:.4f}, test loss "
        f"{retrain.test_loss:.4f}, {retrain.diagnosis.regime}, {retrain.seconds:.0f} s; "
        f"model version {retrain.version}{reused}"
    )


def _run_params(plan: Plan) -> dict[str, object]:
    """What a retrain's run logs as params, and what a finished one is found again by: the config
    and how it was trained."""
    space = plan.space
    return {
        **space.params(),
        "model": space.model.source().describe(),
        "epochs": space.training.epochs,
        "data.source": space.data.source,
        "full": plan.full,
    }


def _model_path(tracker: Tracker, run_id: str) -> Path:
    return models_dir(tracker.study_name) / f"{run_id}.keras"


def _finished(plan: Plan, seed: int, tracker: Tracker) -> Retrain | None:
    """The seed's retrain as an interrupted run of the same comparison left it finished."""
    if plan.parent_id is None:
        return None
    found = finished_retrain(tracker, plan.parent_id, seed, _run_params(plan), plan.registered_as)
    if found is None:
        return None
    scores = found.metrics
    return Retrain(
        seed,
        found.run_id,
        found.version,
        _model_path(tracker, found.run_id),
        scores[TEST_ACCURACY],
        scores[TEST_LOSS],
        int(scores[TESTED_EPOCHS]),
        found.diagnosis,
        scores[RETRAIN_SECONDS],
        reused=True,
    )


def _retrain(
    plan: Plan, data: HeldOut, seed: int, tracker: Tracker, progress: RetrainProgress
) -> Retrain:
    """Trains, tests, logs and registers one seed. Stopped or failed half-way, its run ends KILLED
    or FAILED rather than RUNNING for ever, and a rerun trains that seed again."""
    space = plan.space
    source = {SOURCE_TRIAL_TAG: str(space.origin.trial)} if space.origin else {}
    run_id = tracker.start_retrain(
        plan.parent_id,
        f"{space.study.name}-seed{seed}",
        _run_params(plan),
        {SEED_TAG: str(seed), **source},
    )
    try:
        return _train_seed(plan, data, seed, tracker, progress, run_id)
    except BaseException as stop:
        tracker.finish_run(run_id, "KILLED" if isinstance(stop, KeyboardInterrupt) else "FAILED")
        raise


def _train_seed(
    plan: Plan,
    data: HeldOut,
    seed: int,
    tracker: Tracker,
    progress: RetrainProgress,
    run_id: str,
) -> Retrain:
    space, metric = plan.space, plan.space.objective.metric
    settings = space.train_settings(seed)
    curves: defaultdict[str, list[float]] = defaultdict(list)
    progress.seed(seed)

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves[key].append(value)
        tracker.log_metrics(run_id, logs, step=epoch)
        progress.epoch(epoch + 1, settings.epochs, metric, logs[metric])

    started = time.perf_counter()
    model_path = _model_path(tracker, run_id)
    validation, tested = _train_and_test(plan, data, settings, on_epoch, model_path)
    seconds = time.perf_counter() - started
    diagnosis = diagnose(curves, space.diagnosis, num_classes=len(data.splits.class_names))
    _log_result(
        tracker,
        run_id,
        validation,
        tested,
        seconds,
        diagnosis,
        curves,
        f"{space.study.name} retrain, seed {seed}",
    )
    version = tracker.register_model(
        run_id, model_path, plan.registered_as, {TEST_ACCURACY: f"{tested.test_accuracy:.6f}"}
    )
    tracker.finish_run(run_id)
    return Retrain(
        seed,
        run_id,
        version,
        model_path,
        tested.test_accuracy,
        tested.test_loss,
        tested.training.epochs_run,
        diagnosis,
        seconds,
    )


def _train_and_test(
    plan: Plan, data: HeldOut, settings: TrainSettings, on_epoch: EpochHook, model_path: Path
) -> tuple[TrainingResult, TestedResult]:
    """The validation run and the tested model: the same run, or with ``--full`` a second run on
    training plus validation images for the epochs the first one chose, keeping its last weights."""
    # here, so importing this module stays TensorFlow-free
    from tune.training.final import train_and_test
    from tune.training.fit import train_model

    params = cast(Params, plan.space.params())  # a fixed config: nothing is searched
    if not plan.full:
        tested = train_and_test(params, data.splits, data.test, settings, on_epoch, model_path)
        return tested.training, tested
    validation = train_model(params, data.splits, settings, on_epoch)
    full = replace(settings, epochs=validation.best_epoch + 1, keep_best=False)
    everything = with_validation_in_training(data.splits)
    return validation, train_and_test(params, everything, data.test, full, _ignore, model_path)


def _ignore(epoch: int, logs: dict[str, float]) -> None:
    """The --full run's 'validation' images are in its training set: nothing to report."""


def _log_result(
    tracker: Tracker,
    run_id: str,
    validation: TrainingResult,
    tested: TestedResult,
    seconds: float,
    diagnosis: Diagnosis,
    curves: Curves,
    title: str,
) -> None:
    tracker.log_metrics(
        run_id,
        {
            TEST_LOSS: tested.test_loss,
            TEST_ACCURACY: tested.test_accuracy,
            at_best(validation.objective.metric): validation.value,
            BEST_EPOCH: validation.best_epoch + 1,
            TESTED_EPOCHS: tested.training.epochs_run,
            RETRAIN_SECONDS: seconds,
        },
    )
    tracker.log_diagnosis(run_id, diagnosis, curves, title, validation.objective)


def summary_line(retrains: list[Retrain]) -> str:
    accuracies = [retrain.test_accuracy for retrain in retrains]
    seeds = f" (std over {len(accuracies)} seeds)" if len(accuracies) > 1 else ""
    return f"test accuracy {mean_and_spread(accuracies)}{seeds}"
