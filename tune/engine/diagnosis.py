"""Tell from a trial's learning curves whether its regularization is too weak, too strong or right.

Only the honest curves are used: a fixed training subset evaluated in inference mode (no dropout,
no augmentation, no penalty) against the penalty-free validation loss and accuracy. Keras's own
training metrics carry dropout noise and the L1/L2 penalty, so a gap measured on them says more
about the regularizer than about how well the model generalizes.

Every "final" value is the mean of the last ``smooth_epochs`` epochs and the validation minimum is
the lowest such mean, so one noisy epoch can neither fake a rise nor hide one.

The checks run in a fixed order, which makes the labels mutually exclusive:

1. fewer than ``min_epochs`` epochs -> inconclusive;
2. overfitting signal (large gap, or validation loss rising while clean training loss falls) ->
   under-regularized. It wins over the underfitting signal because a model whose validation loss
   climbs while its training loss drops is by definition fitting its training data; if its accuracy
   is also low, adding regularization is still the first fix that the curves justify;
3. underfitting signal (clean training accuracy low, close to validation accuracy, both flat) ->
   over-regularized; low and close but still improving -> inconclusive, since the run ended before
   the curves could show whether they plateau low;
4. otherwise balanced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import numpy as np

from tune.contract import (
    CLEAN_TRAIN_ACCURACY,
    CLEAN_TRAIN_LOSS,
    GAP_ACCURACY,
    GAP_LOSS,
    HONEST_CURVES,
    OBJECTIVES,
    VAL_ACCURACY,
    VAL_DATA_LOSS,
    Curves,
    at_final,
    best_epoch,
)
from tune.engine.config import Thresholds

REGIMES = ("under-regularized", "over-regularized", "balanced", "inconclusive")
UNDER_REGULARIZED, OVER_REGULARIZED, BALANCED, INCONCLUSIVE = REGIMES

# The diagnosis number the report ranks and bins trials by: end gap, validation minus clean train.
FINAL_GAP_LOSS, FINAL_GAP_ACCURACY = at_final(GAP_LOSS), at_final(GAP_ACCURACY)
_TINY_LOSS = 1e-12


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one trial, with the measurements that justify it so a report can show them.

    ``numbers`` (all finite floats): epochs, val_loss_min_epoch (1-based; whatever the study's
    objective, the curves are read through the validation loss),
    clean_train_loss, val_data_loss, clean_train_accuracy, val_accuracy (end values, i.e. means of
    the last ``smooth_epochs`` epochs), final_gap_loss (val - clean train, nats),
    final_gap_accuracy (clean train - val), val_loss_rise (end over smoothed minimum, minus 1),
    train_loss_fall (1 - end over the clean train loss at that minimum), train_accuracy_slope,
    val_accuracy_slope (per epoch over the last ``flat_window`` epochs).
    """

    regime: str
    reason: str
    numbers: dict[str, float]

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime {self.regime!r} is not one of {', '.join(REGIMES)}")


