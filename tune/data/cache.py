"""Decoded datasets cached on disk, so a file source is decoded once, not once per run.

One ``.npz`` per source path, outside the project, where users expect caches; it is valid while
the size and mtime of every input file are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

from tune.data.splits import ARRAYS, Dataset
from tune.errors import DataError

_CACHE_FORMAT = 1
_log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Decoded datasets are large, so they live outside the project, where users expect caches."""
    configured = os.environ.get("TUNE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tune"


def cache_file(path: Path) -> Path:
    """One file per source path, so an edited source replaces its cache instead of adding one."""
    path = path.absolute()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return default_cache_dir() / "datasets" / f"{path.name}-{digest}.npz"


def fingerprint(path: Path, names: list[str], source: str) -> str:
    """Size and mtime of every input file: cheap to take, and changes whenever the data does."""
    try:
        stats = [os.stat(path), *(os.stat(os.path.join(path, name)) for name in names)]
    except OSError as exc:
        raise DataError(f"data source '{source}': cannot read {exc.filename}: {exc}") from exc
    summary = [(name, s.st_size, s.st_mtime_ns) for name, s in zip(["", *names], stats)]
    return hashlib.sha256(json.dumps([_CACHE_FORMAT, summary]).encode()).hexdigest()


def read_cache(file: Path, stamp: str) -> Dataset | None:
    """A stale or unreadable cache is just a miss: the source is decoded and the cache rewritten."""
    try:
        with np.load(file, allow_pickle=False) as npz:
            if str(npz["fingerprint"]) != stamp:
                return None
            arrays = {key: npz[key] for key in (*ARRAYS, "class_names", "source")}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        _log.warning("ignoring unreadable dataset cache %s: %s", file, exc)
        return None
    names = tuple(str(name) for name in arrays.pop("class_names"))
    source = str(arrays.pop("source"))
    return Dataset(**arrays, class_names=names, source=source)


def write_cache(file: Path, stamp: str, dataset: Dataset) -> None:
    """Atomic (temp file + rename) so a crash or a parallel writer never leaves a torn cache."""
    arrays = {key: getattr(dataset, key) for key in ARRAYS}
    arrays.update(class_names=np.array(dataset.class_names), source=np.array(dataset.source))
    temp = file.with_name(f"{file.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with temp.open("wb") as out:
            np.savez(out, **arrays, fingerprint=stamp)
        os.replace(temp, file)
    except OSError as exc:
        _log.warning("could not write dataset cache %s: %s", file, exc)
    finally:
        temp.unlink(missing_ok=True)
