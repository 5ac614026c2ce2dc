"""Search spaces for tests: the real ``quick.yaml`` shrunk to seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT


def tiny_space(**sections: dict[str, Any]) -> dict[str, Any]:
    """The real quick.yaml shrunk to seconds: synthetic data, a few epochs, small sets, and no
    warm-start trial, so a study's trials are the baseline's and the sampler's, as tests script
    them."""
    space = yaml.safe_load((ROOT / "search_spaces" / "quick.yaml").read_text())
    space["data"].update(
        source="synthetic:600", validation_size=200, clean_train_size=200, train_subset=None
    )
    space["training"].update(epochs=3, batch_size=64)
    space["study"].update(trials=4, warm_start=False)
    for section, values in sections.items():
        space.setdefault(section, {}).update(values)
    return space


def write_space(path: Path, space: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path
