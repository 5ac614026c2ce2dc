"""The whole dataset as a source holds it, and the part of it tuning sees.

Both cuts are stratified and seeded, so small subsets and validation sets still see every class
and every worker of a study gets the same split. ``split_for_tuning`` returns a
``tune.contract.Splits``, which has no field for the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from tune.contract import Splits
from tune.errors import DataError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """A whole labelled dataset, test set included, exactly as the source holds it."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str


def split_for_tuning(
    dataset: Dataset, validation_size: int | float, train_subset: int | None, seed: int
) -> Splits:
    """Stratify both cuts so small subsets and validation sets still see every class."""
    _check_validation_size(validation_size, dataset)
    x_train, x_val, y_train, y_val = _stratified(
        dataset.x_train, dataset.y_train, seed, test_size=validation_size
    )
    if train_subset is not None and train_subset < len(y_train):
        x_train, _, y_train, _ = _stratified(x_train, y_train, seed, train_size=train_subset)
    return Splits(x_train, y_train, x_val, y_val, dataset.class_names)


def _check_validation_size(validation_size: int | float, dataset: Dataset) -> None:
    """The schema has checked the value itself; whether it fits depends on the data."""
    n, n_classes = len(dataset.y_train), len(np.unique(dataset.y_train))
    n_val = (
        validation_size if isinstance(validation_size, int) else int(np.ceil(validation_size * n))
    )
    if n_val > n - n_classes:
        raise DataError(
            f"validation_size {validation_size!r}: takes {n_val} of {n} training images, but at "
            f"least one must remain for each of the {n_classes} classes"
        )


def _stratified(
    x: np.ndarray, y: np.ndarray, seed: int, **size: int | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        return train_test_split(x, y, **size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot split {len(y)} images with {size}: {exc}") from exc


def with_validation_in_training(splits: Splits) -> Splits:
    """``tune train --full``: the validation images join the training set once the validation run
    has chosen the epochs. They stay as ``x_val`` only so training still reports on them."""
    return Splits(
        np.concatenate([splits.x_train, splits.x_val]),
        np.concatenate([splits.y_train, splits.y_val]),
        splits.x_val,
        splits.y_val,
        splits.class_names,
    )