def diagnose(
    curves: Curves, thresholds: Thresholds = Thresholds(), *, num_classes: int = 10
) -> Diagnosis:
    """Label a trial so the user learns which way to move its regularization.

    ``num_classes`` sets chance accuracy, which ``underfit_accuracy`` is measured from. Raises
    ValueError for curves the training loop cannot have produced (missing, empty or unequal),
    since diagnosing them would only hide the bug. Non-finite values cannot arrive: training
    fails a diverged trial before its epoch is reported.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    honest = _honest(curves)
    numbers = _loss_numbers(honest, thresholds) | _accuracy_numbers(honest, thresholds)
    regime, reason = _classify(numbers, thresholds, 1.0 / num_classes)
    return Diagnosis(regime, reason, numbers)


def early_call(
    curves: Curves, thresholds: Thresholds = Thresholds(), *, num_classes: int = 10
) -> Diagnosis | None:
    """The verdict after ``early_epochs`` epochs on a trial the full run cannot save, or None.

    Only the two cases that no later epoch turns around: stuck near chance with a flat clean
    training accuracy (over-regularized), or a loss gap of ``early_overfit_gap`` with the
    validation loss already rising (under-regularized). Everything else waits for the full run.
    """
    honest = _honest(curves)
    epochs = len(honest[VAL_DATA_LOSS])
    accuracy, val_loss = honest[CLEAN_TRAIN_ACCURACY], honest[VAL_DATA_LOSS]
    chance = 1.0 / num_classes
    floor = chance + thresholds.early_chance_margin * (1.0 - chance)
    slope = _slope(accuracy, epochs)
    if accuracy[-1] < floor and slope < thresholds.flat_slope:
        return Diagnosis(
            OVER_REGULARIZED,
            (
                f"early call after {epochs} epochs: clean training accuracy {accuracy[-1]:.2f} is "
                f"within {thresholds.early_chance_margin:g} of chance ({chance:.2f}) and flat "
                f"({slope:.3f}/epoch): the model cannot fit its training data"
            ),
            {},
        )
    gap = float(val_loss[-1] - honest[CLEAN_TRAIN_LOSS][-1])
    if gap >= thresholds.early_overfit_gap and val_loss[-1] > val_loss.min():
        return Diagnosis(
            UNDER_REGULARIZED,
            (
                f"early call after {epochs} epochs: gap {gap:.2f} nats (at least "
                f"{thresholds.early_overfit_gap:g}) with the validation loss already "
                f"{val_loss[-1] / val_loss.min() - 1:.0%} above its minimum: overfitting hard"
            ),
            {},
        )
    return None


def regime_counts(diagnoses: Iterable[Diagnosis]) -> dict[str, int]:
    """Count per regime with every regime present, so a study summary never misses a zero row."""
    counts = Counter(diagnosis.regime for diagnosis in diagnoses)
    return {regime: counts[regime] for regime in REGIMES}


def _honest(curves: Curves) -> dict[str, np.ndarray]:
    missing = [key for key in HONEST_CURVES if key not in curves]
    if missing:
        raise ValueError(f"curves lack {', '.join(missing)} (have: {', '.join(sorted(curves))})")
    honest = {key: np.asarray(curves[key], dtype=float) for key in HONEST_CURVES}
    lengths = {key: len(values) for key, values in honest.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"curves differ in length: {lengths}")
    if 0 in lengths.values():
        raise ValueError("curves are empty: no epoch to diagnose")
    return honest


def _trailing_means(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of every run of ``window`` consecutive epochs (the whole run if it is shorter)."""
    window = min(window, len(values))
    return np.convolve(values, np.full(window, 1.0 / window), mode="valid")


def _slope(values: np.ndarray, window: int) -> float:
    """Least-squares change per epoch over the last ``window`` epochs: one noisy epoch moves a
    fitted line far less than it moves last-minus-first. A single epoch shows no change."""
    tail = values[-window:]
    if len(tail) < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(tail)), tail, 1)[0])


def _loss_numbers(honest: dict[str, np.ndarray], t: Thresholds) -> dict[str, float]:
    train = _trailing_means(honest[CLEAN_TRAIN_LOSS], t.smooth_epochs)
    val = _trailing_means(honest[VAL_DATA_LOSS], t.smooth_epochs)
    lowest = int(np.argmin(val))
    return {
        "epochs": float(len(honest[VAL_DATA_LOSS])),
        # arrays of floats, read as the sequences ``Curves`` holds
        "val_loss_min_epoch": float(
            best_epoch(cast(Curves, honest), OBJECTIVES[VAL_DATA_LOSS]) + 1
        ),
        CLEAN_TRAIN_LOSS: float(train[-1]),
        VAL_DATA_LOSS: float(val[-1]),
        FINAL_GAP_LOSS: float(val[-1] - train[-1]),
        "val_loss_rise": float(val[-1] / max(val[lowest], _TINY_LOSS) - 1.0),
        "train_loss_fall": float(1.0 - train[-1] / max(train[lowest], _TINY_LOSS)),
    }


