from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from tune import training
from tune.catalog import OPTIMIZER_NAMES
from tune.datasets import Splits
from tune.errors import TrainingDiverged
from tune.search_space import DEFAULTS
from tune.training import METRICS, TrainingResult, train_model

PARAMS: dict[str, Any] = {**DEFAULTS, "learning_rate": 3e-3, "batch_size": 32}


class Pruned(Exception):
    pass


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
def regularized(
    overfitting_splits: Splits, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainingResult, list[tuple[int, dict[str, float]]], Path]:
    calls: list[tuple[int, dict[str, float]]] = []
    path = tmp_path_factory.mktemp("model") / "best.keras"
    result = train_model(
        {**PARAMS, "l2": 1e-2, "dropout": 0.5},
        overfitting_splits,
        model_name="seed_cnn",
        epochs=3,
        seed=1,
        on_epoch=lambda epoch, logs: calls.append((epoch, logs)),
        save_path=path,
    )
    return result, calls, path


def _crossentropy_and_accuracy(
    model: keras.Model, x: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    probabilities = model.predict(x, verbose=0).astype(np.float64)
    loss = -np.log(probabilities[np.arange(len(y)), y]).mean()
    return float(loss), float((probabilities.argmax(axis=1) == y).mean())


def test_history_has_every_metric_for_every_epoch(regularized: Any) -> None:
    result, _, _ = regularized
    assert set(result.history) == set(METRICS)
    assert all(len(values) == 3 for values in result.history.values())
    assert all(type(value) is float for values in result.history.values() for value in values)
    assert (result.epochs_run, result.stopped_early) == (3, False)


def test_keras_losses_include_the_penalty_and_data_losses_do_not(regularized: Any) -> None:
    history = regularized[0].history
    assert all(np.greater(history["val_loss"], history["val_data_loss"]))
    assert all(np.greater(history["loss"], history["data_loss"]))


def test_on_epoch_gets_each_epochs_metrics_as_recorded(regularized: Any) -> None:
    result, calls, _ = regularized
    assert [epoch for epoch, _ in calls] == [0, 1, 2]
    for epoch, logs in calls:
        assert logs == {key: result.history[key][epoch] for key in METRICS}


def test_patience_zero_still_keeps_the_best_epochs_weights(
    regularized: Any, overfitting_splits: Splits
) -> None:
    result, _, path = regularized
    val_data_loss = result.history["val_data_loss"]
    assert result.best_epoch == int(np.argmin(val_data_loss)) == 0
    assert val_data_loss[2] > val_data_loss[0]
    saved = keras.saving.load_model(path)
    loss, _ = _crossentropy_and_accuracy(saved, overfitting_splits.x_val, overfitting_splits.y_val)
    assert loss == pytest.approx(val_data_loss[0], rel=1e-4)


def test_clean_train_metrics_are_penalty_free_inference_on_the_training_set(
    regularized: Any, overfitting_splits: Splits
) -> None:
    result, _, path = regularized
    saved = keras.saving.load_model(path)
    loss, accuracy = _crossentropy_and_accuracy(
        saved, overfitting_splits.x_train, overfitting_splits.y_train
    )
    assert result.history["clean_train_loss"][0] == pytest.approx(loss, rel=1e-4)
    assert result.history["clean_train_accuracy"][0] == pytest.approx(accuracy)
    assert result.history["clean_train_loss"][0] != pytest.approx(result.history["data_loss"][0])


def test_early_stopping_stops_when_validation_loss_rises(overfitting_splits: Splits) -> None:
    result = train_model(
        {**PARAMS, "early_stopping_patience": 1},
        overfitting_splits,
        model_name="seed_cnn",
        epochs=6,
        seed=1,
    )
    assert (result.epochs_run, result.stopped_early) == (2, True)
    assert result.best_epoch == int(np.argmin(result.history["val_data_loss"])) == 0
    history = result.history
    np.testing.assert_allclose(history["val_loss"], history["val_data_loss"], rtol=1e-5)


def test_exception_from_on_epoch_propagates_and_the_session_is_cleared(
    overfitting_splits: Splits,
) -> None:
    def prune(epoch: int, logs: dict[str, float]) -> None:
        raise Pruned(f"epoch {epoch}")

    with pytest.raises(Pruned, match="epoch 0"):
        train_model(
            PARAMS,
            overfitting_splits,
            model_name="vgg_bn",
            epochs=3,
            seed=1,
            precision="mixed_bfloat16",
            on_epoch=prune,
        )
    assert keras.backend.get_uid("dense") == 1
    assert keras.mixed_precision.global_policy().name == "float32"


def test_same_seed_gives_the_same_history(overfitting_splits: Splits) -> None:
    params = {**PARAMS, "dropout": 0.5, "flip": True, "input_noise": 0.1}
    first, second = (
        train_model(params, overfitting_splits, model_name="seed_cnn", epochs=1, seed=5)
        for _ in range(2)
    )
    assert first.history == second.history


def test_non_finite_loss_raises_training_diverged(overfitting_splits: Splits) -> None:
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2: loss=nan.*learning_rate=1000000"):
        train_model(
            {**PARAMS, "learning_rate": 1e6},
            overfitting_splits,
            model_name="seed_cnn",
            epochs=2,
            seed=1,
        )


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_optimizer_name_gives_its_optimizer_at_the_learning_rate(name: str) -> None:
    optimizer = training._optimizer(name, 0.01)
    assert type(optimizer).__name__.lower() == name
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


def test_sgd_uses_momentum_and_adamw_decays_kernels_only() -> None:
    assert training._optimizer("sgd", 0.1).momentum == 0.9
    adamw = training._optimizer("adamw", 0.1)
    variables = [keras.Variable(np.ones(2), name=name) for name in ("kernel", "bias", "gamma")]
    adamw.apply_gradients([(np.zeros(2), variable) for variable in variables])
    kernel, bias, gamma = (keras.ops.convert_to_numpy(variable) for variable in variables)
    assert np.all(kernel < 1.0)
    assert np.all(bias == 1.0) and np.all(gamma == 1.0)


def test_clean_train_subset_is_a_fixed_sample_of_the_requested_size(
    overfitting_splits: Splits,
) -> None:
    x, y = training._clean_subset(overfitting_splits, 50, seed=3)
    x_again, _ = training._clean_subset(overfitting_splits, 50, seed=3)
    assert x.shape == (50, 32, 32, 3) and y.shape == (50,)
    np.testing.assert_array_equal(x, x_again)
    train_rows = {image.tobytes() for image in overfitting_splits.x_train}
    assert len({image.tobytes() for image in x} & train_rows) == 50
    assert len(training._clean_subset(overfitting_splits, 5000, seed=3)[0]) == 200


@pytest.mark.parametrize(
    ("argument", "message"),
    [({"precision": "float16"}, "unknown precision 'float16'"), ({"epochs": 0}, "epochs must")],
)
def test_invalid_arguments_are_rejected(
    overfitting_splits: Splits, argument: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"model_name": "seed_cnn", "epochs": 1, "seed": 0, **argument}
    with pytest.raises(ValueError, match=message):
        train_model(PARAMS, overfitting_splits, **arguments)
