from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from tune.contract import (
    BUILTIN,
    DEFAULT_OBJECTIVE,
    METRICS,
    OBJECTIVES,
    OPTIMIZER_NAMES,
    VAL_ACCURACY,
    EpochHook,
    ModelSource,
    Splits,
    TrainingResult,
)
from tune.engine.config import DEFAULTS, default_train_settings
from tune.errors import TrainingDiverged
from tune.training import fit, pipeline
from tune.training.fit import fit_model, train_model

pytestmark = pytest.mark.integration

# The regularized fit: its result, what each epoch's hook got, and the model.
Regularized = tuple[TrainingResult, list[tuple[int, dict[str, float]]], keras.Model]
PARAMS: dict[str, Any] = {**DEFAULTS, "learning_rate": 3e-3, "batch_size": 32}


class Pruned(Exception):
    pass


def ignore(epoch: int, logs: dict[str, float]) -> None:
    """An epoch hook for tests that only look at the result."""


def train(
    params: dict[str, Any], splits: Splits, epochs: int, on_epoch: EpochHook = ignore,
    model_name: str = "seed_cnn", **settings: Any,
) -> TrainingResult:
    return train_model(
        params,
        splits,
        default_train_settings(ModelSource(BUILTIN, model_name), epochs, seed=1, **settings),
        on_epoch,
    )


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = np.where(labels[:, None, None, None] == 1, 170, 30)
    return (base + rng.integers(0, 56, (len(labels), 32, 32, 3))).astype(np.uint8)


@pytest.fixture(scope="module")
def overfitting_splits() -> Splits:
    """Dark vs bright images, with validation labels inverted: the better the model fits the
    training rule, the higher its validation loss, so the best epoch is always the first."""
    rng = np.random.default_rng(0)
    y_train, y_val = rng.integers(0, 2, 200), rng.integers(0, 2, 100)
    x_train, x_val = _images(y_train, rng), _images(y_val, rng)
    return Splits(x_train, y_train, x_val, 1 - y_val, ("dark", "bright"))


@pytest.fixture(scope="module")
def regularized(overfitting_splits: Splits) -> Regularized:
    calls: list[tuple[int, dict[str, float]]] = []
    model, result = fit_model(
        {**PARAMS, "l2_dense": 1e-2, "dropout": 0.5},
        overfitting_splits,
        default_train_settings(ModelSource(), epochs=3, seed=1),
        lambda epoch, logs: calls.append((epoch, logs)),
    )
    return result, calls, model


