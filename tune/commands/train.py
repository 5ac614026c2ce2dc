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

from tune.commands.run import Echo, prepare_model
from tune.contract import (
    BEST_EPOCH,
    TEST_ACCURACY,
    TEST_LOSS,
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
from tune.tracking.tracker import SEED_TAG, SOURCE_TRIAL_TAG, Tracker


@dataclass(frozen=True)
class Retrain:
    """One seed's retrain: where it was logged and registered, and what it scored."""

    seed: int
    run_id: str
    version: int
    model_path: Path
    tested: TestedResult
    diagnosis: Diagnosis
    seconds: float


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
    """One config to retrain: where its runs nest, under which name its models register, and
    whether the validation images join the training set (``--full``)."""

    space: SearchSpace
    registered_as: str
    parent_id: str | None
    full: bool = False


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
) -> list[Retrain]:
    """Retrain ``seeds`` times on the whole training set, test each once, log and register each."""
    space = fixed_config(path, data, epochs)
    data_held_out = held_out(space, echo)
    space, _ = checked_model(space, data_held_out.splits, path, f"{path} was exported")
    name = model_name(space, path)
    tracker = Tracker(name, tracking_uri, draw_curves=learning_curve_figure)
    plan = Plan(space, name, tracker.latest_parent(), full)
    retrains = retrain_seeds(plan, data_held_out, seeds, tracker, echo)
    echo(summary_line(retrains))
    return retrains


def retrain_seeds(
    plan: Plan, data: HeldOut, seeds: int, tracker: Tracker, echo: Echo
) -> list[Retrain]:
    """Seeds 0..seeds-1, each logged as a run and registered as a model version."""
    return [_retrain(plan, data, seed, tracker, echo) for seed in range(seeds)]


def _retrain(plan: Plan, data: HeldOut, seed: int, tracker: Tracker, echo: Echo) -> Retrain:
    space, params = plan.space, plan.space.params()
    source = {SOURCE_TRIAL_TAG: str(space.origin.trial)} if space.origin else {}
    settings = {
        "model": space.model.source().describe(),
        "epochs": space.training.epochs,
        "data.source": space.data.source,
        "full": plan.full,
    }
    run_id = tracker.start_retrain(
        plan.parent_id,
        f"{space.study.name}-seed{seed}",
        {**params, **settings},
        {SEED_TAG: str(seed), **source},
    )
    curves: defaultdict[str, list[float]] = defaultdict(list)

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves[key].append(value)
        tracker.log_metrics(run_id, logs, step=epoch)

    started = time.perf_counter()
    model_path = models_dir(tracker.study_name) / f"{run_id}.keras"
    validation, tested = _train_and_test(
        plan, data, space.train_settings(seed), on_epoch, model_path
    )
    seconds = time.perf_counter() - started
    diagnosis = diagnose(curves, space.diagnosis, num_classes=len(data.splits.class_names))
    _log_result(
        tracker,
        run_id,
        validation,
        tested,
        diagnosis,
        curves,
        f"{space.study.name} retrain, seed {seed}",
    )
    version = tracker.register_model(
        run_id, model_path, plan.registered_as, {TEST_ACCURACY: f"{tested.test_accuracy:.6f}"}
    )
    tracker.finish_run(run_id)
    echo(
        f"{space.study.name} seed {seed}: test accuracy {tested.test_accuracy:.4f}, test loss "
        f"{tested.test_loss:.4f}, {diagnosis.regime}, {seconds:.0f} s; model version {version}"
    )
    return Retrain(seed, run_id, version, model_path, tested, diagnosis, seconds)


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
            "tested_epochs": tested.training.epochs_run,
        },
    )
    tracker.log_diagnosis(run_id, diagnosis, curves, title, validation.objective)


def summary_line(retrains: list[Retrain]) -> str:
    accuracies = [retrain.tested.test_accuracy for retrain in retrains]
    seeds = f" (std over {len(accuracies)} seeds)" if len(accuracies) > 1 else ""
    return f"test accuracy {mean_and_spread(accuracies)}{seeds}"
