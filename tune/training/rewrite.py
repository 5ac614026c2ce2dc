"""The one place a model gets its regularization: any Sequential or functional Keras model (nested
models included), a built-in or the user's, is cloned with the searched knobs applied.

Per knob: ``l1_conv``/``l2_conv`` on every convolution kernel (depthwise and pointwise kernels
too), ``l1_dense``/``l2_dense`` on every Dense kernel but the output layer's, never on biases or
normalization layers; ``dropout`` sets the rate of the model's Dropout layers, or adds one before
the output layer if it has none; ``dropconnect`` and ``weight_noise`` swap layers for tune's with
the same config, weights and name; ``batch_norm`` adds BatchNormalization after every convolution
and hidden Dense (before its activation) of a model without any; ``batch_norm_momentum`` sets the
momentum of every BatchNormalization layer. Augmentation and input noise run in a front end
before the model. A knob absent from the parameters leaves the model as it is.

Penalties are set in each layer's config before the clone is built, so they enter the loss: a
regularizer assigned to an already-built layer never does (keras #8413, tensorflow #33635).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import keras
from keras.src.models.functional import Functional

from tune.contract import LayerRow, ModelFacts, Params, Scalar
from tune.errors import ModelError
from tune.training.layers import NOISY_CONVS, RandomAffine, RegularizedDense

if TYPE_CHECKING:
    # A layer's activation as its config holds it: a Keras name, or a custom one's config.
    Activation: TypeAlias = str | dict[str, object] | None

L = keras.layers
CONVS: tuple[type, ...] = (
    L.Conv1D,
    L.Conv2D,
    L.Conv3D,
    L.Conv1DTranspose,
    L.Conv2DTranspose,
    L.Conv3DTranspose,
    L.SeparableConv1D,
    L.SeparableConv2D,
    L.DepthwiseConv1D,
    L.DepthwiseConv2D,
)
# Every kernel a convolution or Dense layer may have; biases and normalization never get a penalty.
KERNEL_PENALTIES = ("kernel_regularizer", "depthwise_regularizer", "pointwise_regularizer")
# SpatialDropout is a Dropout.
DROPOUTS: tuple[type, ...] = (L.Dropout, L.GaussianDropout, L.AlphaDropout)
RESCALERS: tuple[type, ...] = (L.Rescaling, L.Normalization)
# The hyperparameters that ``RandomAffine`` takes, by the same names.
AUGMENTATIONS = ("flip", "rotation", "width_shift", "height_shift", "zoom")
CONV, HIDDEN, OUTPUT, AFTER_OUTPUT, DROPOUT, BATCH_NORM, OTHER = (
    "conv",
    "hidden dense",
    "output",
    "after output",
    "dropout",
    "batch norm",
    "",
)
_KNOBS = {
    CONV: "l1_conv, l2_conv, weight_noise",
    HIDDEN: "l1_dense, l2_dense, dropconnect, weight_noise",
    OUTPUT: "none (output layer)",
    DROPOUT: "dropout",
    BATCH_NORM: "batch_norm_momentum",
}


def leaves(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.layers.Layer]]:
    """Every layer that is not itself a model, with its path through nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _check_rewritable(layer)
            yield from leaves(layer, f"{prefix}{layer.name}/")
        elif not isinstance(layer, L.InputLayer):
            yield f"{prefix}{layer.name}", layer


def _check_rewritable(model: keras.Model) -> None:
    if not isinstance(model, (keras.Sequential, Functional)):
        raise ModelError(
            f"{type(model).__name__} {model.name!r} is a subclassed model, whose layers tune "
            "cannot rewrite: give a Sequential model or a functional one (keras.Model(inputs, "
            "outputs)), nested models allowed"
        )


def _roles(model: keras.Model) -> dict[int, str]:
    """Each leaf layer's part, by ``id``: the output layer is the last convolution or Dense, and
    everything after it (its softmax) stays in float32 with it."""
    layers = [layer for _, layer in leaves(model)]
    kernels = [i for i, layer in enumerate(layers) if isinstance(layer, (*CONVS, L.Dense))]
    if not kernels:
        raise ModelError("it has no convolution or Dense layer to tune")
    last = kernels[-1]
    roles = {}
    for i, layer in enumerate(layers):
        if i == last:
            roles[id(layer)] = OUTPUT
        elif i > last:
            roles[id(layer)] = AFTER_OUTPUT
        elif isinstance(layer, CONVS):
            roles[id(layer)] = CONV
        elif isinstance(layer, L.Dense):
            roles[id(layer)] = HIDDEN
        elif isinstance(layer, DROPOUTS):
            roles[id(layer)] = DROPOUT
        elif isinstance(layer, L.BatchNormalization):
            roles[id(layer)] = BATCH_NORM
        else:
            roles[id(layer)] = OTHER
    return roles


