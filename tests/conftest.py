"""Fixtures for every test under tests/; the helpers they share are in tests/support/."""

from __future__ import annotations

from tests.support.fixtures import cores_shared_among_workers, stores

__all__ = ["cores_shared_among_workers", "stores"]
