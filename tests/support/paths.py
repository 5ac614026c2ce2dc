"""Where the repository and the shared data are, whichever folder a test lives in."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
CIFAR10_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"
