"""The fixtures of tests/ that the benchmarks' tests use, so that ``pytest benchmarks/tests`` runs
alone."""

from __future__ import annotations

from tests.support.fixtures import cores_shared_among_workers, stores

__all__ = ["cores_shared_among_workers", "stores"]