def _accuracy_numbers(honest: dict[str, np.ndarray], t: Thresholds) -> dict[str, float]:
    train = float(_trailing_means(honest[CLEAN_TRAIN_ACCURACY], t.smooth_epochs)[-1])
    val = float(_trailing_means(honest[VAL_ACCURACY], t.smooth_epochs)[-1])
    return {
        CLEAN_TRAIN_ACCURACY: train,
        VAL_ACCURACY: val,
        FINAL_GAP_ACCURACY: train - val,
        "train_accuracy_slope": _slope(honest[CLEAN_TRAIN_ACCURACY], t.flat_window),
        "val_accuracy_slope": _slope(honest[VAL_ACCURACY], t.flat_window),
    }


def _classify(n: dict[str, float], t: Thresholds, chance: float) -> tuple[str, str]:
    if n["epochs"] < t.min_epochs:
        return INCONCLUSIVE, _too_short_reason(n, t)
    rising = n["val_loss_rise"] >= t.overfit_rise and n["train_loss_fall"] >= t.overfit_train_fall
    if rising or n[FINAL_GAP_LOSS] >= t.overfit_gap:
        return UNDER_REGULARIZED, _overfit_reason(n, t, rising)
    low_ceiling = chance + t.underfit_accuracy * (1.0 - chance)
    if n[CLEAN_TRAIN_ACCURACY] < low_ceiling and abs(n[FINAL_GAP_ACCURACY]) <= t.underfit_gap:
        if max(n["train_accuracy_slope"], n["val_accuracy_slope"]) < t.flat_slope:
            return OVER_REGULARIZED, _underfit_reason(n, t, low_ceiling)
        return INCONCLUSIVE, _still_learning_reason(n, t)
    return BALANCED, _balanced_reason(n, t)


def _too_short_reason(n: dict[str, float], t: Thresholds) -> str:
    epochs = int(n["epochs"])
    return (
        f"only {epochs} epoch{'' if epochs == 1 else 's'} recorded (at least {t.min_epochs} "
        f"needed): too short to tell over- from under-regularization"
    )


def _overfit_reason(n: dict[str, float], t: Thresholds, rising: bool) -> str:
    gap = f"gap {n[FINAL_GAP_LOSS]:.2f} nats"
    if rising:
        return (
            f"validation loss rose {n['val_loss_rise']:.0%} above its minimum (epoch "
            f"{int(n['val_loss_min_epoch'])}) while clean training loss kept falling "
            f"({n['train_loss_fall']:.0%}); {gap}"
        )
    return (
        f"validation loss {n[VAL_DATA_LOSS]:.2f} vs clean training loss "
        f"{n[CLEAN_TRAIN_LOSS]:.2f}: {gap}, at least {t.overfit_gap:g}"
    )


def _underfit_reason(n: dict[str, float], t: Thresholds, low_ceiling: float) -> str:
    return (
        f"clean training accuracy {n[CLEAN_TRAIN_ACCURACY]:.2f} (below {low_ceiling:.2f}) is "
        f"within {abs(n['final_gap_accuracy']):.2f} of validation accuracy "
        f"{n[VAL_ACCURACY]:.2f} and both are flat (under {t.flat_slope:g}/epoch): "
        f"the model cannot fit its training data"
    )


def _still_learning_reason(n: dict[str, float], t: Thresholds) -> str:
    slope = max(n["train_accuracy_slope"], n["val_accuracy_slope"])
    return (
        f"clean training accuracy {n[CLEAN_TRAIN_ACCURACY]:.2f} is low and close to validation "
        f"accuracy {n[VAL_ACCURACY]:.2f} but still improving ({slope:.3f}/epoch, "
        f"flat is under {t.flat_slope:g}): too short to tell whether it plateaus low"
    )


def _balanced_reason(n: dict[str, float], t: Thresholds) -> str:
    return (
        f"gap {n[FINAL_GAP_LOSS]:.2f} nats (under {t.overfit_gap:g}), validation loss "
        f"{n['val_loss_rise']:.0%} above its minimum, clean training accuracy "
        f"{n[CLEAN_TRAIN_ACCURACY]:.2f} vs validation {n[VAL_ACCURACY]:.2f}: "
        f"neither over- nor under-regularized"
    )
