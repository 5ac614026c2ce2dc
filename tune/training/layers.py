"""Custom Keras layers: the weight-level regularizers Keras does not ship (DropConnect and Gaussian
weight noise), and augmentation in one resampling. All act in training only, so inference uses
the kernel and the image unchanged."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

if TYPE_CHECKING:
    from tensorflow import Tensor


def _noisy(
    kernel: Tensor | keras.Variable, stddev: float, dtype: str, seed: keras.random.SeedGenerator
) -> Tensor:
    """The kernel plus fresh N(0, stddev^2) noise, drawn once per batch: noise injection on the
    weights (seed 002), beside ``GaussianNoise`` on the inputs."""
    kernel = ops.cast(kernel, dtype)
    return ops.add(
        kernel, keras.random.normal(ops.shape(kernel), stddev=stddev, dtype=dtype, seed=seed)
    )


@keras.saving.register_keras_serializable(package="tune")
class RegularizedDense(keras.layers.Dense):
    """Dense layer with DropConnect and Gaussian weight noise, each off at 0: a ``Dense`` with the
    same config, weights and name otherwise, so it can stand in for any model's hidden Dense.

    DropConnect: in training, each kernel weight is dropped with probability ``dropconnect``.
    Unlike Dropout, which zeroes activations, it zeroes connections. One mask is drawn per batch
    and shared by all its samples: a per-sample mask would need a kernel copy per sample (batch x
    in x out memory), too costly on CPU for this project's budget. Kept weights are scaled by
    ``1 / (1 - dropconnect)`` so inference can use the full kernel unchanged. Weight noise, if on,
    is added before the mask, so a dropped connection stays dropped.
    """

    def __init__(
        self,
        units: int,
        dropconnect: float = 0.0,
        weight_noise: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(units, **kwargs)
        if not 0.0 <= dropconnect < 1.0:
            raise ValueError(f"RegularizedDense dropconnect must be in [0, 1), got {dropconnect}")
        self.dropconnect = dropconnect
        self.weight_noise = weight_noise
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if not training or (self.weight_noise <= 0.0 and self.dropconnect <= 0.0):
            return super().call(inputs)
        kernel = self.kernel
        if self.weight_noise > 0.0:
            kernel = _noisy(kernel, self.weight_noise, self.compute_dtype, self.seed_generator)
        if self.dropconnect > 0.0:
            kernel = keras.random.dropout(kernel, self.dropconnect, seed=self.seed_generator)
        outputs = ops.matmul(inputs, kernel)
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self) -> dict[str, object]:
        return {
            **super().get_config(),
            "dropconnect": self.dropconnect,
            "weight_noise": self.weight_noise,
            "seed": self.seed,
        }


class _NoisyConv:
    """A convolution whose kernel gets fresh Gaussian noise (``weight_noise`` stddev) at every
    training step. Keras's ``call`` of Conv1D/2D/3D takes no ``training`` argument, so ``call``
    notes the mode for ``convolution_op``, which Keras calls with the kernel while the step is
    traced."""

    def __init__(
        self, *args: Any, weight_noise: float = 0.0, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.weight_noise = weight_noise
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._in_training = False

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        self._in_training = bool(training)
        return super().call(inputs)  # type: ignore[misc]

    def convolution_op(self, inputs: Tensor, kernel: Tensor | keras.Variable) -> Tensor:
        if self._in_training and self.weight_noise > 0.0:
            kernel = _noisy(kernel, self.weight_noise, self.compute_dtype, self.seed_generator)  # type: ignore[attr-defined]
        return super().convolution_op(inputs, kernel)  # type: ignore[misc]

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "weight_noise": self.weight_noise, "seed": self.seed}  # type: ignore[misc]


@keras.saving.register_keras_serializable(package="tune")
class NoisyConv1D(_NoisyConv, keras.layers.Conv1D):
    pass


@keras.saving.register_keras_serializable(package="tune")
class NoisyConv2D(_NoisyConv, keras.layers.Conv2D):
    pass


@keras.saving.register_keras_serializable(package="tune")
class NoisyConv3D(_NoisyConv, keras.layers.Conv3D):
    pass


# The convolutions weight noise reaches, each with its noisy twin; depthwise, separable and
# transposed convolutions are left as they are.
NOISY_CONVS: dict[type, type] = {
    keras.layers.Conv1D: NoisyConv1D,
    keras.layers.Conv2D: NoisyConv2D,
    keras.layers.Conv3D: NoisyConv3D,
}


@keras.saving.register_keras_serializable(package="tune")
class RandomAffine(keras.layers.Layer):
    """Flip, rotation, shift and zoom drawn per image and applied as ONE bilinear resampling.

    Keras's RandomFlip, RandomRotation, RandomTranslation and RandomZoom each resample the whole
    batch, and on a CPU those passes cost about as much as the seed CNN's own training step
    (measured on 2 cores, a batch of 256: flip, rotation and translation layers 32 ms, this layer
    15 ms); composing them into one matrix per image resamples once. The ranges
    mean what they mean in those layers: angles uniform in ``±rotation`` degrees, shifts in
    ``±shift`` of the size, zoom in ``1 ± zoom``, reflected edges. A flip alone is a reversal, no
    resampling. Training only: inference sees the image unchanged.
    """

    def __init__(
        self,
        flip: bool = False,
        rotation: float = 0.0,
        width_shift: float = 0.0,
        height_shift: float = 0.0,
        zoom: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.flip, self.rotation, self.zoom = bool(flip), float(rotation), float(zoom)
        self.width_shift, self.height_shift = float(width_shift), float(height_shift)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _resamples(self) -> bool:
        return any((self.rotation, self.width_shift, self.height_shift, self.zoom))

    def _uniform(self, count: int | Tensor, bound: float) -> Tensor:
        return keras.random.uniform(
            (count,), -bound, bound, dtype="float32", seed=self.seed_generator
        )

    def _mirrors(self, count: int | Tensor) -> Tensor:
        """-1 for the images to flip (half of them), +1 for the rest."""
        if not self.flip:
            return ops.ones((count,), dtype="float32")
        coin = keras.random.uniform((count,), dtype="float32", seed=self.seed_generator)
        return ops.where(coin < 0.5, -1.0, 1.0)

    def _transforms(self, count: int | Tensor, height: Tensor, width: Tensor) -> Tensor:
        """Per image, the 8 projective coefficients that map an output pixel to the input pixel
        it samples: centre, mirror and zoom, rotate, shift, un-centre."""
        angle = self._uniform(count, self.rotation * math.pi / 180.0)
        scale = 1.0 + self._uniform(count, self.zoom)
        shift_x, shift_y = (
            self._uniform(count, self.width_shift) * width,
            self._uniform(count, self.height_shift) * height,
        )
        cos, sin = ops.cos(angle), ops.sin(angle)
        scale_x = scale * self._mirrors(count)
        a0, a1, b0, b1 = cos * scale_x, -sin * scale, sin * scale_x, cos * scale
        centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
        b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
        zeros = ops.zeros_like(angle)
        return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if not training:
            return inputs
        count = ops.shape(inputs)[0]
        if not self._resamples():
            flips = ops.reshape(ops.cast(self._mirrors(count) < 0, inputs.dtype), (-1, 1, 1, 1))
            # a blend is faster than ``where`` on CPU
            return flips * ops.flip(inputs, axis=2) + (1.0 - flips) * inputs
        height, width = (
            ops.cast(ops.shape(inputs)[1], "float32"),
            ops.cast(ops.shape(inputs)[2], "float32"),
        )
        transforms = self._transforms(count, height, width)
        return ops.image.affine_transform(
            inputs, transforms, interpolation="bilinear", fill_mode="reflect"
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, object]:
        return {
            **super().get_config(),
            "flip": self.flip,
            "rotation": self.rotation,
            "width_shift": self.width_shift,
            "height_shift": self.height_shift,
            "zoom": self.zoom,
            "seed": self.seed,
        }
