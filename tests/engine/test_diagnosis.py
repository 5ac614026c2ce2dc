from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from tests.support.scripted import curves_from
from tune.engine.diagnosis import (
    REGIMES,
    Diagnosis,
    Thresholds,
    diagnose,
    early_call,
    regime_counts,
)

EPS = 1e-6
EPOCH = np.arange(1, 16)
REQUIRED_NUMBERS = {
    "final_gap_loss", "final_gap_accuracy", "val_loss_rise", "clean_train_accuracy",
    "val_accuracy", "val_loss_min_epoch", "epochs",
}


def overfit_curves() -> dict[str, list[float]]:
    return curves_from(2.0 * np.exp(-0.35 * EPOCH), 0.9 + 0.015 * (EPOCH - 5) ** 2,
                       1 - 0.75 * np.exp(-0.35 * EPOCH), 0.65 - 0.01 * np.abs(EPOCH - 5))


def underfit_curves() -> dict[str, list[float]]:
    flat = np.ones(len(EPOCH))
    return curves_from(2.0 * flat, 2.02 * flat, 0.25 * flat, 0.24 * flat)


def balanced_curves() -> dict[str, list[float]]:
    decay = np.exp(-0.25 * EPOCH)
    return curves_from(0.6 + 1.2 * decay, 0.75 + 1.1 * decay,
                       0.8 - 0.45 * decay, 0.74 - 0.41 * decay)


def noisy(curves: dict[str, list[float]], seed: int) -> dict[str, list[float]]:
    """3% multiplicative loss noise and 1-point accuracy jitter, like a few thousand eval images."""
    rng = np.random.default_rng(seed)
    return {
        key: list(np.clip(np.asarray(v) + rng.normal(0, 0.01, len(v)), 0, 1)) if "accuracy" in key
        else list(np.asarray(v) * (1 + rng.normal(0, 0.03, len(v))))
        for key, v in curves.items()
    }


def constant(epochs: int = 9, *, train_loss: float = 1.0, val_loss: float = 1.1,
             train_acc: float = 0.9, val_acc: float = 0.88) -> dict[str, list[float]]:
    return curves_from([train_loss] * epochs, [val_loss] * epochs,
                       [train_acc] * epochs, [val_acc] * epochs)


def stepped(
    train_loss: tuple[float, float], val_loss: tuple[float, float]
) -> dict[str, list[float]]:
    """Six epochs at one loss level then three at another: trailing means hit exact values."""
    return curves_from([train_loss[0]] * 6 + [train_loss[1]] * 3,
                       [val_loss[0]] * 6 + [val_loss[1]] * 3, [0.9] * 9, [0.88] * 9)


SCENARIOS = {
    "under-regularized": overfit_curves,
    "over-regularized": underfit_curves,
    "balanced": balanced_curves,
}


@pytest.mark.parametrize("regime", SCENARIOS)
def test_clear_scripted_curves_get_their_regime(regime: str) -> None:
    assert diagnose(SCENARIOS[regime]()).regime == regime


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("regime", SCENARIOS)
def test_noisy_curves_keep_their_regime(regime: str, seed: int) -> None:
    assert diagnose(noisy(SCENARIOS[regime](), seed)).regime == regime


def test_overfit_reason_quotes_the_rise_and_the_gap() -> None:
    result = diagnose(overfit_curves())
    assert result.numbers["val_loss_min_epoch"] == 5.0
    assert "above its minimum (epoch 5)" in result.reason
    assert f"gap {result.numbers['final_gap_loss']:.2f} nats" in result.reason


@pytest.mark.parametrize("epochs", [1, 2])
def test_too_short_curves_are_inconclusive(epochs: int) -> None:
    short = {key: values[:epochs] for key, values in overfit_curves().items()}
    result = diagnose(short)
    assert result.regime == "inconclusive"
    assert f"only {epochs} epoch" in result.reason and "too short" in result.reason
    assert result.numbers["epochs"] == float(epochs)


@pytest.mark.parametrize(("epochs", "regime"), [(2, "inconclusive"), (3, "over-regularized")])
def test_min_epochs_edge(epochs: int, regime: str) -> None:
    assert diagnose(constant(epochs, train_acc=0.25, val_acc=0.24)).regime == regime


@pytest.mark.parametrize(("gap", "regime"),
                         [(0.5 - EPS, "balanced"), (0.5 + EPS, "under-regularized")])
def test_overfit_gap_edge(gap: float, regime: str) -> None:
    result = diagnose(constant(val_loss=1.0 + gap))
    assert result.numbers["final_gap_loss"] == pytest.approx(gap, abs=1e-9)
    assert result.regime == regime


@pytest.mark.parametrize(("rise", "regime"),
                         [(0.1 - EPS, "balanced"), (0.1 + EPS, "under-regularized")])
