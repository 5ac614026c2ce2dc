"""``synthetic`` and ``synthetic:N``: a generated CIFAR-shaped dataset for tests and offline
demos."""

from __future__ import annotations

import numpy as np

from tune.data.splits import Dataset
from tune.errors import DataError

SYNTHETIC_SEED = 0
SYNTHETIC_DEFAULT_SIZE = 3000


def is_synthetic(source: str) -> bool:
    return source == "synthetic" or source.startswith("synthetic:")


def load_synthetic(source: str) -> Dataset:
    return _generate(_size(source))


def _size(source: str) -> int:
    if source == "synthetic":
        return SYNTHETIC_DEFAULT_SIZE
    size = source.removeprefix("synthetic:")
    if not size.isdigit() or int(size) < 10:
        raise DataError(
            f"data source '{source}': 'synthetic:N' needs N, the number of training images, "
            "as a whole number of at least 10"
        )
    return int(size)


def _generate(n_train: int) -> Dataset:
    """A CIFAR-shaped task that is learnable yet overfittable, for runs without real data.

    Each class is a grating with a class-specific orientation (5 values) and frequency (2 values)
    under a jittered Gaussian window; colour, a second random grating and pixel noise carry no
    label information, so a model must learn spatial structure and can memorise the rest.
    """
    n = n_train + n_train // 5
    rng = np.random.default_rng(SYNTHETIC_SEED)
    labels = rng.permutation(np.arange(n) % 10)
    theta = (labels % 5) * np.pi / 5 + rng.normal(0, 0.12, n)
    freq = np.where(labels < 5, 0.12, 0.22) * rng.uniform(0.85, 1.15, n)
    signal = _gratings(rng, theta, freq, spread=6, width=(5, 9))
    clutter = _gratings(rng, rng.uniform(0, np.pi, n), rng.uniform(0.08, 0.3, n), 14, (3, 6))
    x = _colourise(rng, signal, clutter)
    y = labels.astype(np.int64)
    names = tuple(f"class_{i}" for i in range(10))
    source = f"synthetic (seed {SYNTHETIC_SEED}, {n_train} training images)"
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], names, source)


def _gratings(
    rng: np.random.Generator,
    theta: np.ndarray,
    freq: np.ndarray,
    spread: float,
    width: tuple[float, float],
) -> np.ndarray:
    """Windowed sinusoids, float32 and broadcast per image so 3,000 images take well under 1 s."""
    n = len(theta)

    def per_image(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float32)[:, None, None]

    grid = np.arange(32, dtype=np.float32) - 15.5
    xx, yy = grid[None, None, :], grid[None, :, None]
    t, f = per_image(theta), per_image(freq)
    phase = per_image(rng.uniform(0, 2 * np.pi, n))
    wave = np.sin((xx * np.cos(t) + yy * np.sin(t)) * (2 * np.pi) * f + phase)
    cx, cy = per_image(rng.uniform(-spread, spread, n)), per_image(rng.uniform(-spread, spread, n))
    sigma = per_image(rng.uniform(*width, n))
    return wave * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))


def _colourise(rng: np.random.Generator, signal: np.ndarray, clutter: np.ndarray) -> np.ndarray:
    """Channel by channel, reusing one noise buffer: fresh large arrays cost more than the maths."""
    n = len(signal)
    colours = rng.uniform(0.3, 1.0, (3, n, 1, 1, 3)).astype(np.float32)
    background, signal_colour, clutter_colour = colours
    x = np.empty((n, 32, 32, 3), np.uint8)
    noise = np.empty((n, 32, 32), np.float32)
    for c in range(3):
        rng.standard_normal(out=noise, dtype=np.float32)
        channel = 0.2 + 0.6 * background[..., c] + 0.13 * noise
        channel += 0.35 * (signal * signal_colour[..., c] + clutter * clutter_colour[..., c])
        x[..., c] = np.clip(channel * 255 + 0.5, 0, 255)
    return x