def _crossentropy_and_accuracy(
    model: keras.Model, x: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    probabilities = model.predict(x, verbose=0).astype(np.float64)
    loss = -np.log(probabilities[np.arange(len(y)), y]).mean()
    return float(loss), float((probabilities.argmax(axis=1) == y).mean())


def test_history_has_every_metric_for_every_epoch(regularized: Regularized) -> None:
    result, _, _ = regularized
    assert set(result.history) == set(METRICS)
    assert all(len(values) == 3 for values in result.history.values())
    assert all(type(value) is float for values in result.history.values() for value in values)
    assert (result.epochs_run, result.stopped_early) == (3, False)


def test_keras_losses_include_the_penalty_and_data_losses_do_not(regularized: Regularized) -> None:
    history = regularized[0].history
    assert all(np.greater(history["val_loss"], history["val_data_loss"]))
    assert all(np.greater(history["loss"], history["data_loss"]))


def test_on_epoch_gets_each_epochs_metrics_as_recorded(regularized: Regularized) -> None:
    result, calls, _ = regularized
    assert [epoch for epoch, _ in calls] == [0, 1, 2]
    for epoch, logs in calls:
        assert logs == {key: result.history[key][epoch] for key in METRICS}


def test_patience_zero_still_keeps_the_best_epochs_weights(
    regularized: Regularized, overfitting_splits: Splits
) -> None:
    result, _, model = regularized
    val_data_loss = result.history[DEFAULT_OBJECTIVE.metric]
    assert result.best_epoch == int(np.argmin(val_data_loss)) == 0
    assert result.value == val_data_loss[0] < val_data_loss[2]
    loss, _ = _crossentropy_and_accuracy(model, overfitting_splits.x_val, overfitting_splits.y_val)
    assert loss == pytest.approx(val_data_loss[0], rel=1e-4)


def test_an_accuracy_objective_early_stops_and_keeps_weights_on_validation_accuracy(
    overfitting_splits: Splits,
) -> None:
    """``study.objective: val_accuracy``: the epoch kept, the value and the early stop all follow
    validation accuracy (first highest), and the model returned has that epoch's weights."""
    settings = default_train_settings(
        ModelSource(), epochs=6, seed=1, objective=OBJECTIVES[VAL_ACCURACY]
    )
    model, result = fit_model(
        {**PARAMS, "early_stopping_patience": 2}, overfitting_splits, settings, ignore
    )
    accuracy = result.history[VAL_ACCURACY]
    best = int(np.argmax(accuracy))
    assert result.best_epoch == best and result.value == accuracy[best]
    assert result.epochs_run == min(6, best + 3), "stops 2 epochs after the last improvement"
    _, kept = _crossentropy_and_accuracy(model, overfitting_splits.x_val, overfitting_splits.y_val)
    assert kept == pytest.approx(accuracy[best])


def test_clean_train_metrics_are_penalty_free_inference_on_the_training_set(
    regularized: Regularized, overfitting_splits: Splits
) -> None:
    result, _, model = regularized
    loss, accuracy = _crossentropy_and_accuracy(
        model, overfitting_splits.x_train, overfitting_splits.y_train
    )
    assert result.history["clean_train_loss"][0] == pytest.approx(loss, rel=1e-4)
    assert result.history["clean_train_accuracy"][0] == pytest.approx(accuracy)
    assert result.history["clean_train_loss"][0] != pytest.approx(result.history["data_loss"][0])


def test_early_stopping_stops_when_validation_loss_rises(overfitting_splits: Splits) -> None:
    result = train({**PARAMS, "early_stopping_patience": 1}, overfitting_splits, epochs=6)
    assert (result.epochs_run, result.stopped_early) == (2, True)
    assert result.best_epoch == int(np.argmin(result.history[DEFAULT_OBJECTIVE.metric])) == 0
    history = result.history
    np.testing.assert_allclose(history["val_loss"], history["val_data_loss"], rtol=1e-5)


def test_exception_from_on_epoch_propagates_and_the_session_is_cleared(
    overfitting_splits: Splits,
) -> None:
    def prune(epoch: int, logs: dict[str, float]) -> None:
        raise Pruned(f"epoch {epoch}")

    with pytest.raises(Pruned, match="epoch 0"):
        train(PARAMS, overfitting_splits, 3, prune, model_name="vgg_bn", precision="mixed_bfloat16")
    assert keras.backend.get_uid("dense") == 1
    assert keras.mixed_precision.global_policy().name == "float32"


def test_same_seed_gives_the_same_history(overfitting_splits: Splits) -> None:
    params = {**PARAMS, "dropout": 0.5, "flip": True, "input_noise": 0.1}
    first, second = (train(params, overfitting_splits, epochs=1) for _ in range(2))
    assert first.history == second.history


def test_non_finite_loss_raises_training_diverged_before_the_epoch_is_reported(
    overfitting_splits: Splits,
) -> None:
    reported: list[int] = []
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2: loss=nan.*learning_rate=1000000"):
        train(
            {**PARAMS, "learning_rate": 1e6},
            overfitting_splits,
            2,
            lambda epoch, logs: reported.append(epoch),
        )
    assert reported == [], "a diverged epoch must never reach the engine"


def test_every_optimizer_name_the_schema_accepts_has_an_optimizer() -> None:
    assert set(fit._OPTIMIZERS) == set(OPTIMIZER_NAMES)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_optimizer_name_gives_its_optimizer_at_the_learning_rate(name: str) -> None:
    optimizer = fit._OPTIMIZERS[name](0.01)
    assert type(optimizer).__name__.lower() == name
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


def test_sgd_uses_momentum_and_adamw_decays_kernels_only() -> None:
    assert fit._OPTIMIZERS["sgd"](0.1).momentum == 0.9
    adamw = fit._OPTIMIZERS["adamw"](0.1)
    variables = [keras.Variable(np.ones(2), name=name) for name in ("kernel", "bias", "gamma")]
    adamw.apply_gradients([(np.zeros(2), variable) for variable in variables])
    kernel, bias, gamma = (keras.ops.convert_to_numpy(variable) for variable in variables)
    assert np.all(kernel < 1.0)
    assert np.all(bias == 1.0) and np.all(gamma == 1.0)


def test_clean_train_subset_is_a_fixed_sample_of_the_requested_size(
    overfitting_splits: Splits,
) -> None:
    x, y = pipeline.clean_subset(overfitting_splits, 50, seed=3)
    x_again, _ = pipeline.clean_subset(overfitting_splits, 50, seed=3)
    assert x.shape == (50, 32, 32, 3) and y.shape == (50,)
    np.testing.assert_array_equal(x, x_again)
    train_rows = {image.tobytes() for image in overfitting_splits.x_train}
    assert len({image.tobytes() for image in x} & train_rows) == 50
    assert len(pipeline.clean_subset(overfitting_splits, 5000, seed=3)[0]) == 200


def test_cosine_schedule_anneals_per_epoch_over_the_budget_and_constant_keeps_the_rate(
    overfitting_splits: Splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates: list[float] = []

    class RecordRate(keras.callbacks.Callback):
        """Runs after the schedule, so it sees the rate each epoch trains at."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    callbacks = fit._callbacks
    monkeypatch.setattr(fit, "_callbacks", lambda *args: [*callbacks(*args), RecordRate()])
    train({**PARAMS, "lr_schedule": "constant"}, overfitting_splits, epochs=4)
    assert rates == pytest.approx([3e-3] * 4)
    rates.clear()
    train({**PARAMS, "lr_schedule": "cosine"}, overfitting_splits, epochs=4)
    assert rates == pytest.approx(
        [3e-3 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)], rel=1e-5
    )


@pytest.mark.parametrize(("flags", "expected"), [
    (frozenset({"avx2", "avx512f", "avx512_bf16"}), "mixed_bfloat16"),
    (frozenset({"avx2", "amx_tile", "amx_bf16"}), "mixed_bfloat16"),
    (frozenset({"avx2", "avx512f"}), "float32"),
    (frozenset(), "float32"),
])
def test_auto_precision_takes_bfloat16_only_where_the_cpu_computes_it(
    flags: frozenset[str], expected: str
) -> None:
    """These test machines have no GPU, so the CPU's flags decide."""
    assert fit.resolve_precision("auto", flags) == expected
    assert fit.resolve_precision("float32", flags) == "float32"
    assert fit.resolve_precision("mixed_bfloat16", frozenset()) == "mixed_bfloat16"


def test_auto_precision_trains_here(overfitting_splits: Splits) -> None:
    expected = fit.resolve_precision("auto")
    model, _ = fit_model(
        PARAMS,
        overfitting_splits,
        default_train_settings(ModelSource(), 1, seed=1, precision="auto"),
        ignore,
    )
    assert model.dtype_policy.name == expected
