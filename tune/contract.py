"""The terms of a trial, written down once: what training takes, what it gives back, which
metric is the objective and which epoch is "best".

Both sides of the process boundary import this module: the Keras side (``tune.training``) fills
it in and the TensorFlow-free engine (``tune.engine``), the tracking and the report read it. It
imports neither TensorFlow nor Optuna nor MLflow, so every layer can depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import numpy as np

# Names training accepts, kept here so the search-space schema and the CLI validate them without
# loading TensorFlow; ``tune.training`` maps each to its implementation.
SEED_CNN = "seed_cnn"
VGG_BN = "vgg_bn"
MODEL_NAMES: tuple[str, ...] = (SEED_CNN, VGG_BN)
# Where a model comes from: one of tune's built-in architectures, a saved ``.keras`` file, or the
# user's function ``build(input_shape, num_classes) -> keras.Model``.
BUILTIN: Final = "builtin"
FILE: Final = "file"
BUILDER: Final = "builder"
ModelKind = Literal["builtin", "file", "builder"]
# A trial starts from a fresh initialization, or (``keep``, files only) from the saved weights.
FRESH_WEIGHTS: Final = "fresh"
KEEP_WEIGHTS: Final = "keep"
# How images reach the model: floats in [0, 1] (``unit``, as seed 000 feeds them) or raw 0-255
# values (``raw``, for a model that rescales or normalizes them itself); ``auto`` tells by the
# model's first layer.
INPUT_SCALES: tuple[str, ...] = ("auto", "unit", "raw")
OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "sgd", "rmsprop", "adamw")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
# "auto" is resolved where training runs: bfloat16 where the chip computes it natively.
AUTO_PRECISION, MIXED_BFLOAT16 = "auto", "mixed_bfloat16"
PRECISIONS: tuple[str, ...] = ("float32", MIXED_BFLOAT16, AUTO_PRECISION)

# Per-epoch metrics. Keras's own: ``loss`` and ``val_loss`` include the L1/L2 penalty, ``loss``
# and ``accuracy`` are averaged over augmented, dropped-out batches while the weights move.
LOSS, ACCURACY, DATA_LOSS = "loss", "accuracy", "data_loss"
VAL_LOSS, VAL_ACCURACY, VAL_DATA_LOSS = "val_loss", "val_accuracy", "val_data_loss"
# The honest training curve: a fixed training subset evaluated in inference mode, penalty-free.
CLEAN_TRAIN_LOSS, CLEAN_TRAIN_ACCURACY = "clean_train_loss", "clean_train_accuracy"
METRICS: tuple[str, ...] = (
    LOSS,
    ACCURACY,
    DATA_LOSS,
    VAL_LOSS,
    VAL_ACCURACY,
    VAL_DATA_LOSS,
    CLEAN_TRAIN_LOSS,
    CLEAN_TRAIN_ACCURACY,
)
# What the diagnosis and the generalization gap are measured on: no dropout, no augmentation, no
# penalty on either side.
HONEST_CURVES: tuple[str, ...] = (
    CLEAN_TRAIN_LOSS,
    CLEAN_TRAIN_ACCURACY,
    VAL_DATA_LOSS,
    VAL_ACCURACY,
)
# The final evaluation, once, on the test set that tuning never sees: penalty-free, like the
# objective.
TEST_LOSS, TEST_ACCURACY = "test_loss", "test_accuracy"
# What else a retrain logs about the model it tested: how many epochs trained it (with ``--full``,
# the second run's), and the seconds its training and test took, so a finished retrain found
# again by an interrupted command's rerun tells its whole story without training again.
TESTED_EPOCHS, RETRAIN_SECONDS = "tested_epochs", "retrain_seconds"
# Per-epoch gaps between the honest curves (validation minus clean train for the loss, clean train
# minus validation for the accuracy: both grow as a model overfits).
GAP_LOSS, GAP_ACCURACY = "gap_loss", "gap_accuracy"


class TrialAttr:
    """The keys of what a trial stores on its Optuna record besides params and value, so a study
    can be reported on, exported and recovered from its storage alone: the engine writes the
    regime, diagnosis and curves (``tune.engine.trial_record``), the runtime the worker and its
    heartbeat (``tune.runtime.liveness``), the tracker's run id and the study's queueing marks."""

    REGIME, DIAGNOSIS, CURVES, RUN_ID = "regime", "diagnosis", "curves", "mlflow_run_id"
    BASELINE, WARM_START, RETRY_OF = "baseline", "warm_start", "retry_of"
    FAILURE, WORKER, HEARTBEAT = "failure", "worker", "heartbeat"


Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Objective:
    """What "best" means for a study: the metric its trials are ranked, pruned and early-stopped
    on, and whose best epoch gives the weights a trial keeps. One object carries both halves so
    no caller can pair a metric with the wrong direction."""

    metric: str
    direction: Direction

    def key(self, value: float) -> float:
        """Sort key that puts the best value first, for ``sorted``, ``min`` and ``argmin``."""
        return value if self.direction == "minimize" else -value

    def best_index(self, values: Sequence[float]) -> int:
        """The first best value wins a tie, as Keras's early stopping keeps the first."""
        return int(np.argmin([self.key(value) for value in values]))


