"""The Keras side of ``benchmarks.speed``: the seed scripts' own way of training, the machine's
matrix-multiply peak, and the seed CNN's arithmetic per image, each run in a process of its own.

The seed scripts train as their text shows: pixels divided by 255.0 into float64 arrays, one-hot
labels, Keras's default batch of 32, ``model.fit`` with validation data; seed 002 augments with
``ImageDataGenerator`` (gone from Keras 3's public API, still in ``keras.src.legacy``).
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from keras import layers

from benchmarks.speed import SEED_AUGMENTATION
from tune.contract import ModelSource, Params, Splits
from tune.training.models import build_model

SEED_BATCH_SIZE = 32
MATMUL_SIZE = 2048


class _EpochClock(keras.callbacks.Callback):
    """Seconds per epoch, validation included, as ``tune``'s epoch hook sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._mark = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._mark = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._mark)


def _seed_model(num_classes: int) -> keras.Model:
    """Seed 000's Sequential model, L2 1e-3 on Dense64 and dropout 0.5, as it compiles it."""
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu", kernel_regularizer=keras.regularizers.l2(0.001)),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


def seed_script_epochs(splits: Splits, epochs: int, augment: bool) -> list[float]:
    """Seconds per epoch of the seed scripts' training, seed 002's augmentation if ``augment``."""
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    keras.utils.set_random_seed(0)
    classes = len(splits.class_names)
    x, y = splits.x_train / 255.0, keras.utils.to_categorical(splits.y_train, classes)
    validation = (splits.x_val / 255.0, keras.utils.to_categorical(splits.y_val, classes))
    model, clock = _seed_model(classes), _EpochClock()
    if augment:
        generator = ImageDataGenerator(
            rotation_range=SEED_AUGMENTATION["rotation"],
            width_shift_range=SEED_AUGMENTATION["width_shift"],
            height_shift_range=SEED_AUGMENTATION["height_shift"],
            horizontal_flip=SEED_AUGMENTATION["flip"],
        )
        model.fit(
            generator.flow(x, y, batch_size=SEED_BATCH_SIZE),
            validation_data=validation,
            epochs=epochs,
            callbacks=[clock],
            verbose=0,
        )
    else:
        model.fit(
            x,
            y,
            batch_size=SEED_BATCH_SIZE,
            validation_data=validation,
            epochs=epochs,
            callbacks=[clock],
            verbose=0,
        )
    keras.backend.clear_session()
    return clock.seconds


def matmul_peak(repeats: int = 10, rounds: int = 3) -> dict[str, float]:
    """GFLOP/s of a large square matrix product per dtype, the best of ``rounds``: the most this
    machine's TensorFlow computes, the ceiling any model's throughput is read against."""
    peaks = {}
    for dtype in (tf.float32, tf.bfloat16):
        a, b = (tf.cast(tf.random.normal((MATMUL_SIZE, MATMUL_SIZE)), dtype) for _ in range(2))
        product = tf.function(tf.matmul)
        product(a, b).numpy()  # trace and warm up
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(repeats):
                result = product(a, b)
            result.numpy()
            best = min(best, time.perf_counter() - started)
        peaks[dtype.name] = 2 * MATMUL_SIZE**3 * repeats / best / 1e9
    return peaks


def forward_flops(
    model: ModelSource, params: Params, input_shape: tuple[int, ...], num_classes: int
) -> int:
    """Multiply-adds of one image's forward pass through the convolutions and dense layers,
    counted twice (a multiply and an add); everything else is small beside them. A training step
    costs about three forward passes (forward, and the gradients of inputs and of weights)."""
    built, _ = build_model(model, params, input_shape, num_classes)
    flops = 0
    for layer in built.layers:
        if isinstance(layer, layers.Conv2D):
            kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
            _, out_h, out_w, _ = layer.output.shape
            flops += 2 * kernel_h * kernel_w * channels_in * channels_out * out_h * out_w
        elif isinstance(layer, layers.Dense):
            inputs, units = layer.kernel.shape
            flops += 2 * inputs * units
    keras.backend.clear_session()
    return int(flops)