def _penalty(regularizer: keras.regularizers.Regularizer | None) -> tuple[float, float] | None:
    """(l1, l2) of a Keras L1/L2/L1L2 regularizer, (0, 0) for none, None for any other kind."""
    if regularizer is None:
        return 0.0, 0.0
    if isinstance(regularizer, keras.regularizers.L1L2):
        return float(regularizer.l1), float(regularizer.l2)
    if isinstance(regularizer, keras.regularizers.L1):
        return float(regularizer.l1), 0.0
    if isinstance(regularizer, keras.regularizers.L2):
        return 0.0, float(regularizer.l2)
    return None


def _penalties(layer: keras.layers.Layer) -> list[keras.regularizers.Regularizer | None]:
    return [getattr(layer, attr) for attr in KERNEL_PENALTIES if hasattr(layer, attr)]


def _agreed(values: list[Scalar | None], default: Scalar | None) -> Scalar | None:
    """The value every layer of a group shares (``default`` for an empty group), else None."""
    distinct = set(values)
    if not distinct:
        return default
    return distinct.pop() if len(distinct) == 1 and None not in distinct else None


def _own_values(
    layers: list[tuple[str, keras.layers.Layer]], roles: dict[int, str]
) -> dict[str, Scalar]:
    """The model's own value of each knob it carries, where its layers agree on one."""

    def group(role: str) -> list[keras.layers.Layer]:
        return [layer for _, layer in layers if roles[id(layer)] == role]

    own: dict[str, Scalar | None] = {}
    for role, suffix in ((CONV, "conv"), (HIDDEN, "dense")):
        pairs = [_penalty(reg) for layer in group(role) for reg in _penalties(layer)]
        own[f"l1_{suffix}"] = _agreed([p and p[0] for p in pairs], 0.0)
        own[f"l2_{suffix}"] = _agreed([p and p[1] for p in pairs], 0.0)
    own["dropout"] = _agreed([float(layer.rate) for layer in group(DROPOUT)], 0.0)
    norms = group(BATCH_NORM)
    own["batch_norm"] = False if not norms else None
    own["batch_norm_momentum"] = _agreed([float(layer.momentum) for layer in norms], None)
    return {name: value for name, value in own.items() if value is not None}


def _describe_own(layer: keras.layers.Layer, role: str) -> str:
    if role in (CONV, HIDDEN, OUTPUT):
        penalties = [_penalty(reg) for reg in _penalties(layer)]
        if any(p is None for p in penalties):
            return "custom regularizer"
        words = [f"L1 {p[0]:g}" for p in penalties if p and p[0]] + [
            f"L2 {p[1]:g}" for p in penalties if p and p[1]
        ]
        return ", ".join(dict.fromkeys(words)) or "none"
    if role == DROPOUT:
        return f"rate {layer.rate:g}"
    if role == BATCH_NORM:
        return f"momentum {layer.momentum:g}"
    return ""


def _output_kind(layers: list[tuple[str, keras.layers.Layer]], roles: dict[int, str]) -> bool:
    """True for logits: an output layer with a linear activation and no softmax after it."""
    after = [layer for _, layer in layers if roles[id(layer)] == AFTER_OUTPUT]
    output = next(layer for _, layer in layers if roles[id(layer)] == OUTPUT)
    activations = [getattr(output, "activation", None)] + [
        layer.activation for layer in after if isinstance(layer, L.Activation)
    ]
    names = [getattr(a, "__name__", str(a)) for a in activations if a is not None]
    if any(isinstance(layer, L.Softmax) for layer in after) or "softmax" in names:
        return False
    others = [name for name in names if name != "linear"]
    if others:
        raise ModelError(
            f"its output activation is {others[-1]}: end the model with softmax, or with a linear "
            "layer (logits)"
        )
    return True


