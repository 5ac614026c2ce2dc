"""Every model a trial trains, from its source: a built-in architecture, a saved ``.keras`` file or
the user's builder function, checked, then given the trial's regularization
(``tune.training.rewrite``). Nothing is unpickled: files load in Keras's safe mode, and a builder
is the user's own code, run as such."""

from __future__ import annotations

import importlib
import importlib.util
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import keras

from tune.contract import BUILTIN, FILE, KEEP_WEIGHTS, ModelFacts, ModelSource, Params
from tune.engine.model_source import builder_parts, cwd_importable, is_path
from tune.errors import ModelError
from tune.training.architectures import BUILT_INS
from tune.training.rewrite import inspect, regularize

_LAMBDA_HELP = (
    "it has a Lambda layer, which runs arbitrary code, so Keras's safe mode refuses to load it; "
    "write a builder function instead (model: {builder: 'my_models.py:build'}) that returns the "
    "model"
)


def load_architecture(
    source: ModelSource, input_shape: tuple[int, ...], num_classes: int
) -> keras.Model:
    """The plain model as its source defines it; every problem names the source."""
    if source.kind == BUILTIN:
        return BUILT_INS[source.ref](input_shape, num_classes)
    if source.kind == FILE:
        return _load_file(Path(source.ref))
    return _build(source.ref, input_shape, num_classes)


def _load_file(path: Path) -> keras.Model:
    if not path.is_file():
        raise ModelError(f"model file {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"model file {path}: not a Keras archive (.keras, as model.save('my_net.keras') writes)"
        )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    # Keras raises ValueError, TypeError or its own kinds for a bad archive
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        problem = (
            _LAMBDA_HELP
            if "Lambda" in text and "safe_mode" in text
            else f"cannot load it: {_first_line(text)}"
        )
        raise ModelError(f"model file {path}: {problem}") from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"model file {path}: holds a {type(model).__name__}, not a keras.Model")
    return model


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no reason given")


def _builder_function(ref: str) -> Callable[..., object]:
    target, name = builder_parts(ref)
    try:
        with cwd_importable():
            module = _import_path(target) if is_path(target) else importlib.import_module(target)
    except ModelError:
        raise
    # the user's module failed to import: their error, named
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"builder {ref!r}: importing {target} failed: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ModelError(f"builder {ref!r}: {target} has no function {name!r}")
    return function


def _import_path(target: str) -> ModuleType:
    path = Path(target)
    if not path.is_file():
        raise ModelError(f"builder file {target}: no such file")
    spec = importlib.util.spec_from_file_location(f"tune_builder_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ModelError(f"builder file {target}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(ref: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    function = _builder_function(ref)
    try:
        model = function(tuple(input_shape), num_classes)
    except Exception as exc:  # noqa: BLE001 (the user's code raised: say where)
        raise ModelError(f"builder {ref!r} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"builder {ref!r} returned {type(model).__name__}, not a keras.Model")
    return model


def _inspected(
    model: keras.Model, source: ModelSource, input_shape: tuple[int, ...], num_classes: int
) -> ModelFacts:
    try:
        return inspect(model, input_shape, num_classes, source.input_scale)
    except ModelError as exc:
        raise ModelError(f"model {source.describe()}: {exc}") from None


def describe(source: ModelSource, input_shape: tuple[int, ...], num_classes: int) -> ModelFacts:
    """What the knobs can reach in the source's model, before any trial: every problem names it."""
    return _inspected(
        load_architecture(source, input_shape, num_classes), source, input_shape, num_classes
    )


def build_model(
    source: ModelSource, params: Params, input_shape: tuple[int, ...], num_classes: int
) -> tuple[keras.Model, ModelFacts]:
    """The trial's model, uncompiled, taking uint8 images; freshly initialized unless the source
    keeps its saved weights."""
    model = load_architecture(source, input_shape, num_classes)
    facts = _inspected(model, source, input_shape, num_classes)
    return regularize(model, params, facts, keep_weights=source.weights == KEEP_WEIGHTS), facts