# ``study.objective`` chooses one. The penalty-free validation loss (the default) compares trials
# with different L1/L2 lambdas on the same scale and rewards calibrated confidence; validation
# accuracy is what a user reports, but moves in steps of 1/validation size and ties often.
OBJECTIVES: dict[str, Objective] = {
    VAL_DATA_LOSS: Objective(VAL_DATA_LOSS, "minimize"),
    VAL_ACCURACY: Objective(VAL_ACCURACY, "maximize"),
}
DEFAULT_OBJECTIVE = OBJECTIVES[VAL_DATA_LOSS]

Scalar = bool | int | float | str
Params = Mapping[str, Scalar]
Curves = Mapping[str, Sequence[float]]
EpochHook = Callable[[int, dict[str, float]], None]


def best_epoch(curves: Curves, objective: Objective) -> int:
    """0-based index of the epoch with the best objective: the epoch whose weights training
    keeps, whose numbers a trial reports, and the step Optuna recorded it under. People read
    epochs from 1, so anything shown adds one."""
    values = curves.get(objective.metric, ())
    if len(values) == 0:
        raise ValueError(f"curves have no {objective.metric!r} values to find the best epoch in")
    return objective.best_index(values)


# The one-line summary of a trial: each metric at the best epoch, the 1-based best epoch, the
# epochs run.
BEST_EPOCH, EPOCHS_RUN = "best_epoch", "epochs_run"


def at_best(metric: str) -> str:
    return f"best_{metric}"


def at_final(metric: str) -> str:
    """A metric at the last epoch, as the diagnosis reads it (smoothed over its last epochs)."""
    return f"final_{metric}"


def at_best_epoch(curves: Curves, objective: Objective) -> dict[str, float]:
    """Every metric at the best epoch (``at_best(metric)``), with the 1-based ``BEST_EPOCH`` and
    ``EPOCHS_RUN``: the one-line summary of a trial."""
    best = best_epoch(curves, objective)
    summary = {at_best(key): float(values[best]) for key, values in curves.items()}
    return {**summary, BEST_EPOCH: best + 1, EPOCHS_RUN: len(curves[objective.metric])}


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
class ModelSource:
    """The architecture a study tunes, as training rebuilds it in every trial: ``ref`` is a
    built-in name, a ``.keras`` path or a ``module:function`` / ``path.py:function`` builder;
    ``sha256`` pins the file (or the builder's source file) a study or an export was made with."""

    kind: ModelKind = BUILTIN
    ref: str = SEED_CNN
    weights: str = FRESH_WEIGHTS
    input_scale: str = "auto"
    sha256: str | None = None

    @property
    def is_users(self) -> bool:
        return self.kind != BUILTIN

    def describe(self) -> str:
        return self.ref if self.kind == BUILTIN else f"{self.kind} {self.ref}"


@dataclass(frozen=True)
class LayerRow:
    """One layer of a model as tune rewrites it: what it is and which knobs act on it."""

    name: str
    kind: str
    knobs: str
    own: str


@dataclass(frozen=True)
class ModelFacts:
    """What tune found in a model before any trial: enough to check each knob can act on it, to
    enqueue the model as given as the baseline, and to show what was tuned. TensorFlow-free, so
    the study process can hold it."""

    name: str
    parameters: int
    input_shape: tuple[int | None, ...]
    outputs: int
    logits: bool
    raw_inputs: bool
    # How many layers each group has: what the knobs reach.
    convs: int
    hidden_dense: int
    dropouts: int
    batch_norms: int
    noisy_convs: int
    # The model's own value of each ``from_model`` knob, where its layers agree on one.
    own: Mapping[str, Scalar]
    layers: tuple[LayerRow, ...]


@dataclass(frozen=True)
class TrainSettings:
    """How to train, beyond the searched hyperparameters: the study fixes these for every trial.
    Their defaults live with the rest of the study configuration (``tune.engine.config``)."""

    model: ModelSource
    epochs: int
    seed: int
    precision: str
    clean_train_size: int
    objective: Objective
    # False trains every epoch and keeps the last weights: ``tune train --full``, whose validation
    # images are part of its training set, so they cannot choose an epoch.
    keep_best: bool = True


@dataclass(frozen=True)
class TrainingResult:
    """Per-epoch values of every name in ``METRICS``, as training recorded them, read through the
    objective training early-stopped and kept weights on."""

    history: dict[str, list[float]]
    stopped_early: bool
    objective: Objective
    # Seconds inside Keras's ``fit`` (every epoch with its validation and clean-train evaluation),
    # on the training process's clock: what is left of a trial's wall time is tune's overhead.
    fit_seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.history[self.objective.metric])

    @property
    def best_epoch(self) -> int:
        return best_epoch(self.history, self.objective)

    @property
    def value(self) -> float:
        """The trial's value: the objective at the epoch whose weights were kept."""
        return self.history[self.objective.metric][self.best_epoch]


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


class Describer(Protocol):
    """Tells what a model source holds (``tune.training.isolated.describe_isolated`` in the trial
    process; tests script their own), raising ``ModelError`` for one tune cannot use."""

    def __call__(
        self, source: ModelSource, input_shape: tuple[int, ...], num_classes: int
    ) -> ModelFacts: ...
