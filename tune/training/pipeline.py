"""The tf.data input pipeline: images stay uint8 until the model, which rescales and augments them
in-graph, so no float copy of the data set is ever materialized."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tune.contract import Splits

EVAL_BATCH_SIZE = 256


def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Reshuffled every epoch by the dataset itself (hence ``fit(shuffle=False)``)."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .cache()
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(EVAL_BATCH_SIZE)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )


def clean_subset(splits: Splits, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random training subset drawn once, so epoch-to-epoch changes of the clean training
    curve come from the model, not the sample."""
    count = len(splits.x_train)
    indices = np.sort(np.random.default_rng(seed).choice(count, min(size, count), replace=False))
    return splits.x_train[indices], splits.y_train[indices]
