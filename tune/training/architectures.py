"""tune's built-in CNNs, as plain architectures: no penalty, no dropout rate, no batch norm. They
take the same path as a user's model (``tune.training.rewrite`` applies every searched knob), so
they are examples and baselines, not special cases."""

from __future__ import annotations

from collections.abc import Callable

import keras

from tune.contract import SEED_CNN, VGG_BN

Builder = Callable[[tuple[int, ...], int], keras.Model]


def seed_cnn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Seed 000's CNN, layer for layer (122,570 parameters on CIFAR-10); its L2 1e-3 on Dense64 and
    Dropout 0.5 are the baseline trial's knobs, so a study can start from the known recipe."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name=SEED_CNN,
    )


def vgg_bn(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A VGG-style net with enough capacity to overfit CIFAR-10, so regularization matters: a
    Dropout after each block and in the head (rate 0 until searched).

    Flatten rather than global average pooling keeps the head large, which is where DropConnect
    and weight decay have something to act on.
    """
    layers = keras.layers
    model = keras.Sequential([keras.Input(input_shape)], name="vgg_bn")
    for filters in (32, 64, 128):
        model.add(layers.Conv2D(filters, 3, padding="same", activation="relu"))
        model.add(layers.Conv2D(filters, 3, padding="same", activation="relu"))
        model.add(layers.MaxPooling2D())
        model.add(layers.Dropout(0.0))
    for layer in (
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.0),
        layers.Dense(num_classes, activation="softmax", name="predictions"),
    ):
        model.add(layer)
    return model


BUILT_INS: dict[str, Builder] = {SEED_CNN: seed_cnn, VGG_BN: vgg_bn}
