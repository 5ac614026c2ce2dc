"""Image-classification data as uint8 numpy arrays, from wherever the user keeps it: Keras's
CIFAR-10 download, an image folder or its tarball, the official CIFAR-10 python release, an .npz,
or ``synthetic``.

Tuning runs many short trainings on one machine, often offline, so every file source is decoded
once into plain arrays (``tune.data.cache``) and TensorFlow is never needed to read data; only
the ``cifar10`` source asks Keras, because that is where Keras keeps its download.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import tarfile
import threading
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast

import numpy as np
from PIL import Image

from tune.data.cache import cache_file, fingerprint, read_cache, write_cache
from tune.data.splits import ARRAYS, Dataset
from tune.data.synthetic import is_synthetic, load_synthetic
from tune.errors import DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_ACCEPTED = (
    "expected 'cifar10', 'synthetic' or 'synthetic:N', an image-folder directory or .tar.gz "
    "(train/<class>/*, test/<class>/*), the official cifar-10-python.tar.gz or its "
    "cifar-10-batches-py/ folder, or an .npz with x_train, y_train, x_test, y_test"
)
_OFFLINE = (
    "data source 'cifar10': Keras has no cached copy and {host} cannot be reached to download "
    "it; use an offline source instead: an image-folder directory or .tar.gz "
    "(e.g. ../shared/data/cifar10-jpeg.tar.gz), the official cifar-10-python.tar.gz or its "
    "cifar-10-batches-py/ folder, an .npz with x_train, y_train, x_test, y_test, or 'synthetic'"
)
_CIFAR10_HOST = ("www.cs.toronto.edu", 443)
_PROBE_SECONDS = 5.0  # long enough for a slow network, short enough to fail fast offline
_KERAS_CIFAR10_ARCHIVE = "datasets/cifar-10-batches-py-target_archive"
_SPLITS = ("train", "test")
_CIFAR_BATCHES = frozenset(
    {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
)
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


def load_dataset(source: str) -> Dataset:
    """Accept every form users already have CIFAR-like data in, so offline machines can tune too."""
    if source == "cifar10":
        return _load_keras_cifar10()
    if is_synthetic(source):
        return load_synthetic(source)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"data source '{source}': no such file or directory ({path.absolute()}); {_ACCEPTED}"
        )
    cache = cache_file(path)
    stamp = fingerprint(path, _dir_names(path) if path.is_dir() else [], source)
    cached = read_cache(cache, stamp)
    if cached is not None:
        return cached
    dataset = _decode_file_source(path, source)
    write_cache(cache, stamp, dataset)
    return dataset


def _load_keras_cifar10() -> Dataset:
    """Probe before asking Keras, whose download would otherwise hang or fail obscurely offline."""
    if not _keras_cifar10_cached() and not _reachable(*_CIFAR10_HOST):
        raise DataError(_OFFLINE.format(host=_CIFAR10_HOST[0]))
    from keras.datasets import cifar10

    try:
        (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    except Exception as exc:  # Keras reports failed downloads as a bare Exception.
        raise DataError(f"data source 'cifar10': Keras could not load CIFAR-10: {exc}") from exc
    return Dataset(
        x_train, _labels(y_train), x_test, _labels(y_test), CIFAR10_CLASSES, "keras CIFAR-10"
    )


def _keras_cifar10_cached() -> bool:
    """Where keras 3 ``get_file`` keeps the archive: $KERAS_HOME, ~/.keras, or its /tmp fallback."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return any((base / _KERAS_CIFAR10_ARCHIVE).exists() for base in (home, Path("/tmp/.keras")))


def _reachable(host: str, port: int) -> bool:
    """Probe in a daemon thread: the socket timeout does not bound a DNS lookup that hangs."""
    timeout = _PROBE_SECONDS
    answers: list[bool] = []
    probe = threading.Thread(
        target=lambda: answers.append(_connects(host, port, timeout)), daemon=True
    )
    probe.start()
    probe.join(timeout)
    return answers == [True]


def _connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _describe(kind: str, source: str) -> str:
    return f"{kind} {Path(source).expanduser().absolute()}"


def _labels(y: ArrayLike) -> np.ndarray:
    return np.asarray(y).reshape(-1).astype(np.int64)


def _decode_file_source(path: Path, source: str) -> Dataset:
    if path.is_file() and path.suffix == ".npz":
        return _read_npz(path, source)
    files = _read_tree(path, source)
    if any(PurePosixPath(name).name == "data_batch_1" for name in files):
        return _cifar_python(files, source)
    return _image_folder(files, source)


