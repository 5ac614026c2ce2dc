"""The rewrite on models tune did not write: seed 000's CNN saved as a file, a Sequential model, a
functional model with a nested sub-model, a keras.applications network and a logits model. Each
penalty is proven in the loss, not in a layer attribute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from tune.contract import (
    BUILTIN,
    DATA_LOSS,
    FILE,
    KEEP_WEIGHTS,
    VAL_DATA_LOSS,
    VAL_LOSS,
    ModelSource,
    Splits,
)
from tune.engine.config import BASELINE, DEFAULTS, default_train_settings
from tune.errors import ModelError
from tune.training.fit import fit_model
from tune.training.layers import NoisyConv2D, RegularizedDense
from tune.training.models import build_model, describe
from tune.training.rewrite import CONVS, leaves

pytestmark = pytest.mark.integration

SHAPE, CLASSES = (32, 32, 3), 10
L = keras.layers


def seed_000_model() -> keras.Model:
    """Seed 000's tutorial CNN as a user writes it: its own L2 1e-3 on Dense64 and Dropout 0.5."""
    return keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Conv2D(32, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(64, (3, 3), activation="relu"),
            L.Flatten(),
            L.Dense(
                64, activation="relu", kernel_regularizer=keras.regularizers.l2(0.001), name="dense"
            ),
            L.Dropout(0.5, name="dropout"),
            L.Dense(10, activation="softmax", name="predictions"),
        ]
    )


def nested_model() -> keras.Model:
    """A functional model whose convolutions sit in a nested Sequential block."""
    block = keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Conv2D(8, 3, activation="relu", name="block_conv"),
            L.SpatialDropout2D(0.1, name="block_drop"),
            L.Conv2D(8, 3, activation="relu", name="conv"),
        ],
        name="block",
    )
    inputs = keras.Input(SHAPE, name="pixels")
    x = L.GlobalAveragePooling2D()(block(inputs))
    x = L.Dense(16, activation="relu", name="hidden")(x)
    return keras.Model(
        inputs, L.Dense(CLASSES, activation="softmax", name="head")(x), name="nested"
    )


def saved(model: keras.Model, path: Path) -> ModelSource:
    model.save(path)
    return ModelSource(FILE, str(path))


def build(source: ModelSource, params: dict[str, Any]) -> keras.Model:
    return build_model(source, params, SHAPE, CLASSES)[0]


def _signature(model: keras.Model) -> list[tuple]:
    """Each layer as type, size, activation, penalty and rate: what computes, not what it is
    named."""
    rows = []
    for _, layer in leaves(model):
        penalty = getattr(layer, "kernel_regularizer", None)
        rows.append((type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None)),
                     getattr(getattr(layer, "activation", None), "__name__", None),
                     penalty and penalty.get_config(), getattr(layer, "rate", None)))
    return rows


def test_seed_000_as_a_file_rewrites_to_the_built_in_layer_for_layer(tmp_path: Path) -> None:
    source = saved(seed_000_model(), tmp_path / "seed_000.keras")
    facts = describe(source, SHAPE, CLASSES)
    assert (
        facts.own["l2_dense"] == pytest.approx(1e-3)
        and facts.own["dropout"] == 0.5
        and facts.own["l2_conv"] == 0
    )
    assert (facts.parameters, facts.convs, facts.hidden_dense, facts.dropouts, facts.logits) == (
        122_570,
        3,
        1,
        1,
        False,
    )
    params = {**BASELINE, "l2_conv": 1e-4, "dropout": 0.3}
    from_file, built_in = build(source, params), build(ModelSource(BUILTIN, "seed_cnn"), params)
    assert _signature(from_file) == _signature(built_in)
    assert from_file.count_params() == built_in.count_params() == 122_570


