"""The trainer side of the engine, scripted: learning curves shaped by one knob, replayed through
the epoch hook (KerasTuner's scripted histories, in the shape of ``tune.contract.Trainer``), and
seed 000's model facts without TensorFlow. With the in-memory tracker of ``tracking.py``, the
objective, study, export and trial-record logic run in milliseconds, without TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from tests.support.spaces import tiny_space
from tests.support.tracking import RecordingTracker
from tune.contract import (
    Curves,
    EpochHook,
    LayerRow,
    ModelFacts,
    ModelSource,
    Params,
    Splits,
    TrainingResult,
    TrainSettings,
)
from tune.engine.config import SearchSpace
from tune.engine.objective import TrialContext, make_objective
from tune.errors import TrainingDiverged

EPOCHS = 8
SPLITS = Splits(
    np.zeros((20, 32, 32, 3), np.uint8), np.arange(20) % 10,
    np.zeros((10, 32, 32, 3), np.uint8), np.arange(10) % 10, tuple(f"c{i}" for i in range(10)),
)


def curves_from(
    train_loss: Sequence[float], val_loss: Sequence[float],
    train_acc: Sequence[float], val_acc: Sequence[float],
) -> dict[str, list[float]]:
    """Scripted learning curves: the honest ones given, Keras-like ones derived (a penalty on
    the loss, dropout lowering the accuracy), for diagnosis and report tests without training."""
    train_loss, val_loss = np.asarray(train_loss, float), np.asarray(val_loss, float)
    train_acc, val_acc = np.asarray(train_acc, float), np.asarray(val_acc, float)
    return {
        "loss": list(train_loss * 1.1 + 0.1), "accuracy": list(train_acc - 0.05),
        "data_loss": list(train_loss * 1.1), "val_loss": list(val_loss + 0.1),
        "val_accuracy": list(val_acc), "val_data_loss": list(val_loss),
        "clean_train_loss": list(train_loss), "clean_train_accuracy": list(train_acc),
    }


def regularized_curves(strength: float, epochs: int = EPOCHS) -> dict[str, list[float]]:
    """Learning curves shaped by one regularization strength in [0, 1]: below 0.3 the model
    overfits (validation loss turns up, wide gap), above 0.7 it cannot fit (flat, low accuracy),
    in between it is balanced, with the lowest validation loss at 0.5."""
    epoch = np.arange(1, epochs + 1)
    if strength > 0.7:
        flat = np.ones(epochs)
        return curves_from(2.0 * flat, 2.02 * flat, 0.25 * flat, 0.24 * flat)
    if strength < 0.3:
        return curves_from(
            2.0 * np.exp(-0.35 * epoch),
            1.2 + (0.3 - strength) * 0.1 * (epoch - 3) ** 2,
            1 - 0.75 * np.exp(-0.35 * epoch),
            0.65 - 0.01 * np.abs(epoch - 3),
        )
    decay = np.exp(-0.25 * epoch)
    return curves_from(0.6 + 1.2 * decay, 0.75 + 0.5 * abs(strength - 0.5) + 1.1 * decay,
                       0.8 - 0.45 * decay, 0.74 - 0.41 * decay)


def lost_causes(params: Params) -> dict[str, list[float]]:
    """``by_dropout``, except that the strongest dropout (above 0.9) sits at chance and none at all
    (below 0.05) overfits hard from the first epoch: the two cases the early regime call stops."""
    dropout = float(params["dropout"])
    if dropout > 0.9:
        return curves_from([2.3] * EPOCHS, [2.3] * EPOCHS, [0.1] * EPOCHS, [0.1] * EPOCHS)
    if dropout < 0.05:
        epoch = np.arange(1, EPOCHS + 1)
        return curves_from(
            np.exp(-epoch), 1.2 + 0.1 * epoch, 1 - 0.3 * np.exp(-epoch), [0.5] * EPOCHS
        )
    return regularized_curves(dropout)


def by_dropout(params: Params) -> dict[str, list[float]]:
    return regularized_curves(float(params["dropout"]))


@dataclass
class ScriptedTrainer:
    """Replays ``script(params)`` epoch by epoch; a trial for which ``diverges_after(params)``
    gives a number of epochs raises ``TrainingDiverged`` after that many, as training does."""

    script: Callable[[Params], Curves] = by_dropout
    diverges_after: Callable[[Params], int | None] = lambda params: None
    calls: list[tuple[dict, TrainSettings]] = field(default_factory=list)

    def __call__(
        self, params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
    ) -> TrainingResult:
        self.calls.append((dict(params), settings))
        curves = self.script(params)
        epochs = min(settings.epochs, len(curves[settings.objective.metric]))
        stop = self.diverges_after(params)
        for epoch in range(epochs if stop is None else stop):
            on_epoch(epoch, {key: float(values[epoch]) for key, values in curves.items()})
        if stop is not None:
            raise TrainingDiverged(
                f"training diverged in epoch {stop + 1}/{settings.epochs}: loss=nan"
            )
        return TrainingResult(
            {key: list(values[:epochs]) for key, values in curves.items()},
            False,
            settings.objective,
        )


SEED_CNN_FACTS = ModelFacts(
    name="seed_cnn",
    parameters=122_570,
    input_shape=(32, 32, 3),
    outputs=10,
    logits=False,
    raw_inputs=False,
    convs=3,
    hidden_dense=1,
    dropouts=0,
    batch_norms=0,
    noisy_convs=3,
    own={
        "l1_conv": 0.0,
        "l2_conv": 0.0,
        "l1_dense": 0.0,
        "l2_dense": 0.0,
        "dropout": 0.0,
        "batch_norm": False,
    },
    layers=(
        LayerRow("conv2d", "Conv2D", "l1_conv, l2_conv, weight_noise", ""),
        LayerRow("dense", "Dense", "l1_dense, l2_dense, dropconnect, weight_noise", ""),
        LayerRow("predictions", "Dense", "none (output layer)", ""),
    ),
)


def describe_scripted(
    source: ModelSource, input_shape: tuple[int, ...], num_classes: int
) -> ModelFacts:
    """What ``tune.training.models.describe`` says of seed 000's CNN, without TensorFlow."""
    return SEED_CNN_FACTS


DROPOUT = {"type": "float", "low": 0.0, "high": 0.99}


def scripted_study(
    values: list[dict[str, Any]], trainer: ScriptedTrainer | None = None, **searched: Any
) -> optuna.Study:
    """One trial per entry of ``values``, recorded by the real objective, in memory."""
    raw = tiny_space(
        training={"epochs": EPOCHS},
        regularization={"l2_conv": 0.0, "l2_dense": 0.0, "dropout": DROPOUT, **searched},
    )
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    for params in values:
        study.enqueue_trial(params)
    ctx = TrialContext(SearchSpace.model_validate(raw), SPLITS, "scripted", "parent-run", 0)
    study.optimize(
        make_objective(ctx, RecordingTracker(), trainer or ScriptedTrainer()), n_trials=len(values)
    )
    return study
