"""The engine, tracking, reporting and commands must stay importable without TensorFlow: quick
CLI start-up, and tests of search, diagnosis, export and reporting that never pay for (or depend
on) the framework. Only ``tune.training``'s Keras modules may import it. And every import points
down the layers of ``docs/architecture.md``, with no circle anywhere."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGE = ROOT / "tune"
KERAS_SIDE = {
    "tune.training.fit",
    "tune.training.final",
    "tune.training.models",
    "tune.training.layers",
    "tune.training.pipeline",
    "tune.training.trial_server",
    "tune.training.architectures",
    "tune.training.rewrite",
}


def modules() -> list[str]:
    names = [
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
    ]
    return sorted(name.removesuffix(".__init__") for name in names)


def test_the_keras_side_modules_exist() -> None:
    assert KERAS_SIDE < set(modules())


@pytest.mark.integration
def test_every_other_module_imports_without_tensorflow() -> None:
    tf_free = [name for name in modules() if name not in KERAS_SIDE and name != "tune.__main__"]
    assert "tune.training.isolated" in tf_free and "tune.engine.objective" in tf_free
    code = (
        f"import sys\nfor m in {tf_free!r}: __import__(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.integration
def test_the_engine_needs_neither_mlflow_nor_matplotlib() -> None:
    """The search logic stays cheap to import and to test: Optuna, pydantic and numpy only."""
    engine = [name for name in modules() if name.startswith("tune.engine")]
    code = (
        f"import sys\nfor m in {engine!r}: __import__(m)\n"
        "print(sorted(m for m in ('mlflow', 'matplotlib', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# The layers, bottom first: a module may import from its own package and from the layers below,
# never from a layer above or a sibling package of its own layer.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"tune", "tune.contract", "tune.errors", "tune.paths"}),
    frozenset({"tune.runtime"}),
    frozenset({"tune.engine"}),
    frozenset({"tune.data", "tune.training", "tune.tracking", "tune.report"}),
    frozenset({"tune.commands"}),
    frozenset({"tune.cli"}),
    frozenset({"tune.__main__"}),
)


def _home(module: str) -> str:
    """The layer entry a module belongs to: its package, or the module itself at the top level."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _layer(module: str) -> int:
    return next(index for index, homes in enumerate(LAYERS) if _home(module) in homes)


def _imports(path: Path) -> set[str]:
    """Every ``tune`` module a file imports, at any depth (function bodies, ``TYPE_CHECKING``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "tune")
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tune"
        ):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in _MODULES else node.module)
    return found


_MODULES = frozenset(modules())


def import_graph() -> dict[str, set[str]]:
    return {name: _imports(_path(name)) - {name} for name in _MODULES}


def _path(module: str) -> Path:
    relative = Path(*module.split("."))
    package = PACKAGE.parent / relative / "__init__.py"
    return package if package.exists() else (PACKAGE.parent / relative).with_suffix(".py")


def test_every_module_has_a_layer() -> None:
    assert [name for name in _MODULES if not any(_home(name) in homes for homes in LAYERS)] == []


def test_imports_only_point_down() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items() for target in targets
        if _home(target) != _home(module) and _layer(target) >= _layer(module)
    )
    assert upward == []


def test_no_module_imports_itself_back_through_others() -> None:
    graph = import_graph()
    circles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for target in graph.get(node, ()):
                if target == start:
                    circles.append(" -> ".join([*trail, start]))
                elif target not in trail and target > start:
                    stack.append((target, [*trail, target]))
    assert circles == []