def _read_tree(path: Path, source: str) -> dict[str, bytes]:
    """The contents of the files a layout could use, keyed by posix path inside the source."""
    if path.is_dir():
        return _read_dir(path, source)
    if path.is_file() and tarfile.is_tarfile(path):
        return _read_tar(path, source)
    raise DataError(f"data source '{source}': not a directory, tar archive or .npz; {_ACCEPTED}")


def _wanted(name: str) -> bool:
    """Image-folder members (optionally one folder down) and CIFAR batches; never hidden files."""
    parts = name.split("/")
    if any(not part or part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    in_layout = len(parts) in (3, 4) and parts[-3] in _SPLITS
    return parts[-1] in _CIFAR_BATCHES or in_layout


def _dir_names(root: Path) -> list[str]:
    """Files at most four levels down: deep enough for every layout, bounded on a wrong path."""
    names: list[str] = []
    for folder, subfolders, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts
        if len(parts) == 3:
            subfolders.clear()
        names += ("/".join((*parts, file)) for file in files)
    return sorted(name for name in names if _wanted(name))


def _read_dir(root: Path, source: str) -> dict[str, bytes]:
    try:
        return {name: (root / name).read_bytes() for name in _dir_names(root)}
    except OSError as exc:
        raise DataError(f"data source '{source}': cannot read {exc.filename}: {exc}") from exc


def _read_tar(path: Path, source: str) -> dict[str, bytes]:
    """One streaming pass and no extraction: gzip cannot seek, and the disk space is not ours."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                _check_member(member, name, source)
                if member.isfile() and _wanted(name):
                    # a regular file always has its content
                    files[name] = cast(IO[bytes], tar.extractfile(member)).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"data source '{source}': cannot read the archive: {exc}") from exc
    return files


def _check_member(member: tarfile.TarInfo, name: str, source: str) -> None:
    """Nothing is extracted, but an archive with links or paths leaving it was not made by a
    dataset tool, so it is refused rather than half-read."""
    if member.issym() or member.islnk():
        raise DataError(
            f"data source '{source}': archive member '{name}' is a link (to '{member.linkname}'); "
            "archives with links are refused"
        )
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        raise DataError(
            f"data source '{source}': archive member '{name}' points outside the archive; refused"
        )


def _image_folder(files: Mapping[str, bytes], source: str) -> Dataset:
    layout = _layout(files, source)
    class_names = tuple(sorted(layout["train"]))
    if tuple(sorted(layout["test"])) != class_names:
        raise DataError(
            f"data source '{source}': test/ classes {sorted(layout['test'])} differ from "
            f"train/ classes {list(class_names)}"
        )
    x_train, y_train = _decode_split(files, layout["train"], class_names, source)
    x_test, y_test = _decode_split(files, layout["test"], class_names, source)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"data source '{source}': train images are {x_train.shape[1:3]} but test images are "
            f"{x_test.shape[1:3]}; all images must be the same size"
        )
    return Dataset(x_train, y_train, x_test, y_test, class_names, _describe("image folder", source))


def _layout(files: Mapping[str, bytes], source: str) -> dict[str, dict[str, list[str]]]:
    """split -> class -> sorted member names, checking everything sits under one top folder."""
    layout: dict[str, dict[str, list[str]]] = {split: defaultdict(list) for split in _SPLITS}
    tops: set[tuple[str, ...]] = set()
    for name in sorted(files):
        parts = PurePosixPath(name).parts
        if _is_image_name(parts[-1]):
            layout[parts[-3]][parts[-2]].append(name)
            tops.add(parts[:-3])
    for split in _SPLITS:
        if not layout[split]:
            raise DataError(
                f"data source '{source}': no '{split}/' folder with class sub-folders of images "
                f"found; {_ACCEPTED}"
            )
    if len(tops) > 1:
        folders = sorted("/".join(top) + "/" if top else "./" for top in tops)
        raise DataError(f"data source '{source}': images under several top folders {folders}")
    return layout


def _is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in Image.registered_extensions()


def _decode_split(
    files: Mapping[str, bytes],
    classes: Mapping[str, list[str]],
    class_names: tuple[str, ...],
    source: str,
) -> tuple[np.ndarray, np.ndarray]:
    chosen = [(name, i) for i, cls in enumerate(class_names) for name in classes[cls]]
    images = [_decode_image(files[name], name, source) for name, _ in chosen]
    labels = np.array([label for _, label in chosen], dtype=np.int64)
    return _stack(images, [name for name, _ in chosen], source), labels


def _decode_image(data: bytes, name: str, source: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"data source '{source}': cannot decode image '{name}': {exc}") from exc


def _stack(images: list[np.ndarray], names: list[str], source: str) -> np.ndarray:
    for image, name in zip(images, names):
        if image.shape != images[0].shape:
            raise DataError(
                f"data source '{source}': image '{name}' is {image.shape[:2]} but '{names[0]}' is "
                f"{images[0].shape[:2]}; all images must be the same size"
            )
    return np.stack(images)


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allowing only numpy globals keeps a bad file from running code."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}'")


def _unpickle(files: Mapping[str, bytes], batch: str, source: str) -> dict[bytes, object]:
    member = next((name for name in files if PurePosixPath(name).name == batch), None)
    if member is None:
        raise DataError(f"data source '{source}': CIFAR batches found but '{batch}' is missing")
    try:
        content = _ArrayUnpickler(io.BytesIO(files[member]), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(
            f"data source '{source}': cannot read CIFAR batch '{member}': {exc}"
        ) from exc
    if not isinstance(content, dict):
        raise DataError(f"data source '{source}': CIFAR batch '{member}' is not a dict")
    return content


def _field(content: dict[bytes, object], key: bytes, batch: str, source: str) -> object:
    if key not in content:
        raise DataError(f"data source '{source}': CIFAR batch '{batch}' has no {key.decode()!r}")
    return content[key]


def _cifar_batches(
    files: Mapping[str, bytes], batches: list[str], source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rows are 3072 bytes in channel-major order: reshape to CHW, then move channels last."""
    x_parts, y_parts = [], []
    for batch in batches:
        content = _unpickle(files, batch, source)
        rows = np.asarray(_field(content, b"data", batch, source), np.uint8)
        if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
            raise DataError(
                f"data source '{source}': CIFAR batch '{batch}' holds data of shape {rows.shape}; "
                "expected rows of 3072 bytes"
            )
        x_parts.append(rows.reshape(-1, 3, 32, 32))
        y_parts.append(_labels(cast("ArrayLike", _field(content, b"labels", batch, source))))
    return np.concatenate(x_parts).transpose(0, 2, 3, 1), np.concatenate(y_parts)


def _cifar_python(files: Mapping[str, bytes], source: str) -> Dataset:
    x_train, y_train = _cifar_batches(files, [f"data_batch_{i}" for i in range(1, 6)], source)
    x_test, y_test = _cifar_batches(files, ["test_batch"], source)
    meta = _unpickle(files, "batches.meta", source)
    labels = cast(list[bytes], _field(meta, b"label_names", "batches.meta", source))
    names = tuple(name.decode() for name in labels)
    description = _describe("CIFAR-10 python batches", source)
    return Dataset(x_train, y_train, x_test, y_test, names, description)


def _read_npz(path: Path, source: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in ARRAYS if key not in npz.files]
            if missing:
                raise DataError(
                    f"data source '{source}': .npz lacks {', '.join(missing)}; "
                    f"needs {', '.join(ARRAYS)}"
                )
            arrays = {key: npz[key] for key in ARRAYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"data source '{source}': cannot read the .npz: {exc}") from exc
    for split in _SPLITS:
        _check_npz_split(arrays[f"x_{split}"], arrays[f"y_{split}"], split, source)
    y_train, y_test = _labels(arrays["y_train"]), _labels(arrays["y_test"])
    names = tuple(str(i) for i in range(_class_count(y_train, y_test, source)))
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    return Dataset(x_train, y_train, x_test, y_test, names, _describe("npz", source))


def _class_count(y_train: np.ndarray, y_test: np.ndarray, source: str) -> int:
    """Labels are class indices 0..K-1, each with training images: a stray large label would
    otherwise build a model with thousands of empty classes (or hang listing 2**40 of them)."""
    present = np.unique(y_train)
    count = len(present)
    if present[-1] != count - 1:
        missing = np.setdiff1d(np.arange(min(int(present[-1]), count + 10)), present)[:5].tolist()
        raise DataError(
            f"data source '{source}': y_train labels must be class indices 0..K-1 with images for "
            f"every class; it has {count} distinct labels but the largest is {int(present[-1])} "
            f"(no images for {missing}...)"
        )
    if y_test.max() >= count:
        raise DataError(
            f"data source '{source}': y_test has label {int(y_test.max())}, but y_train has only "
            f"classes 0..{count - 1}"
        )
    return count


def _check_npz_split(x: np.ndarray, y: np.ndarray, split: str, source: str) -> None:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise DataError(
            f"data source '{source}': 'x_{split}' is {x.dtype} of shape {x.shape}; "
            "expected uint8 of shape (N, height, width, 3) with N > 0"
        )
    if y.dtype.kind not in "iu" or y.shape not in ((len(x),), (len(x), 1)) or y.min() < 0:
        raise DataError(
            f"data source '{source}': 'y_{split}' is {y.dtype} of shape {y.shape}; expected "
            f"{len(x)} non-negative integer labels, shape (N,) or (N, 1)"
        )
