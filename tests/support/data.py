"""Small data sources written to disk: image folders, their tarballs and ``.npz`` files."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"ant": (255, 0, 0), "bee": (0, 255, 0), "cow": (0, 0, 255)}


def write_image_folder(root: Path, per_class: int = 4, size: int = 8) -> Path:
    """Each image a flat colour of its class, brightness by index, so pixels identify the file."""
    for split in ("train", "test"):
        for name, colour in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixel = tuple(c // (i + 1) for c in colour)
                Image.new("RGB", (size, size), pixel).save(root / split / name / f"{i}.png")
    return root


def tar_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(folder / split, arcname=f"{prefix}{split}")
    return archive


def write_npz(path: Path, **overrides: np.ndarray) -> Path:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8),
        "y_train": np.array([[0], [1], [2], [3], [0], [1]], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8),
        "y_test": np.array([3, 0]),
    }
    np.savez(path, **{**arrays, **overrides})
    return path
