"""Train one configuration: a model built from a plain parameter mapping, on in-memory uint8
splits, reporting every epoch through a hook.

The engine talks to this module only through ``tune.contract`` (``Params``, ``Splits``,
``TrainSettings``, the epoch hook and ``TrainingResult``) and only from a child process (see
``tune.training.isolated``); this module never imports Optuna or MLflow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import keras
import tensorflow as tf

from tune.contract import (
    ACCURACY,
    AUTO_PRECISION,
    CLEAN_TRAIN_ACCURACY,
    CLEAN_TRAIN_LOSS,
    DATA_LOSS,
    METRICS,
    MIXED_BFLOAT16,
    EpochHook,
    Params,
    Splits,
    TrainingResult,
    TrainSettings,
)
from tune.errors import TrainingDiverged
from tune.training.models import build_model
from tune.training.pipeline import clean_subset, eval_dataset, train_dataset


def train_model(
    params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
) -> TrainingResult:
    """The ``tune.contract.Trainer`` that runs in a trial's process. The Keras session is cleared
    (which also runs the garbage collector) however training ends, including when ``on_epoch``
    raises to prune the trial, so the model is gone when this returns."""
    try:
        return fit_model(params, splits, settings, on_epoch)[1]
    finally:
        keras.backend.clear_session()


def fit_model(
    params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
) -> tuple[keras.Model, TrainingResult]:
    """Train and return the model with the weights of its best epoch (``tune.contract.best_epoch``),
    for callers that keep or save it."""
    keras.utils.set_random_seed(settings.seed)
    with _dtype_policy(settings.precision):
        model, facts = build_model(
            settings.model, params, splits.x_train.shape[1:], len(splits.class_names)
        )
    compile_model(model, params, logits=facts.logits)
    clean_train = eval_dataset(*clean_subset(splits, settings.clean_train_size, settings.seed))
    started = time.perf_counter()
    history = model.fit(
        train_dataset(splits.x_train, splits.y_train, int(params["batch_size"]), settings.seed),
        validation_data=eval_dataset(splits.x_val, splits.y_val),
        epochs=settings.epochs,
        shuffle=False,
        callbacks=_callbacks(params, clean_train, settings, on_epoch),
        verbose=0,
    )
    metrics = {key: [float(value) for value in history.history[key]] for key in METRICS}
    fit_seconds = time.perf_counter() - started
    stopped_early = len(metrics[settings.objective.metric]) < settings.epochs
    return model, TrainingResult(metrics, stopped_early, settings.objective, fit_seconds)


# CPU features with native bfloat16 arithmetic (Linux /proc/cpuinfo names): without them bfloat16
# is emulated and slower than float32.
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_BF16_GPU_CAPABILITY = (8, 0)  # Ampere and later


def resolve_precision(
    precision: str,
    cpu_flags: frozenset[str] | None = None,
    gpu_capability: tuple[int, int] | None = None,
) -> str:
    """``auto`` becomes ``mixed_bfloat16`` on a GPU or CPU with native bfloat16 and ``float32``
    elsewhere, decided in the process that trains, on the machine it trains on. The device details
    are read there unless given."""
    if precision != AUTO_PRECISION:
        return precision
    capability = _gpu_capability() if gpu_capability is None else gpu_capability
    if capability is not None:
        return MIXED_BFLOAT16 if capability >= _BF16_GPU_CAPABILITY else "float32"
    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    return MIXED_BFLOAT16 if flags & _BF16_CPU_FLAGS else "float32"


def _gpu_capability() -> tuple[int, int] | None:
    """The first visible GPU's compute capability, (0, 0) when it reports none; None on a CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    major, minor = tf.config.experimental.get_device_details(gpus[0]).get(
        "compute_capability", (0, 0)
    )
    return int(major), int(minor)


def _cpu_flags() -> frozenset[str]:
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:  # not Linux: no way to tell, so no bfloat16
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


@contextmanager
def _dtype_policy(precision: str) -> Iterator[None]:
    """Only the layers built inside take the policy; restoring it keeps callers unaffected."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolve_precision(precision))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def compile_model(model: keras.Model, params: Params, *, logits: bool = False) -> None:
    """``loss`` includes the L1/L2 penalty; ``data_loss`` does not, so trials with different
    penalties can be compared (and pruned) on the same scale; a model ending in logits gets both
    from logits (accuracy is the same argmax either way). Public so the tuners that
    ``benchmarks.peers`` races train exactly the model ``tune`` trains."""
    model.compile(
        optimizer=_OPTIMIZERS[str(params["optimizer"])](float(params["learning_rate"])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name=ACCURACY),
            keras.metrics.SparseCategoricalCrossentropy(name=DATA_LOSS, from_logits=logits),
        ],
        jit_compile=False,
    )


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


def _callbacks(
    params: Params, clean_train: tf.data.Dataset, settings: TrainSettings, on_epoch: EpochHook
) -> list[keras.callbacks.Callback]:
    """Ordered: the clean-train metrics must be in the logs before anything reads them, and a
    diverged epoch must fail the trial before it is reported, so no non-finite value ever leaves
    training."""
    callbacks = [
        _CleanTrainMetrics(clean_train),
        _DivergenceGuard(float(params["learning_rate"])),
        _EpochReporter(on_epoch),
    ]
    if params["lr_schedule"] == "cosine":
        callbacks.insert(0, _cosine_decay(float(params["learning_rate"]), settings.epochs))
    if settings.keep_best:
        callbacks.append(_early_stopping(int(params["early_stopping_patience"]), settings))
    return callbacks


def _cosine_decay(learning_rate: float, epochs: int) -> keras.callbacks.LearningRateScheduler:
    """Per epoch, from ``learning_rate`` in the first towards 0 after the last: a constant rate
    leaves augmented, batch-normalized models' validation accuracy jumping between epochs, so the
    kept epoch is partly luck; annealing settles it. Over ``epochs`` (the budget, not the epochs
    early stopping will allow), so a run's schedule does not depend on when it stops."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch: learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    )


def _early_stopping(patience: int, settings: TrainSettings) -> keras.callbacks.EarlyStopping:
    """Watches the study's objective; patience 0 never stops but still restores the best weights
    at the end, so the model always matches ``best_epoch``."""
    return keras.callbacks.EarlyStopping(
        monitor=settings.objective.metric,
        mode="min" if settings.objective.direction == "minimize" else "max",
        patience=patience if patience > 0 else settings.epochs + 1,
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

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        scores = self.model.evaluate(self._dataset, verbose=0, return_dict=True)
        logs[CLEAN_TRAIN_LOSS] = float(scores[DATA_LOSS])
        logs[CLEAN_TRAIN_ACCURACY] = float(scores[ACCURACY])


class _DivergenceGuard(keras.callbacks.Callback):
    """Fails the trial loudly: Keras's TerminateOnNaN would end it quietly as a short run."""

    def __init__(self, learning_rate: float) -> None:
        super().__init__()
        self._learning_rate = learning_rate

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
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

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self._on_epoch(epoch, {key: float(logs[key]) for key in METRICS})