def inspect(
    model: keras.Model, input_shape: tuple[int, ...], num_classes: int, input_scale: str
) -> ModelFacts:
    """What the knobs can reach in ``model``, checked against the data it will see."""
    _check_rewritable(model)
    _check_shapes(model, input_shape, num_classes)
    layers = list(leaves(model))
    roles = _roles(model)
    count = {
        role: sum(roles[id(layer)] == role for _, layer in layers)
        for role in (CONV, HIDDEN, DROPOUT, BATCH_NORM)
    }
    first = layers[0][1]
    rows = tuple(
        LayerRow(
            path,
            type(layer).__name__,
            _KNOBS.get(roles[id(layer)], ""),
            _describe_own(layer, roles[id(layer)]),
        )
        for path, layer in layers
    )
    return ModelFacts(
        name=model.name,
        parameters=int(model.count_params()),
        input_shape=tuple(model.input_shape[1:]),
        outputs=num_classes,
        logits=_output_kind(layers, roles),
        raw_inputs=input_scale == "raw" or (input_scale == "auto" and isinstance(first, RESCALERS)),
        convs=count[CONV],
        hidden_dense=count[HIDDEN],
        dropouts=count[DROPOUT],
        batch_norms=count[BATCH_NORM],
        noisy_convs=sum(
            type(layer) in NOISY_CONVS for _, layer in layers if roles[id(layer)] == CONV
        ),
        own=_own_values(layers, roles),
        layers=rows,
    )


def _check_shapes(model: keras.Model, input_shape: tuple[int, ...], num_classes: int) -> None:
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"it has {len(inputs)} inputs and {len(outputs)} outputs; tune needs one image input "
            "and one output"
        )
    expected = tuple(model.input_shape[1:])
    if len(expected) != len(input_shape) or any(
        e is not None and e != d for e, d in zip(expected, input_shape)
    ):
        raise ModelError(
            f"its input shape {expected} does not fit the data's images {tuple(input_shape)}"
        )
    if tuple(model.output_shape[1:]) != (num_classes,):
        raise ModelError(
            f"its output shape {tuple(model.output_shape[1:])} does not match the data's "
            f"{num_classes} classes"
        )