def test_a_knob_left_out_keeps_the_models_own_and_a_given_one_replaces_it(tmp_path: Path) -> None:
    original = seed_000_model()
    source = saved(original, tmp_path / "seed_000.keras")
    as_given = build(source, {})
    dense = as_given.get_layer("dense")
    assert dense.kernel_regularizer.get_config()["l2"] == pytest.approx(1e-3)
    assert as_given.get_layer("dropout").rate == 0.5
    replaced = build(source, {"l2_dense": 5e-3, "l1_dense": 1e-5, "dropout": 0.2})
    assert replaced.get_layer("dense").kernel_regularizer.get_config() == pytest.approx(
        {"l1": 1e-5, "l2": 5e-3}
    )
    assert replaced.get_layer("dropout").rate == 0.2
    assert [layer.name for layer in replaced.layers[2:]] == [
        layer.name for layer in original.layers
    ], "names kept"


def test_the_penalty_of_a_users_model_enters_the_loss(tmp_path: Path) -> None:
    """val_loss - val_data_loss is the penalty of the kept weights: the regularizer acts."""
    source = saved(seed_000_model(), tmp_path / "seed_000.keras")
    rng = np.random.default_rng(0)
    splits = Splits(
        rng.integers(0, 255, (64, *SHAPE), dtype=np.uint8),
        np.arange(64) % 10,
        rng.integers(0, 255, (32, *SHAPE), dtype=np.uint8),
        np.arange(32) % 10,
        tuple("abcdefghij"),
    )
    params = {**DEFAULTS, "l2_conv": 1e-2, "l2_dense": 3e-2, "dropout": 0.0}
    del params["batch_norm"], params["batch_norm_momentum"]
    model, result = fit_model(
        params,
        splits,
        default_train_settings(source, 1, seed=0, clean_train_size=16, precision="float32"),
        lambda epoch, logs: None,
    )
    kernels = [
        keras.ops.convert_to_numpy(layer.kernel)
        for layer in model.layers
        if isinstance(layer, (L.Conv2D, L.Dense))
    ]
    expected = (
        1e-2 * sum(np.square(k).sum() for k in kernels[:3]) + 3e-2 * np.square(kernels[3]).sum()
    )
    measured = result.history[VAL_LOSS][0] - result.history[VAL_DATA_LOSS][0]
    assert measured == pytest.approx(expected, rel=1e-3)


def test_a_sequential_model_gets_dropconnect_noise_and_batch_norm_with_its_names(
    tmp_path: Path,
) -> None:
    model = keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Conv2D(8, 3, activation="relu", name="c1"),
            L.Flatten(name="f"),
            L.Dense(16, activation="tanh", name="d1"),
            L.Dense(CLASSES, activation="softmax", name="out"),
        ]
    )
    source = saved(model, tmp_path / "seq.keras")
    rewritten = build(
        source,
        {"dropconnect": 0.25, "weight_noise": 0.01, "batch_norm": True, "batch_norm_momentum": 0.9},
    )
    names = [layer.name for layer in rewritten.layers]
    assert names == [
        "image",
        "tune_scale",
        "c1",
        "c1_bn",
        "c1_activation",
        "f",
        "d1",
        "d1_bn",
        "d1_activation",
        "out",
    ]
    assert (
        isinstance(rewritten.get_layer("c1"), NoisyConv2D)
        and not rewritten.get_layer("c1").use_bias
    )
    d1 = rewritten.get_layer("d1")
    assert isinstance(d1, RegularizedDense) and (d1.dropconnect, d1.weight_noise) == (0.25, 0.01)
    assert rewritten.get_layer("d1_activation").activation.__name__ == "tanh"
    assert (
        rewritten.get_layer("d1_bn").momentum == 0.9 and type(rewritten.get_layer("out")) is L.Dense
    )


def test_a_nested_sub_model_is_rewritten_inside(tmp_path: Path) -> None:
    source = saved(nested_model(), tmp_path / "nested.keras")
    facts = describe(source, SHAPE, CLASSES)
    assert (facts.convs, facts.hidden_dense, facts.dropouts) == (2, 1, 1)
    assert [row.name for row in facts.layers][:3] == [
        "block/block_conv",
        "block/block_drop",
        "block/conv",
    ]
    rewritten = build(source, {"l2_conv": 1e-3, "l2_dense": 1e-4, "dropout": 0.4})
    block = rewritten.get_layer("block")
    assert block.get_layer("block_drop").rate == 0.4
    assert all(layer.kernel_regularizer.get_config()["l2"] == pytest.approx(1e-3)
               for layer in block.layers if isinstance(layer, L.Conv2D))
    assert rewritten.get_layer("head").kernel_regularizer is None
    assert len(rewritten.losses) == 3


