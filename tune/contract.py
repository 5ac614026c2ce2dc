"""The terms of a trial, written down once: what training takes, what it gives back, which
metric is the objective and which epoch is "best".

Both sides of the process boundary import this module: the Keras side (``tune.training``) fills
it in and the TensorFlow-free engine (``tune.engine``), the tracking and the report read it. It
imports neither TensorFlow nor Optuna nor MLflow, so every layer can depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

# Names training accepts, kept here so the search-space schema and the CLI validate them without
# loading TensorFlow; ``tune.training`` maps each to its implementation.
MODEL_NAMES: tuple[str, ...] = ("seed_cnn", "vgg_bn")
OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "sgd", "rmsprop", "adamw")
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")

# Per-epoch metrics. Keras's own: ``loss`` and ``val_loss`` include the L1/L2 penalty, ``loss``
# and ``accuracy`` are averaged over augmented, dropped-out batches while the weights move.
LOSS, ACCURACY, DATA_LOSS = "loss", "accuracy", "data_loss"
VAL_LOSS, VAL_ACCURACY, VAL_DATA_LOSS = "val_loss", "val_accuracy", "val_data_loss"
# The honest training curve: a fixed training subset evaluated in inference mode, penalty-free.
CLEAN_TRAIN_LOSS, CLEAN_TRAIN_ACCURACY = "clean_train_loss", "clean_train_accuracy"
METRICS: tuple[str, ...] = (
    LOSS, ACCURACY, DATA_LOSS, VAL_LOSS, VAL_ACCURACY, VAL_DATA_LOSS,
    CLEAN_TRAIN_LOSS, CLEAN_TRAIN_ACCURACY,
)
# What the diagnosis and the generalization gap are measured on: no dropout, no augmentation, no
# penalty on either side.
HONEST_CURVES: tuple[str, ...] = (CLEAN_TRAIN_LOSS, CLEAN_TRAIN_ACCURACY, VAL_DATA_LOSS, VAL_ACCURACY)
# The final evaluation, once, on the test set that tuning never sees: penalty-free, like the objective.
TEST_LOSS, TEST_ACCURACY = "test_loss", "test_accuracy"
# Per-epoch gaps between the honest curves (validation minus clean train for the loss, clean train
# minus validation for the accuracy: both grow as a model overfits).
GAP_LOSS, GAP_ACCURACY = "gap_loss", "gap_accuracy"

# The penalty-free validation loss: trials with different L1/L2 lambdas are compared, pruned and
# early-stopped on the same scale, and the weights kept are those of its lowest epoch.
OBJECTIVE = VAL_DATA_LOSS
DIRECTION: Literal["minimize"] = "minimize"

Scalar = bool | int | float | str
Params = Mapping[str, Scalar]
Curves = Mapping[str, Sequence[float]]
EpochHook = Callable[[int, dict[str, float]], None]


def best_epoch(curves: Curves) -> int:
    """0-based index of the epoch with the lowest objective: the epoch whose weights training
    keeps, whose numbers a trial reports, and the step Optuna recorded it under. People read
    epochs from 1, so anything shown adds one."""
    values = curves.get(OBJECTIVE, ())
    if len(values) == 0:
        raise ValueError(f"curves have no {OBJECTIVE!r} values to find the best epoch in")
    return int(np.argmin(values))


def at_best_epoch(curves: Curves) -> dict[str, float]:
    """Every metric at the best epoch (``best_<metric>``), with the 1-based ``best_epoch`` and
    ``epochs_run``: the one-line summary of a trial."""
    best = best_epoch(curves)
    summary = {f"best_{key}": float(values[best]) for key, values in curves.items()}
    return {**summary, "best_epoch": best + 1, "epochs_run": len(curves[OBJECTIVE])}


def generalization_gaps(curves: Curves) -> dict[str, list[float]]:
    """Per-epoch gaps between the honest curves, for the live metrics, plots and the report."""
    return {
        GAP_LOSS: [v - t for v, t in zip(curves[VAL_DATA_LOSS], curves[CLEAN_TRAIN_LOSS])],
        GAP_ACCURACY: [t - v for t, v in zip(curves[CLEAN_TRAIN_ACCURACY], curves[VAL_ACCURACY])],
    }


@dataclass(frozen=True)
class Splits:
    """What tuning sees: training and validation images (uint8) with integer labels. The test
    set is deliberately absent: nothing handed a ``Splits`` can read it."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class TrainSettings:
    """How to train, beyond the searched hyperparameters: the study fixes these for every trial."""

    model_name: str
    epochs: int
    seed: int
    precision: str = "float32"
    clean_train_size: int = 5000
    # False trains every epoch and keeps the last weights: ``tune train --full``, whose validation
    # images are part of its training set, so they cannot choose an epoch.
    keep_best: bool = True


@dataclass(frozen=True)
class TrainingResult:
    """Per-epoch values of every name in ``METRICS``, as training recorded them."""

    history: dict[str, list[float]]
    stopped_early: bool

    @property
    def epochs_run(self) -> int:
        return len(self.history[OBJECTIVE])

    @property
    def best_epoch(self) -> int:
        return best_epoch(self.history)

    @property
    def objective(self) -> float:
        """The trial's value: the objective at the epoch whose weights were kept."""
        return self.history[OBJECTIVE][self.best_epoch]


@dataclass(frozen=True)
class TestSplit:
    """The test images and labels, handed over once, to the final retrain-and-test step only:
    nothing that tunes is ever given one."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class TestedResult:
    """A retrain and its one evaluation on the test set, with the weights of its best epoch."""

    training: TrainingResult
    test_loss: float
    test_accuracy: float


class Trainer(Protocol):
    """Trains one configuration, handing each epoch's ``METRICS`` to ``on_epoch`` as it ends;
    whatever ``on_epoch`` raises (a pruned trial) stops training and reaches the caller.
    ``tune.training.isolated.train_isolated`` is the real one; tests script their own."""

    def __call__(
        self, params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
    ) -> TrainingResult: ...
