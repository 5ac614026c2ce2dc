from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tune.training.layers import NoisyConv2D, RandomAffine, RegularizedDense

IN_FEATURES = 8
UNITS = 256


def _built_layer(rate: float, **kwargs: object) -> RegularizedDense:
    keras.utils.set_random_seed(3)
    layer = RegularizedDense(UNITS, dropconnect=rate, bias_initializer="random_normal", **kwargs)
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
    layer = RegularizedDense(
        12,
        dropconnect=0.25,
        activation="relu",
        use_bias=False,
        kernel_regularizer=keras.regularizers.L1L2(l1=1e-4, l2=2e-3),
        seed=7,
    )
    clone = RegularizedDense.from_config(layer.get_config())
    assert (clone.units, clone.dropconnect, clone.use_bias, clone.seed) == (12, 0.25, False, 7)
    assert clone.activation is keras.activations.relu
    assert clone.kernel_regularizer.get_config() == pytest.approx({"l1": 1e-4, "l2": 2e-3})


def test_kernel_regularizer_adds_a_loss_and_the_bias_does_not() -> None:
    layer = RegularizedDense(3, dropconnect=0.5, kernel_regularizer=keras.regularizers.L2(0.5))
    layer.build((None, 2))
    layer.kernel.assign(np.ones((2, 3), dtype="float32"))
    layer.bias.assign(np.full((3,), 10.0, dtype="float32"))
    assert float(keras.ops.sum(layer.losses)) == pytest.approx(0.5 * 6)


def test_model_with_the_layer_survives_save_and_load(tmp_path: Path) -> None:
    inputs = keras.Input((IN_FEATURES,))
    model = keras.Model(inputs, RegularizedDense(4, dropconnect=0.3, activation="softmax")(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(3, IN_FEATURES)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(loaded.layers[-1], RegularizedDense)


def test_rate_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="dropconnect must be in"):
        RegularizedDense(4, dropconnect=1.0)


def test_weight_noise_perturbs_the_kernel_in_training_only() -> None:
    layer = RegularizedDense(UNITS, weight_noise=0.1, use_bias=False, seed=5)
    layer.build((None, IN_FEATURES))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    identity = np.eye(IN_FEATURES, dtype="float32")
    noise = keras.ops.convert_to_numpy(layer(identity, training=True)) - kernel
    assert abs(noise.std() - 0.1) < 0.01 and abs(noise.mean()) < 0.01
    again = keras.ops.convert_to_numpy(layer(identity, training=True)) - kernel
    assert not np.allclose(noise, again), "fresh noise every step"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(identity, training=False)), kernel, rtol=1e-6
    )


def test_weight_noise_keeps_dropped_connections_dropped() -> None:
    layer = RegularizedDense(UNITS, dropconnect=0.5, weight_noise=0.1, use_bias=False, seed=5)
    layer.build((None, IN_FEATURES))
    out = keras.ops.convert_to_numpy(layer(np.eye(IN_FEATURES, dtype="float32"), training=True))
    assert 0.3 < (out == 0.0).mean() < 0.7


def test_noisy_conv_adds_noise_in_training_only_and_round_trips(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, NoisyConv2D(4, 3, weight_noise=0.2, seed=1)(inputs))
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    clean = keras.ops.convert_to_numpy(model(x, training=False))
    noisy = keras.ops.convert_to_numpy(model(x, training=True))
    plain = keras.layers.Conv2D(4, 3)
    plain.build((None, 6, 6, 2))
    plain.set_weights(model.layers[-1].get_weights())
    np.testing.assert_allclose(clean, keras.ops.convert_to_numpy(plain(x)), rtol=1e-5, atol=1e-6)
    assert np.abs(noisy - clean).mean() > 0.1
    model.save(tmp_path / "noisy.keras")
    loaded = keras.saving.load_model(tmp_path / "noisy.keras")
    assert loaded.layers[-1].weight_noise == 0.2
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)), clean, rtol=1e-5, atol=1e-6
    )


def _augmented(images: np.ndarray, **ranges: object) -> np.ndarray:
    return keras.ops.convert_to_numpy(RandomAffine(**ranges, seed=1)(images, training=True))


@pytest.mark.parametrize("resampled", [False, True], ids=["reversal", "one_resampling"])
def test_a_flip_mirrors_about_half_the_images_exactly(resampled: bool) -> None:
    images = np.random.default_rng(0).random((200, 8, 8, 3)).astype("float32")
    out = _augmented(images, flip=True, zoom=1e-7 if resampled else 0.0)
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-4) for o, i in zip(out, images)]
    unchanged = [np.allclose(o, i, atol=1e-4) for o, i in zip(out, images)]
    assert all(m != u for m, u in zip(mirrored, unchanged))
    assert 70 < sum(mirrored) < 130


def test_shifts_move_a_dot_by_up_to_the_range_of_the_width_only() -> None:
    dots = np.zeros((500, 32, 32, 1), "float32")
    dots[:, 16, 16] = 1.0
    out = _augmented(dots, width_shift=0.1)[..., 0]
    row = out[:, 16, :]
    columns = (row * np.arange(32)).sum(axis=1) / row.sum(axis=1) - 16
    assert -3.2 <= columns.min() < -2.5 and 2.5 < columns.max() <= 3.2
    np.testing.assert_allclose(
        row.sum(axis=1), 1.0, atol=1e-4
    )  # no vertical spread: the dot stays in its row


def test_rotation_turns_a_horizontal_bar_by_at_most_its_range() -> None:
    bars = np.zeros((300, 33, 33, 1), "float32")
    bars[:, 16, 4:29] = 1.0
    out = _augmented(bars, rotation=20.0)[..., 0]
    ys, xs = np.mgrid[0:33, 0:33] - 16.0
    slopes = [np.polyfit(xs[o > 0.5], ys[o > 0.5], 1)[0] for o in out]
    angles = np.degrees(np.arctan(slopes))
    assert np.abs(angles).max() <= 21.0 and np.abs(angles).max() > 15.0 and np.std(angles) > 8.0


def test_inference_leaves_images_unchanged_and_config_round_trips(tmp_path: Path) -> None:
    images = np.random.default_rng(1).random((4, 16, 16, 3)).astype("float32")
    layer = RandomAffine(
        flip=True, rotation=30.0, width_shift=0.2, height_shift=0.1, zoom=0.2, seed=5
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=False)), images)
    assert not np.allclose(keras.ops.convert_to_numpy(layer(images, training=True)), images)
    copy = RandomAffine.from_config(layer.get_config())
    assert (
        copy.flip,
        copy.rotation,
        copy.width_shift,
        copy.height_shift,
        copy.zoom,
        copy.seed,
    ) == (True, 30.0, 0.2, 0.1, 0.2, 5)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), layer, keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6
    )
