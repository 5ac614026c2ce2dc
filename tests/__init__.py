"""The test suite, in folders that mirror the package's layers (docs/architecture.md); shared
helpers in ``tests.support``, fixtures in the conftest files."""
