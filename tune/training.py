"""Train one trial: a model built from a plain parameter mapping, on in-memory uint8 splits.

The orchestration (Optuna, MLflow) talks to this module only through ``params``, the ``on_epoch``
hook and the returned ``TrainingResult``: it never imports Keras, and this module never imports
Optuna or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from tune.catalog import OPTIMIZER_NAMES, PRECISIONS
from tune.errors import TrainingDiverged
from tune.models import build_model

METRICS: tuple[str, ...] = (
    "loss",
    "accuracy",
    "data_loss",
    "val_loss",
    "val_accuracy",
    "val_data_loss",
    "clean_train_loss",
    "clean_train_accuracy",
)
EVAL_BATCH_SIZE = 256

EpochHook = Callable[[int, dict[str, float]], None]


class Splits(Protocol):
    """What training needs from ``tune.datasets.Splits``; a protocol keeps the modules decoupled."""

    @property
    def x_train(self) -> np.ndarray: ...
    @property
    def y_train(self) -> np.ndarray: ...
    @property
    def x_val(self) -> np.ndarray: ...
    @property
    def y_val(self) -> np.ndarray: ...
    @property
    def class_names(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class TrainingResult:
    """Per-epoch metrics (keys: ``METRICS``) and where the kept weights come from."""

    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool


def train_model(
    params: Mapping[str, Any],
    splits: Splits,
    *,
    model_name: str,
    epochs: int,
    seed: int,
    precision: str = "float32",
    clean_train_size: int = 5000,
    on_epoch: EpochHook | None = None,
    save_path: Path | None = None,
) -> TrainingResult:
    """Train, keep the weights of the epoch with the lowest penalty-free validation loss, and
    optionally save that model as ``.keras``.

    The Keras session is cleared (which also runs the garbage collector) however training ends,
    including when ``on_epoch`` raises to prune the trial, so many trials fit in one process.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    try:
        keras.utils.set_random_seed(seed)
        return _train(
            params,
            splits,
            model_name=model_name,
            epochs=epochs,
            seed=seed,
            precision=precision,
            clean_train_size=clean_train_size,
            on_epoch=on_epoch,
            save_path=save_path,
        )
    finally:
        keras.backend.clear_session()


def _train(
    params: Mapping[str, Any],
    splits: Splits,
    *,
    model_name: str,
    epochs: int,
    seed: int,
    precision: str,
    clean_train_size: int,
    on_epoch: EpochHook | None,
    save_path: Path | None,
) -> TrainingResult:
    """Holds the only reference to the model, so it is garbage once this frame returns."""
    with _dtype_policy(precision):
        model = build_model(model_name, params, splits.x_train.shape[1:], len(splits.class_names))
    _compile(model, params)
    clean_train = _eval_dataset(*_clean_subset(splits, clean_train_size, seed))
    history = model.fit(
        _train_dataset(splits.x_train, splits.y_train, params["batch_size"], seed),
        validation_data=_eval_dataset(splits.x_val, splits.y_val),
        epochs=epochs,
        shuffle=False,
        callbacks=_callbacks(params, clean_train, epochs, on_epoch),
        verbose=0,
    )
    if save_path is not None:
        model.save(save_path)
    return _result(history.history, epochs)


@contextmanager
def _dtype_policy(precision: str) -> Iterator[None]:
    """Only the layers built inside take the policy; restoring it keeps callers unaffected."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _compile(model: keras.Model, params: Mapping[str, Any]) -> None:
    """``loss`` includes the L1/L2 penalty; ``data_loss`` does not, so trials with different
    penalties can be compared (and pruned) on the same scale."""
    model.compile(
        optimizer=_optimizer(params["optimizer"], params["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="data_loss"),
        ],
        jit_compile=False,
    )


def _optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZER_NAMES)}")
    return _OPTIMIZERS[name](learning_rate)


def _adamw(learning_rate: float) -> keras.optimizers.Optimizer:
    """AdamW with Keras's default decoupled decay, kept off biases and BN like the L1/L2 penalty."""
    optimizer = keras.optimizers.AdamW(learning_rate)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


