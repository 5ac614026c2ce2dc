"""The CNNs ``tune`` searches over, each with every regularizer switchable from a plain mapping.

Regularizer strengths of zero leave the corresponding layer out, so an "all off" model is the plain
reference architecture and its parameter count and speed are not affected by unused switches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from tune.contract import Params
from tune.training.layers import NoisyConv2D, RandomAffine, RegularizedDense

Tensor = Any
# The hyperparameters that ``RandomAffine`` takes, by the same names.
AUGMENTATIONS = ("flip", "rotation", "width_shift", "height_shift", "zoom")


def build_model(
    name: str, params: Params, input_shape: tuple[int, ...], num_classes: int
) -> keras.Model:
    """Build an uncompiled model taking uint8 images, so tf.data never materializes floats.
    ``name`` is one of ``tune.contract.MODEL_NAMES``, which the search-space schema checks."""
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    features = _BODIES[name](_preprocess(inputs, params), params)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(features)
    return keras.Model(inputs, outputs, name=name)


def _preprocess(inputs: Tensor, params: Params) -> Tensor:
    """Rescale, augment and add noise in float32 under any policy: these layers do little math,
    so full precision for interpolated pixels and small noise is nearly free; the first conv
    casts to the compute dtype."""
    x = keras.layers.Rescaling(1.0 / 255.0, dtype="float32")(inputs)
    augmentation = {name: params[name] for name in AUGMENTATIONS}
    if any(augmentation.values()):
        x = RandomAffine(**augmentation, dtype="float32", name="augmentation")(x)
    if params["input_noise"] > 0:
        x = keras.layers.GaussianNoise(params["input_noise"], dtype="float32")(x)
    return x


def _seed_cnn(x: Tensor, params: Params) -> Tensor:
    """The project's seed-000 reference CNN, so that a study can start from a known baseline."""
    x = _conv_unit(x, 32, params, padding="valid")
    x = keras.layers.MaxPooling2D()(x)
    x = _conv_unit(x, 64, params, padding="valid")
    x = keras.layers.MaxPooling2D()(x)
    x = _conv_unit(x, 64, params, padding="valid")
    x = keras.layers.Flatten()(x)
    return _dense_head(x, 64, params)


def _vgg_bn(x: Tensor, params: Params) -> Tensor:
    """A VGG-style net with enough capacity to overfit CIFAR-10, so regularization matters.

    Flatten rather than global average pooling keeps the head large, which is where DropConnect
    and weight decay have something to act on.
    """
    for filters in (32, 64, 128):
        x = _conv_unit(x, filters, params, padding="same")
        x = _conv_unit(x, filters, params, padding="same")
        x = keras.layers.MaxPooling2D()(x)
        x = _dropout(x, params)
    x = keras.layers.Flatten()(x)
    return _dense_head(x, 128, params)


def _conv_unit(x: Tensor, filters: int, params: Params, *, padding: str) -> Tensor:
    """Conv 3x3, then BN (if on) and ReLU; the conv has no bias under BN, whose beta replaces it.
    A plain Conv2D unless weight noise is on, so an all-off model is the reference architecture."""
    options = {"padding": padding, "use_bias": not params["batch_norm"], "kernel_regularizer": _kernel_regularizer(params, "conv")}
    noise = float(params["weight_noise"])
    conv = NoisyConv2D(filters, 3, weight_noise=noise, **options) if noise > 0 else keras.layers.Conv2D(filters, 3, **options)
    return _normalize_and_activate(conv(x), params)


def _dense_head(x: Tensor, units: int, params: Params) -> Tensor:
    """Hidden dense layer, BN (if on), ReLU, then Dropout."""
    x = _hidden_dense(units, params)(x)
    return _dropout(_normalize_and_activate(x, params), params)


def _hidden_dense(units: int, params: Params) -> keras.layers.Layer:
    options = {"use_bias": not params["batch_norm"], "kernel_regularizer": _kernel_regularizer(params, "dense")}
    dropconnect, noise = float(params["dropconnect"]), float(params["weight_noise"])
    if dropconnect > 0 or noise > 0:
        return RegularizedDense(units, dropconnect=dropconnect, weight_noise=noise, **options)
    return keras.layers.Dense(units, **options)


def _normalize_and_activate(x: Tensor, params: Params) -> Tensor:
    if params["batch_norm"]:
        x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def _dropout(x: Tensor, params: Params) -> Tensor:
    return keras.layers.Dropout(params["dropout"])(x) if params["dropout"] > 0 else x


def _kernel_regularizer(params: Params, group: str) -> keras.regularizers.Regularizer | None:
    """The L1/L2 penalty of one layer group (``conv`` or ``dense``), on kernels only: decaying
    biases or BN parameters would only hurt fit. The softmax output is left unpenalized, as in
    seed 000, whose only penalty is L2 on its Dense64 kernel."""
    l1, l2 = float(params[f"l1_{group}"]), float(params[f"l2_{group}"])
    return keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None


_BODIES: dict[str, Callable[[Tensor, Params], Tensor]] = {
    "seed_cnn": _seed_cnn,
    "vgg_bn": _vgg_bn,
}
