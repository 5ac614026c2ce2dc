"""Helpers shared by ``tests/`` and ``benchmarks/tests/``, as ``optuna.testing`` is for Optuna:
imported as ``from tests.support.<module> import ...``; fixtures live in ``fixtures.py`` and reach
the tests through the conftest files."""
