"""Where a user's model comes from, without loading it: the path of a ``.keras`` file, the module
or file of a builder, and the hash that pins either, so a study, an export and a retrain all
rebuild exactly one model. TensorFlow-free: the study process checks these before any trial."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tune.contract import BUILTIN, FILE, ModelFacts, ModelSource
from tune.engine.config import SearchSpace
from tune.errors import ModelError

_CHUNK = 1 << 20


def builder_parts(ref: str) -> tuple[str, str]:
    """``module.path:function`` or ``path/to/file.py:function``, split at the last colon so a
    Windows drive letter stays with the path."""
    target, _, function = ref.rpartition(":")
    if not target or not function.isidentifier():
        raise ModelError(
            f"builder {ref!r}: expected 'module:function' or 'path/to/file.py:function'"
        )
    return target, function


def is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def source_file(source: ModelSource) -> Path | None:
    """The file whose bytes define the model: the ``.keras`` archive, or the builder's source file
    (a builder module is found as Python would import it, from the current directory first)."""
    if source.kind == BUILTIN:
        return None
    if source.kind == FILE:
        path = Path(source.ref)
        if not path.is_file():
            raise ModelError(
                f"model file {source.ref}: no such file (relative paths are from {Path.cwd()})"
            )
        return path
    target, _ = builder_parts(source.ref)
    if is_path(target):
        path = Path(target)
        if not path.is_file():
            raise ModelError(
                f"builder {source.ref!r}: no such file {target} (relative paths are from "
                f"{Path.cwd()})"
            )
        return path
    return _module_file(source.ref, target)


def _module_file(ref: str, module: str) -> Path:
    with cwd_importable():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            raise ModelError(f"builder {ref!r}: cannot find module {module!r}: {exc}") from None
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        raise ModelError(
            f"builder {ref!r}: no module named {module!r} (looked in {Path.cwd()} and the Python "
            "path)"
        )
    return Path(spec.origin)


@contextmanager
def cwd_importable() -> Iterator[None]:
    """A builder module in the current directory imports as it would under ``python -m``."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def fingerprint(source: ModelSource) -> str | None:
    """SHA-256 of the file that defines the model; None for a built-in, which tune's version
    pins."""
    path = source_file(source)
    if path is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_unchanged(source: ModelSource, pinned_by: str) -> str | None:
    """The model's hash now, after checking it against the one ``pinned_by`` (a study, an export)
    recorded: a retrain of a changed model would not be the model that was tuned."""
    digest = fingerprint(source)
    if source.sha256 is not None and digest != source.sha256:
        what = "model file" if source.kind == FILE else "builder source file"
        raise ModelError(
            f"{what} {source_file(source)} changed since {pinned_by} (sha256 "
            f"{source.sha256[:12]}..., now {digest[:12] if digest else None}...): restore it, or "
            "tune the changed model as a new study"
        )
    return digest


def pin(space: SearchSpace, pinned_by: str) -> SearchSpace:
    """The space with its model's hash, checked first against the hash it already carries."""
    source = space.model.source()
    digest = check_unchanged(source, pinned_by)
    return (
        space if digest is None or source.sha256 else space.with_overrides(model={"sha256": digest})
    )


def layer_table(facts: ModelFacts) -> str:
    """The model's layers as Markdown: what a reviewer reads to see what was tuned."""
    rows = [f"| {row.name} | {row.kind} | {row.knobs} | {row.own} |" for row in facts.layers]
    head = [
        f"{facts.name}: {facts.parameters:,} parameters, input {facts.input_shape}, "
        f"{facts.outputs} outputs ({'logits' if facts.logits else 'probabilities'}), fed "
        f"{'raw 0-255 values' if facts.raw_inputs else 'floats in [0, 1]'}",
        "",
        "| layer | type | knobs acting on it | its own regularization |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(head + rows) + "\n"
