"""Custom Keras layers for the weight-level regularizers Keras does not ship: DropConnect and
Gaussian weight noise. Both perturb the kernel in training only, so inference uses it unchanged."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _noisy(kernel: Any, stddev: float, dtype: str, seed: keras.random.SeedGenerator) -> Any:
    """The kernel plus fresh N(0, stddev^2) noise, drawn once per batch: noise injection on the
    weights (seed 002), beside ``GaussianNoise`` on the inputs."""
    kernel = ops.cast(kernel, dtype)
    return ops.add(kernel, keras.random.normal(ops.shape(kernel), stddev=stddev, dtype=dtype, seed=seed))


@keras.saving.register_keras_serializable(package="tune")
class RegularizedDense(keras.layers.Layer):
    """Dense layer with DropConnect and Gaussian weight noise, each off at 0.

    DropConnect: in training, each kernel weight is dropped with probability ``dropconnect``.
    Unlike Dropout, which zeroes activations, it zeroes connections. One mask is drawn per batch and
    shared by all its samples: a per-sample mask would need a kernel copy per sample (batch x in x out
    memory), too costly on CPU for this project's budget. Kept weights are scaled by
    ``1 / (1 - dropconnect)`` so inference can use the full kernel unchanged. Weight noise, if on, is
    added before the mask, so a dropped connection stays dropped.
    """

    def __init__(
        self,
        units: int,
        dropconnect: float = 0.0,
        weight_noise: float = 0.0,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= dropconnect < 1.0:
            raise ValueError(f"RegularizedDense dropconnect must be in [0, 1), got {dropconnect}")
        self.units = units
        self.dropconnect = dropconnect
        self.weight_noise = weight_noise
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)
            if self.use_bias
            else None
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        kernel = self.kernel
        if training and self.weight_noise > 0.0:
            kernel = _noisy(kernel, self.weight_noise, self.compute_dtype, self.seed_generator)
        if training and self.dropconnect > 0.0:
            kernel = keras.random.dropout(kernel, self.dropconnect, seed=self.seed_generator)
        outputs = ops.matmul(inputs, kernel)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "dropconnect": self.dropconnect,
            "weight_noise": self.weight_noise,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="tune")
class NoisyConv2D(keras.layers.Conv2D):
    """Conv2D whose kernel gets fresh Gaussian noise (``weight_noise`` stddev) at every training
    step. Keras's ``Conv2D.call`` takes no ``training`` argument, so ``call`` notes the mode for
    ``convolution_op``, which Keras calls with the kernel while the step is traced."""

    def __init__(self, *args: Any, weight_noise: float = 0.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_noise = weight_noise
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._in_training = False

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        self._in_training = bool(training)
        return super().call(inputs)

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        if self._in_training and self.weight_noise > 0.0:
            kernel = _noisy(kernel, self.weight_noise, self.compute_dtype, self.seed_generator)
        return super().convolution_op(inputs, kernel)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight_noise": self.weight_noise, "seed": self.seed}