def test_overfit_rise_edge(rise: float, regime: str) -> None:
    result = diagnose(stepped(train_loss=(0.45, 0.40), val_loss=(0.5, 0.5 * (1 + rise))))
    assert result.numbers["val_loss_rise"] == pytest.approx(rise, abs=1e-9)
    assert result.numbers["final_gap_loss"] < 0.5
    assert result.regime == regime


@pytest.mark.parametrize(("fall", "regime"),
                         [(0.05 - EPS, "balanced"), (0.05 + EPS, "under-regularized")])
def test_overfit_train_fall_edge(fall: float, regime: str) -> None:
    result = diagnose(stepped(train_loss=(0.5, 0.5 * (1 - fall)), val_loss=(0.5, 0.6)))
    assert result.numbers["train_loss_fall"] == pytest.approx(fall, abs=1e-9)
    assert result.regime == regime


@pytest.mark.parametrize(("accuracy", "regime"),
                         [(0.55 - EPS, "over-regularized"), (0.55 + EPS, "balanced")])
def test_underfit_accuracy_edge_is_half_way_from_chance(accuracy: float, regime: str) -> None:
    flat = constant(train_loss=1.5, val_loss=1.52, train_acc=accuracy, val_acc=accuracy - 0.01)
    assert diagnose(flat, num_classes=10).regime == regime


def test_underfit_accuracy_is_relative_to_chance() -> None:
    flat = constant(train_loss=0.6, val_loss=0.62, train_acc=0.7, val_acc=0.69)
    assert diagnose(flat, num_classes=10).regime == "balanced"
    assert diagnose(flat, num_classes=2).regime == "over-regularized"


@pytest.mark.parametrize(("val_acc", "regime"), [
    (0.3 - (0.05 - EPS), "over-regularized"), (0.3 - (0.05 + EPS), "balanced"),
    (0.3 + (0.05 - EPS), "over-regularized"), (0.3 + (0.05 + EPS), "balanced"),
])
def test_underfit_gap_edge_either_side(val_acc: float, regime: str) -> None:
    flat = constant(train_loss=1.8, val_loss=1.85, train_acc=0.3, val_acc=val_acc)
    assert diagnose(flat).regime == regime


@pytest.mark.parametrize(("slope", "regime"),
                         [(0.01 - EPS, "over-regularized"), (0.01 + EPS, "inconclusive")])
def test_flat_slope_edge(slope: float, regime: str) -> None:
    accuracy = 0.3 + slope * np.arange(9)
    result = diagnose(curves_from([1.8] * 9, [1.85] * 9, accuracy, accuracy - 0.01))
    assert result.numbers["train_accuracy_slope"] == pytest.approx(slope, abs=1e-9)
    assert result.regime == regime
    if regime == "inconclusive":
        assert "still improving" in result.reason


def test_both_accuracies_must_be_flat() -> None:
    rising_val = 0.28 + 0.012 * np.arange(5)
    result = diagnose(curves_from([1.8] * 5, [1.85] * 5, [0.3] * 5, rising_val))
    assert result.numbers["val_accuracy_slope"] == pytest.approx(0.012)
    assert result.regime == "inconclusive"


def test_overfitting_takes_precedence_over_underfitting() -> None:
    both = constant(train_loss=1.0, val_loss=1.6, train_acc=0.3, val_acc=0.29)
    assert diagnose(both).regime == "under-regularized"
    assert diagnose(both, Thresholds(overfit_gap=1.0)).regime == "over-regularized"


def test_early_stopping_tail_stays_balanced() -> None:
    curves = balanced_curves()
    low = min(curves["val_data_loss"])
    tail = curves_from(np.asarray(curves["clean_train_loss"][-1]) - [0.01, 0.02, 0.03],
                       [low * 1.02, low * 1.03, low * 1.04], [0.8] * 3, [0.73] * 3)
    result = diagnose({key: curves[key] + tail[key] for key in curves})
    assert 0 < result.numbers["val_loss_rise"] < 0.1
    assert result.regime == "balanced"


def test_smoothing_ignores_a_single_spike() -> None:
    spike = curves_from([0.5] * 8 + [0.45], [0.6] * 8 + [0.75], [0.9] * 9, [0.88] * 9)
    assert diagnose(spike).numbers["val_loss_rise"] == pytest.approx(0.65 / 0.6 - 1)
    assert diagnose(spike).regime == "balanced"
    assert diagnose(spike, Thresholds(smooth_epochs=1)).regime == "under-regularized"


