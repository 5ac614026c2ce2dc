"""The final step, and the only one that reads the test set: train a fixed configuration like a
trial, evaluate the kept weights once on the test set, and save the model."""

from __future__ import annotations

from pathlib import Path

import keras

from tune.contract import (
    ACCURACY,
    DATA_LOSS,
    EpochHook,
    Params,
    Splits,
    TestedResult,
    TestSplit,
    TrainSettings,
)
from tune.training.fit import fit_model
from tune.training.pipeline import eval_dataset


def train_and_test(
    params: Params,
    splits: Splits,
    test: TestSplit,
    settings: TrainSettings,
    on_epoch: EpochHook,
    model_path: Path,
) -> TestedResult:
    """Penalty-free test loss and accuracy of the best epoch's weights, which are saved as
    ``.keras`` so the number can be checked against the model itself."""
    try:
        model, result = fit_model(params, splits, settings, on_epoch)
        scores = model.evaluate(eval_dataset(test.x, test.y), verbose=0, return_dict=True)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_path)
        return TestedResult(result, float(scores[DATA_LOSS]), float(scores[ACCURACY]))
    finally:
        keras.backend.clear_session()