class _Rewriter:
    """Clones one model with the knobs in ``params``; the clone's layers keep their names."""

    def __init__(self, model: keras.Model, params: Params, facts: ModelFacts) -> None:
        self.params, self.facts = params, facts
        self.roles = _roles(model)
        self.add_dropout = facts.dropouts == 0 and float(params.get("dropout", 0.0)) > 0
        self.add_norm = bool(params.get("batch_norm", False)) and facts.batch_norms == 0
        self.policy = keras.mixed_precision.global_policy().name
        self.clone_roles: dict[int, str] = {}
        self.activations: dict[int, Activation] = {}
        self.originals: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def graph(self, model: keras.Model) -> keras.Model:
        """A Sequential model becomes functional, so layers can be added between its layers."""
        if isinstance(model, keras.Sequential):
            model = keras.Model(model.inputs, model.outputs, name=model.name)
        return keras.models.clone_model(model, clone_function=self.clone, call_function=self.call)

    def clone(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, keras.Model):
            return self.graph(layer)
        role = self.roles[id(layer)]
        config = layer.get_config()
        # 0-255 values lose digits in bfloat16
        full = role in (OUTPUT, AFTER_OUTPUT) or isinstance(layer, RESCALERS)
        config["dtype"] = "float32" if full else self.policy
        activation = config.get("activation")
        cls = type(layer)
        if role in (CONV, HIDDEN):
            cls = self._kernel_layer(layer, role, config)
        elif role == DROPOUT and "dropout" in self.params and "rate" in config:
            config["rate"] = float(self.params["dropout"])
        elif role == BATCH_NORM and "batch_norm_momentum" in self.params:
            config["momentum"] = float(self.params["batch_norm_momentum"])
        clone = cls.from_config(config)
        self.clone_roles[id(clone)] = role
        self.activations[id(clone)] = activation
        self.originals.append((clone, layer))
        return clone

    def _kernel_layer(
        self, layer: keras.layers.Layer, role: str, config: dict[str, object]
    ) -> type:
        suffix = "conv" if role == CONV else "dense"
        for attr in KERNEL_PENALTIES:
            if attr in config:
                config[attr] = self._penalty(getattr(layer, attr), suffix)
        if self.add_norm:
            config.update(activation="linear", use_bias=False)
        noise = float(self.params.get("weight_noise", 0.0))
        if role == HIDDEN:
            dropconnect = float(self.params.get("dropconnect", 0.0))
            if dropconnect > 0 or noise > 0:
                config.update(dropconnect=dropconnect, weight_noise=noise)
                return RegularizedDense
        elif noise > 0 and type(layer) in NOISY_CONVS:
            config["weight_noise"] = noise
            return NOISY_CONVS[type(layer)]
        return type(layer)

    def _penalty(
        self, regularizer: keras.regularizers.Regularizer | None, suffix: str
    ) -> keras.regularizers.Regularizer | None:
        """A knob given replaces its half of the layer's penalty; one left out keeps the model's."""
        l1_name, l2_name = f"l1_{suffix}", f"l2_{suffix}"
        if l1_name not in self.params and l2_name not in self.params:
            return regularizer
        own = _penalty(regularizer) or (0.0, 0.0)
        l1 = float(self.params.get(l1_name, own[0]))
        l2 = float(self.params.get(l2_name, own[1]))
        return keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None

    def call(self, layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> keras.KerasTensor:
        role = self.clone_roles.get(id(layer))
        if role == OUTPUT and self.add_dropout:
            args = (
                L.Dropout(float(self.params["dropout"]), name=f"{layer.name}_dropout")(args[0]),
                *args[1:],
            )
        outputs = layer(*args, **kwargs)
        if role in (CONV, HIDDEN) and self.add_norm:
            momentum = float(self.params.get("batch_norm_momentum", 0.99))
            outputs = L.BatchNormalization(momentum=momentum, name=f"{layer.name}_bn")(outputs)
            outputs = _activation(self.activations[id(layer)], f"{layer.name}_activation")(outputs)
        return outputs


def _activation(activation: Activation, name: str) -> keras.layers.Layer:
    return (
        L.ReLU(name=name)
        if activation == "relu"
        else L.Activation(activation or "linear", name=name)
    )


def _front_end(inputs: keras.KerasTensor, params: Params, raw: bool) -> keras.KerasTensor:
    """Scale, augment and add noise in float32 under any policy: these layers do little math, so
    full precision for interpolated pixels and small noise is nearly free; the model's first layer
    casts to the compute dtype. Input noise is in [0, 1] units whatever the scale."""
    x = L.Rescaling(1.0 if raw else 1.0 / 255.0, dtype="float32", name="tune_scale")(inputs)
    augmentation = {name: params.get(name, 0) for name in AUGMENTATIONS}
    if any(augmentation.values()):
        # Scalars to mypy; the knobs' domains make them a bool and floats, as RandomAffine takes.
        x = RandomAffine(**augmentation, dtype="float32", name="tune_augmentation")(x)  # type: ignore[arg-type]
    noise = float(params.get("input_noise", 0.0))
    if noise > 0:
        x = L.GaussianNoise(
            noise * (255.0 if raw else 1.0), dtype="float32", name="tune_input_noise"
        )(x)
    return x


def regularize(
    model: keras.Model, params: Params, facts: ModelFacts, *, keep_weights: bool = False
) -> keras.Model:
    """``model`` with the knobs of ``params`` applied, taking uint8 images, so tf.data never
    materializes floats; freshly initialized unless ``keep_weights``. Layers take the global
    dtype policy, the output layer and what follows it float32."""
    rewriter = _Rewriter(model, params, facts)
    body = rewriter.graph(model)
    inputs = keras.Input(shape=tuple(facts.input_shape), dtype="uint8", name="image")
    outputs = body._run_through_graph(
        [_front_end(inputs, params, facts.raw_inputs)], operation_fn=lambda op: op
    )
    rewritten = keras.Model(inputs, keras.tree.flatten(outputs)[0], name=model.name)
    if keep_weights:
        _copy_weights(rewriter.originals)
    return rewritten


def _copy_weights(pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]]) -> None:
    """Each variable of a clone from its original's variable of the same name (a kernel stays a
    kernel; a bias dropped for batch norm has no place to go)."""
    for clone, original in pairs:
        saved = {variable.name: variable for variable in original.weights}
        for variable in clone.weights:
            if variable.name in saved and tuple(saved[variable.name].shape) == tuple(
                variable.shape
            ):
                variable.assign(keras.ops.cast(saved[variable.name], variable.dtype))
