"""What may run code from a user's file, checked on the source itself: only the official CIFAR-10
python batches are unpickled, through an unpickler that admits numpy's globals alone; arrays load
without pickles; YAML loads with a safe loader; nothing evaluates text."""

from __future__ import annotations

import ast
import io
import pickle

import pytest
import yaml

from tests.support.paths import ROOT
from tune.data import sources
from tune.engine import config as space

PACKAGE = ROOT / "tune"
SOURCES = {
    path.relative_to(PACKAGE.parent).as_posix(): ast.parse(path.read_text())
    for path in PACKAGE.rglob("*.py")
}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Calls of ``name`` or of ``anything.name``."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) == name or getattr(node.func, "id", None) == name)
    ]


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_cifar_reader_imports_pickle_and_its_unpickler_admits_numpy_alone() -> None:
    assert [
        path
        for path, tree in SOURCES.items()
        if {"pickle", "dill", "cloudpickle", "joblib"} & imported(tree)
    ] == ["tune/data/sources.py"]
    assert issubclass(sources._ArrayUnpickler, pickle.Unpickler)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load 'os\.system'"):
        sources._ArrayUnpickler(io.BytesIO(b"")).find_class("os", "system")


def test_arrays_load_without_pickles_and_yaml_with_a_safe_loader() -> None:
    for path, tree in SOURCES.items():
        for call in calls(tree, "load"):
            text = ast.unparse(call)
            if text.startswith("np.load"):
                assert "allow_pickle=False" in text, f"{path}: {text}"
            if text.startswith("yaml.load"):
                assert text.endswith("_UniqueKeyLoader)"), f"{path}: {text}"
        assert not calls(tree, "unsafe_load") and not calls(tree, "full_load"), path
    assert issubclass(space._UniqueKeyLoader, yaml.SafeLoader)


def test_nothing_evaluates_text_or_loads_models_unsafely() -> None:
    for path, tree in SOURCES.items():
        assert not calls(tree, "eval") and not calls(tree, "exec"), path
        for call in calls(tree, "load_model"):
            assert "safe_mode=False" not in ast.unparse(call), path