def test_keras_applications_gets_every_conv_kernel_and_not_the_head() -> None:
    network = keras.applications.MobileNetV2(
        input_shape=SHAPE, weights=None, classes=CLASSES, alpha=0.35
    )
    convs = [layer for _, layer in leaves(network) if isinstance(layer, CONVS)]
    from tune.training.rewrite import inspect, regularize

    facts = inspect(network, SHAPE, CLASSES, "auto")
    assert facts.convs == len(convs) and facts.hidden_dense == 0 and facts.batch_norms > 30
    assert facts.own["batch_norm_momentum"] == 0.999
    rewritten = regularize(network, {"l2_conv": 1e-4, "batch_norm_momentum": 0.9}, facts)
    assert len(rewritten.losses) == len(convs), (
        "one penalty per conv kernel, none on the classifier"
    )
    assert rewritten.get_layer("predictions").kernel_regularizer is None
    assert {
        layer.momentum for layer in rewritten.layers if isinstance(layer, L.BatchNormalization)
    } == {0.9}


def test_a_logits_model_is_trained_from_logits(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Rescaling(1 / 255),
            L.Conv2D(4, 3, activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(CLASSES),
        ]
    )
    source = saved(model, tmp_path / "logits.keras")
    facts = describe(source, SHAPE, CLASSES)
    assert facts.logits and facts.raw_inputs, "its own Rescaling: fed raw 0-255 values"
    assert build(source, {}).get_layer("tune_scale").scale == 1.0
    rng = np.random.default_rng(1)
    splits = Splits(
        rng.integers(0, 255, (32, *SHAPE), dtype=np.uint8),
        np.arange(32) % 10,
        rng.integers(0, 255, (16, *SHAPE), dtype=np.uint8),
        np.arange(16) % 10,
        tuple("abcdefghij"),
    )
    trained, result = fit_model(
        {**DEFAULTS, "batch_size": 16},
        splits,
        default_train_settings(source, 1, seed=0, clean_train_size=8, precision="float32"),
        lambda e, logs: None,
    )
    logits = keras.ops.convert_to_numpy(trained(splits.x_val))
    expected = float(
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)(splits.y_val, logits)
    )
    assert result.history[VAL_DATA_LOSS][0] == pytest.approx(expected, rel=1e-4)
    assert trained.loss.get_config()["from_logits"] and DATA_LOSS in result.history


def test_kept_weights_are_the_files(tmp_path: Path) -> None:
    original = seed_000_model()
    source = ModelSource(FILE, str(tmp_path / "trained.keras"), weights=KEEP_WEIGHTS)
    original.save(source.ref)
    kept = build(source, {"l2_conv": 1e-3})
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kept.get_layer("dense").kernel),
                                  keras.ops.convert_to_numpy(original.get_layer("dense").kernel))
    fresh = build(ModelSource(FILE, source.ref), {})
    assert not np.array_equal(keras.ops.convert_to_numpy(fresh.get_layer("dense").kernel),
                              keras.ops.convert_to_numpy(original.get_layer("dense").kernel))


class _Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.flat, self.out = L.Flatten(), L.Dense(CLASSES, activation="softmax")

    def call(self, inputs: Any) -> Any:  # noqa: ANN401 - whatever tensor type the backend passes
        return self.out(self.flat(inputs))


def test_a_subclassed_model_is_refused_with_the_forms_that_work(tmp_path: Path) -> None:
    builder = tmp_path / "sub.py"
    builder.write_text(
        "from tests.training.test_rewrite import _Subclassed\n\n"
        "def build(shape, classes):\n"
        "    m = _Subclassed()\n    m.build((None, *shape))\n    return m\n"
    )
    with pytest.raises(ModelError, match=r"subclassed model.*Sequential model or a functional one"):
        describe(ModelSource("builder", f"{builder}:build"), SHAPE, CLASSES)