_OPTIMIZERS: dict[str, Callable[[float], keras.optimizers.Optimizer]] = {
    "adam": lambda learning_rate: keras.optimizers.Adam(learning_rate),
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
    "rmsprop": lambda learning_rate: keras.optimizers.RMSprop(learning_rate),
    "adamw": _adamw,
}


def _train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Images stay uint8 until the model, which rescales and augments them in-graph; the dataset
    reshuffles itself each epoch (hence ``fit(shuffle=False)``)."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .cache()
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def _eval_dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(EVAL_BATCH_SIZE)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )


def _clean_subset(splits: Splits, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random subset drawn once, so epoch-to-epoch changes come from the model, not the sample."""
    count = len(splits.x_train)
    indices = np.sort(np.random.default_rng(seed).choice(count, min(size, count), replace=False))
    return splits.x_train[indices], splits.y_train[indices]


def _callbacks(
    params: Mapping[str, Any],
    clean_train: tf.data.Dataset,
    epochs: int,
    on_epoch: EpochHook | None,
) -> list[keras.callbacks.Callback]:
    """Ordered: the clean-train metrics must be in the logs before anything else reads them."""
    callbacks: list[keras.callbacks.Callback] = [
        _CleanTrainMetrics(clean_train),
        _DivergenceGuard(params["learning_rate"]),
    ]
    if on_epoch is not None:
        callbacks.append(_EpochReporter(on_epoch))
    callbacks.append(_early_stopping(params["early_stopping_patience"], epochs))
    return callbacks


def _early_stopping(patience: int, epochs: int) -> keras.callbacks.EarlyStopping:
    """Patience 0 never stops but still restores the best weights at the end, so the model always
    matches ``best_epoch``."""
    return keras.callbacks.EarlyStopping(
        monitor="val_data_loss",
        mode="min",
        patience=patience if patience > 0 else epochs + 1,
        restore_best_weights=True,
    )


class _CleanTrainMetrics(keras.callbacks.Callback):
    """Training-set fit as the model is used: inference mode, no augmentation, no penalty.

    Keras's ``loss``/``accuracy`` are averaged over augmented, dropped-out batches while the
    weights move, so they cannot tell under- from over-regularization. ``evaluate`` reuses the
    compiled test step (no retracing) and its ``data_loss`` metric is penalty-free.
    """

    def __init__(self, dataset: tf.data.Dataset) -> None:
        super().__init__()
        self._dataset = dataset

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        scores = self.model.evaluate(self._dataset, verbose=0, return_dict=True)
        logs["clean_train_loss"] = float(scores["data_loss"])
        logs["clean_train_accuracy"] = float(scores["accuracy"])


class _DivergenceGuard(keras.callbacks.Callback):
    """Fails the trial loudly: Keras's TerminateOnNaN would end it quietly as a short run."""

    def __init__(self, learning_rate: float) -> None:
        super().__init__()
        self._learning_rate = learning_rate

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        bad = {key: logs[key] for key in METRICS if not math.isfinite(logs[key])}
        if bad:
            values = ", ".join(f"{key}={value}" for key, value in bad.items())
            raise TrainingDiverged(
                f"training diverged in epoch {epoch + 1}/{self.params['epochs']}: {values} "
                f"(learning_rate={self._learning_rate})"
            )


class _EpochReporter(keras.callbacks.Callback):
    """Hands each epoch's metrics to the orchestration; whatever it raises ends training."""

    def __init__(self, on_epoch: EpochHook) -> None:
        super().__init__()
        self._on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self._on_epoch(epoch, {key: float(logs[key]) for key in METRICS})


def _result(history: Mapping[str, list[Any]], epochs: int) -> TrainingResult:
    metrics = {key: [float(value) for value in history[key]] for key in METRICS}
    epochs_run = len(metrics["val_data_loss"])
    return TrainingResult(
        history=metrics,
        best_epoch=int(np.argmin(metrics["val_data_loss"])),
        epochs_run=epochs_run,
        stopped_early=epochs_run < epochs,
    )
