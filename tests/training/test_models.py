from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest

from tune.contract import BUILTIN, MODEL_NAMES, ModelSource
from tune.engine.config import BASELINE, DEFAULTS
from tune.training import models
from tune.training.architectures import BUILT_INS
from tune.training.layers import NoisyConv2D, RegularizedDense

ALL_OFF: dict[str, Any] = dict(DEFAULTS)
ALL_ON: dict[str, Any] = {
    **ALL_OFF,
    "l1_conv": 1e-5,
    "l2_conv": 1e-3,
    "l1_dense": 2e-5,
    "l2_dense": 3e-3,
    "dropout": 0.3,
    "dropconnect": 0.4,
    "input_noise": 0.05,
    "weight_noise": 0.02,
    "batch_norm": True,
    "flip": True,
    "rotation": 18.0,
    "width_shift": 0.1,
    "height_shift": 0.2,
    "zoom": 0.15,
}
KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense, RegularizedDense)


def build(name: str, params: dict[str, Any]) -> keras.Model:
    return models.build_model(ModelSource(BUILTIN, name), params, (32, 32, 3), 10)[0]


def _count(model: keras.Model, layer_type: type) -> int:
    return sum(isinstance(layer, layer_type) for layer in model.layers)


def _kernel_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, KERNEL_LAYERS)]


@pytest.fixture
def mixed_bfloat16() -> Iterator[None]:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("params", [ALL_OFF, ALL_ON], ids=["all_off", "all_on"])
def test_every_model_maps_uint8_images_to_class_probabilities(
    name: str, params: dict[str, Any]
) -> None:
    model = build(name, params)
    assert model.input.dtype == "uint8"
    assert model.output_shape == (None, 10)
    probabilities = keras.ops.convert_to_numpy(model(np.zeros((2, 32, 32, 3), np.uint8)))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_seed_cnn_all_off_is_the_reference_architecture() -> None:
    model = build("seed_cnn", ALL_OFF)
    conv1, conv2, conv3 = 3 * 3 * 3 * 32 + 32, 3 * 3 * 32 * 64 + 64, 3 * 3 * 64 * 64 + 64
    dense64, dense10 = 4 * 4 * 64 * 64 + 64, 64 * 10 + 10
    assert (conv1, conv2, conv3, dense64, dense10) == (896, 18496, 36928, 65600, 650)
    assert model.count_params() == conv1 + conv2 + conv3 + dense64 + dense10 == 122570
    assert [_count(model, t) for t in (keras.layers.Conv2D, keras.layers.Dense)] == [3, 2]


@pytest.mark.parametrize(
    ("name", "convs", "dropouts"), [("seed_cnn", 3, (0, 1)), ("vgg_bn", 6, (4, 4))]
)
def test_switches_add_exactly_their_layers(
    name: str, convs: int, dropouts: tuple[int, int]
) -> None:
    off, on = build(name, ALL_OFF), build(name, ALL_ON)
    assert _count(off, keras.layers.BatchNormalization) == 0
    assert _count(on, keras.layers.BatchNormalization) == convs + 1
    assert (_count(off, keras.layers.Dropout), _count(on, keras.layers.Dropout)) == dropouts
    assert [layer.rate for layer in on.layers if isinstance(layer, keras.layers.Dropout)] == [
        0.3
    ] * dropouts[1]
    assert all(layer.rate == 0.0 for layer in off.layers if isinstance(layer, keras.layers.Dropout))
    assert _count(off, RegularizedDense) == _count(off, NoisyConv2D) == 0
    [dropconnect] = [layer for layer in on.layers if isinstance(layer, RegularizedDense)]
    assert (dropconnect.dropconnect, dropconnect.weight_noise) == (0.4, 0.02)
    noisy = [layer.weight_noise for layer in on.layers if isinstance(layer, NoisyConv2D)]
    assert noisy == [0.02] * convs
    assert all(not layer.use_bias for layer in _kernel_layers(on)[:-1])


def test_one_augmentation_layer_with_every_range_follows_rescaling_then_noise() -> None:
    model = build("seed_cnn", ALL_ON)
    names = [type(layer).__name__ for layer in model.layers[1:4]]
    assert names == ["Rescaling", "RandomAffine", "GaussianNoise"]
    _, augmentation, noise = model.layers[1:4]
    assert (augmentation.flip, augmentation.rotation, augmentation.zoom) == (True, 18.0, 0.15)
    assert (augmentation.height_shift, augmentation.width_shift) == (0.2, 0.1)
    assert noise.stddev == 0.05
    plain = build("seed_cnn", ALL_OFF)
    assert [type(layer).__name__ for layer in plain.layers[1:3]] == ["Rescaling", "Conv2D"]


def _penalty(layers: list[keras.layers.Layer], l1: float, l2: float) -> float:
    kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in layers]
    return sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in kernels)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_layer_group_gets_its_own_penalty_and_the_output_none(name: str) -> None:
    model = build(name, ALL_ON)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    hidden = [
        layer
        for layer in _kernel_layers(model)
        if layer not in convs and layer.name != "predictions"
    ]
    assert len(hidden) == 1 and model.get_layer("predictions").kernel_regularizer is None
    assert len(model.losses) == len(convs) + 1
    expected = _penalty(convs, 1e-5, 1e-3) + _penalty(hidden, 2e-5, 3e-3)
    assert float(keras.ops.sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert not build(name, ALL_OFF).losses


def test_the_baseline_model_is_seed_000s_with_l2_on_dense64_only() -> None:
    model = build("seed_cnn", BASELINE)
    penalized = [
        layer for layer in model.layers if getattr(layer, "kernel_regularizer", None) is not None
    ]
    assert [(type(layer).__name__, layer.units) for layer in penalized] == [("Dense", 64)]
    assert penalized[0].kernel_regularizer.get_config() == pytest.approx({"l1": 0.0, "l2": 1e-3})
    assert [type(layer).__name__ for layer in model.layers[1:]] == [
        "Rescaling",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [layer.activation.__name__ for layer in _kernel_layers(model)] == ["relu"] * 4 + [
        "softmax"
    ]
    assert model.get_layer(index=-2).rate == 0.5 and model.count_params() == 122_570


def test_output_layer_stays_float32_under_mixed_precision(mixed_bfloat16: None) -> None:
    model = build("vgg_bn", ALL_ON)
    assert model.layers[-1].dtype_policy.name == "float32"
    assert _kernel_layers(model)[0].compute_dtype == "bfloat16"
    assert model(np.zeros((1, 32, 32, 3), np.uint8)).dtype == "float32"


def test_every_model_name_the_schema_accepts_has_a_body() -> None:
    assert set(BUILT_INS) == set(MODEL_NAMES)
