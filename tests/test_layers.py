from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tune.training.layers import DropConnectDense

IN_FEATURES = 8
UNITS = 256


def _built_layer(rate: float, **kwargs: object) -> DropConnectDense:
    keras.utils.set_random_seed(3)
    layer = DropConnectDense(UNITS, rate=rate, bias_initializer="random_normal", **kwargs)
    layer.build((None, IN_FEATURES))
    return layer


def test_training_output_for_one_hot_input_is_the_masked_scaled_kernel_row() -> None:
    layer = _built_layer(0.5, use_bias=False)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    out = keras.ops.convert_to_numpy(layer(np.eye(IN_FEATURES, dtype="float32"), training=True))
    dropped = out == 0.0
    np.testing.assert_allclose(out[~dropped], (kernel / 0.5)[~dropped], rtol=1e-6)
    assert 0.3 < dropped.mean() < 0.7


def test_mask_is_drawn_again_on_each_call() -> None:
    layer = _built_layer(0.5, use_bias=False)
    inputs = np.eye(IN_FEATURES, dtype="float32")
    first = keras.ops.convert_to_numpy(layer(inputs, training=True))
    second = keras.ops.convert_to_numpy(layer(inputs, training=True))
    assert not np.array_equal(first == 0.0, second == 0.0)


def test_inference_uses_the_full_kernel_and_bias() -> None:
    layer = _built_layer(0.5)
    inputs = np.random.default_rng(0).normal(size=(5, IN_FEATURES)).astype("float32")
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.bias)
    out = keras.ops.convert_to_numpy(layer(inputs, training=False))
    np.testing.assert_allclose(out, inputs @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_rate_zero_in_training_equals_dense_with_the_same_weights() -> None:
    layer = _built_layer(0.0, activation="relu")
    dense = keras.layers.Dense(UNITS, activation="relu")
    dense.build((None, IN_FEATURES))
    dense.set_weights(layer.get_weights())
    inputs = np.random.default_rng(1).normal(size=(5, IN_FEATURES)).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(inputs, training=True)),
        keras.ops.convert_to_numpy(dense(inputs, training=True)),
    )


def test_config_round_trip_keeps_every_setting() -> None:
    layer = DropConnectDense(
        12,
        rate=0.25,
        activation="relu",
        use_bias=False,
        kernel_regularizer=keras.regularizers.L1L2(l1=1e-4, l2=2e-3),
        seed=7,
    )
    clone = DropConnectDense.from_config(layer.get_config())
    assert (clone.units, clone.rate, clone.use_bias, clone.seed) == (12, 0.25, False, 7)
    assert clone.activation is keras.activations.relu
    assert clone.kernel_regularizer.get_config() == pytest.approx({"l1": 1e-4, "l2": 2e-3})


def test_kernel_regularizer_adds_a_loss_and_the_bias_does_not() -> None:
    layer = DropConnectDense(3, rate=0.5, kernel_regularizer=keras.regularizers.L2(0.5))
    layer.build((None, 2))
    layer.kernel.assign(np.ones((2, 3), dtype="float32"))
    layer.bias.assign(np.full((3,), 10.0, dtype="float32"))
    assert float(keras.ops.sum(layer.losses)) == pytest.approx(0.5 * 6)


def test_model_with_the_layer_survives_save_and_load(tmp_path: Path) -> None:
    inputs = keras.Input((IN_FEATURES,))
    model = keras.Model(inputs, DropConnectDense(4, rate=0.3, activation="softmax")(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(3, IN_FEATURES)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(loaded.layers[-1], DropConnectDense)


def test_rate_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="rate must be in"):
        DropConnectDense(4, rate=1.0)