def test_numbers_for_a_hand_computed_case() -> None:
    curves = {"clean_train_loss": [1.0, 0.8, 0.6, 0.4], "val_data_loss": [1.1, 0.9, 1.0, 1.2],
              "clean_train_accuracy": [0.5, 0.6, 0.7, 0.8], "val_accuracy": [0.45, 0.5, 0.55, 0.5]}
    result = diagnose(curves)
    assert result.numbers == pytest.approx({
        "epochs": 4.0, "val_loss_min_epoch": 2.0,
        "clean_train_loss": 0.6, "val_data_loss": 3.1 / 3, "final_gap_loss": 3.1 / 3 - 0.6,
        "val_loss_rise": 3.1 / 3 - 1, "train_loss_fall": 0.25,
        "clean_train_accuracy": 0.7, "val_accuracy": 1.55 / 3, "final_gap_accuracy": 0.7 - 1.55 / 3,
        "train_accuracy_slope": 0.1, "val_accuracy_slope": 0.02,
    })
    assert result.regime == "balanced"
    assert "gap 0.43 nats" in result.reason


@pytest.mark.parametrize("make", [*SCENARIOS.values(),
                                  lambda: {k: v[:1] for k, v in overfit_curves().items()}])
def test_numbers_are_complete_finite_floats(
    make: Callable[[], dict[str, list[float]]],
) -> None:
    numbers = diagnose(make()).numbers
    assert REQUIRED_NUMBERS <= numbers.keys()
    assert all(type(value) is float and math.isfinite(value) for value in numbers.values())


def test_changing_a_threshold_flips_the_label() -> None:
    curves = balanced_curves()
    assert diagnose(curves).regime == "balanced"
    assert diagnose(curves, Thresholds(overfit_gap=0.1)).regime == "under-regularized"
    assert diagnose(curves, Thresholds(underfit_accuracy=0.9, underfit_gap=0.1,
                                       flat_slope=0.05)).regime == "over-regularized"


@pytest.mark.parametrize(("curves", "message"), [
    ({"clean_train_loss": [1.0], "val_data_loss": [1.0]},
     "lack clean_train_accuracy, val_accuracy"),
    (constant(3) | {"val_accuracy": [0.5, 0.5]}, "differ in length"),
    (constant(0), "empty"),
])
def test_impossible_curves_raise(curves: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        diagnose(curves)


def test_num_classes_must_allow_a_choice() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        diagnose(balanced_curves(), num_classes=1)


def test_regime_counts_lists_every_regime() -> None:
    made = [diagnose(make()) for make in (overfit_curves, overfit_curves, balanced_curves)]
    assert regime_counts(made) == {"under-regularized": 2, "over-regularized": 0,
                                   "balanced": 1, "inconclusive": 0}
    assert regime_counts([]) == dict.fromkeys(REGIMES, 0)


def test_diagnosis_rejects_unknown_regime() -> None:
    with pytest.raises(ValueError, match="'overfit' is not one of"):
        Diagnosis("overfit", "", {})


@pytest.mark.integration
def test_import_loads_no_heavy_framework() -> None:
    code = ("import sys, tune.engine.diagnosis; print(sorted(m for m in "
            "('tensorflow', 'keras', 'optuna', 'mlflow', 'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert loaded.stdout.strip() == "[]"


def first(curves: dict[str, list[float]], epochs: int = 3) -> dict[str, list[float]]:
    return {key: values[:epochs] for key, values in curves.items()}


def test_the_early_call_catches_a_model_stuck_at_chance() -> None:
    stuck = curves_from([2.3] * 3, [2.3] * 3, [0.10, 0.11, 0.10], [0.10, 0.10, 0.11])
    call = early_call(stuck)
    assert call is not None and call.regime == "over-regularized"
    assert "early call after 3 epochs" in call.reason and "chance (0.10)" in call.reason


def test_the_early_call_catches_hard_overfitting_with_a_rising_validation_loss() -> None:
    hard = curves_from([1.0, 0.4, 0.1], [1.3, 1.2, 1.4], [0.6, 0.9, 0.99], [0.5, 0.55, 0.55])
    call = early_call(hard)
    assert (
        call is not None and call.regime == "under-regularized" and "gap 1.30 nats" in call.reason
    )


@pytest.mark.parametrize("curves", [
    first(balanced_curves()), first(overfit_curves()), first(underfit_curves()),
    # a wide gap but the validation loss still falling: it may yet settle
    curves_from([1.0, 0.4, 0.1], [1.5, 1.4, 1.3], [0.6, 0.9, 0.99], [0.5, 0.55, 0.56]),
    # near chance but climbing: a slow starter, not a lost cause
    curves_from([2.3, 2.2, 2.0], [2.3, 2.2, 2.0], [0.10, 0.12, 0.14], [0.10, 0.12, 0.14]),
], ids=["balanced", "mild-overfit", "underfit-above-chance", "gap-but-falling", "slow-start"])
def test_the_early_call_leaves_everything_else_to_the_full_run(
    curves: dict[str, list[float]],
) -> None:
    assert early_call(curves) is None
