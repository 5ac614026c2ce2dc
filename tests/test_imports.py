"""The engine, tracking, reporting and commands must stay importable without TensorFlow: quick
CLI start-up, and tests of search, diagnosis, export and reporting that never pay for (or depend
on) the framework. Only ``tune.training``'s Keras modules, and the Keras-side peers that
``make bench-peers`` races against tune, may import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tune"
KERAS_SIDE = {
    "tune.training.fit", "tune.training.final", "tune.training.models", "tune.training.layers", "tune.training.pipeline",
    "tune.training.trial_server", "tune.training.architectures", "tune.training.rewrite",
    "tune.bench.peer_arms", "tune.bench.speed_arms",
}


def modules() -> list[str]:
    names = [".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts) for path in PACKAGE.rglob("*.py")]
    return sorted(name.removesuffix(".__init__") for name in names)


def test_the_keras_side_modules_exist() -> None:
    assert KERAS_SIDE < set(modules())


def test_every_other_module_imports_without_tensorflow() -> None:
    tf_free = [name for name in modules() if name not in KERAS_SIDE and name != "tune.__main__"]
    assert "tune.training.isolated" in tf_free and "tune.engine.objective" in tf_free
    code = f"import sys\nfor m in {tf_free!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_engine_needs_neither_mlflow_nor_matplotlib() -> None:
    """The search logic stays cheap to import and to test: Optuna, pydantic and numpy only."""
    engine = [name for name in modules() if name.startswith("tune.engine")]
    code = f"import sys\nfor m in {engine!r}: __import__(m)\nprint(sorted(m for m in ('mlflow', 'matplotlib', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
