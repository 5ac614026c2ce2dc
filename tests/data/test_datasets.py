from __future__ import annotations

import pickle
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.data import tar_folder, write_image_folder, write_npz
from tests.support.paths import CIFAR10_JPEG
from tune.data import cache, sources
from tune.data.sources import load_dataset
from tune.data.splits import Dataset, split_for_tuning
from tune.errors import DataError

REAL_ARCHIVE = CIFAR10_JPEG


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def assert_image_folder(dataset: Dataset, per_class: int = 4) -> None:
    assert dataset.class_names == ("ant", "bee", "cow")
    assert dataset.x_train.shape == (3 * per_class, 8, 8, 3)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert dataset.y_train.tolist() == [0] * per_class + [1] * per_class + [2] * per_class
    assert dataset.x_train[per_class + 1, 3, 3].tolist() == [0, 127, 0]
    assert dataset.x_test[2 * per_class, 0, 0].tolist() == [0, 0, 255]


def test_synthetic_shapes_balance_and_range() -> None:
    dataset = load_dataset("synthetic:1000")
    assert dataset.x_train.shape == (1000, 32, 32, 3) and dataset.x_test.shape == (200, 32, 32, 3)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert dataset.class_names == tuple(f"class_{i}" for i in range(10))
    counts = np.bincount(dataset.y_train, minlength=10)
    assert counts.min() >= 80 and counts.max() <= 120
    assert dataset.x_train.min() < 30 and dataset.x_train.max() > 225
    assert 20 < dataset.x_train.std() < 90


def test_synthetic_is_deterministic_and_fast() -> None:
    start = time.perf_counter()
    first = load_dataset("synthetic")
    elapsed = time.perf_counter() - start
    second = load_dataset("synthetic")
    assert first.x_train.shape == (3000, 32, 32, 3) and len(first.y_test) == 600
    assert np.array_equal(first.x_train, second.x_train)
    assert np.array_equal(first.y_test, second.y_test)
    assert elapsed < 2.0


def nearest_centroid_accuracy(
    dataset: Dataset, features: Callable[[np.ndarray], np.ndarray]
) -> float:
    train, test = features(dataset.x_train), features(dataset.x_test)
    centroids = np.stack([train[dataset.y_train == c].mean(axis=0) for c in range(10)])
    distances = ((test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((distances.argmin(axis=1) == dataset.y_test).mean())


def raw_pixels(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def log_spectrum(x: np.ndarray) -> np.ndarray:
    """Fourier magnitudes ignore where a pattern sits, keeping only orientation and frequency."""
    gray = x.astype(np.float32).mean(axis=-1)
    gray -= gray.mean(axis=(1, 2), keepdims=True)
    return np.log1p(np.abs(np.fft.fft2(gray))).reshape(len(x), -1)


def test_synthetic_labels_live_in_spatial_structure() -> None:
    """Learnable from orientation/frequency, but not by matching pixels: a CNN has work to do."""
    dataset = load_dataset("synthetic:2000")
    assert nearest_centroid_accuracy(dataset, raw_pixels) < 0.2
    assert nearest_centroid_accuracy(dataset, log_spectrum) > 0.6


@pytest.mark.parametrize("source", ["synthetic:abc", "synthetic:5", "synthetic:"])
def test_synthetic_bad_size(source: str) -> None:
    with pytest.raises(DataError, match="synthetic:N"):
        load_dataset(source)


def test_image_folder_directory(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    dataset = load_dataset(str(folder))
    assert_image_folder(dataset)
    assert dataset.source == f"image folder {folder}"


def test_image_folder_one_folder_down(tmp_path: Path, cache_dir: Path) -> None:
    write_image_folder(tmp_path / "outer" / "pets")
    assert_image_folder(load_dataset(str(tmp_path / "outer")))


def test_image_folder_under_two_top_folders(tmp_path: Path, cache_dir: Path) -> None:
    write_image_folder(tmp_path / "outer" / "a")
    write_image_folder(tmp_path / "outer" / "b")
    with pytest.raises(DataError, match=r"images under several top folders \['a/', 'b/'\]"):
        load_dataset(str(tmp_path / "outer"))


def test_image_folder_ignores_hidden_and_non_image_files(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    (folder / "train" / "ant" / ".DS_Store").write_bytes(b"junk")
    (folder / "train" / "ant" / "notes.txt").write_text("not an image")
    assert_image_folder(load_dataset(str(folder)))


def test_image_archive(tmp_path: Path, cache_dir: Path) -> None:
    archive = tar_folder(write_image_folder(tmp_path / "pets"), tmp_path / "pets.tar.gz")
    assert_image_folder(load_dataset(str(archive)))


def test_image_archive_with_top_folder(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    archive = tar_folder(folder, tmp_path / "pets.tgz", prefix="pets/")
    assert_image_folder(load_dataset(str(archive)))


def test_mismatched_test_classes(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    (folder / "test" / "cow").rename(folder / "test" / "cat")
    with pytest.raises(DataError, match=r"test/ classes \['ant', 'bee', 'cat'\] differ from "
                       r"train/ classes \['ant', 'bee', 'cow'\]"):
        load_dataset(str(folder))


def test_missing_test_folder(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    for file in (folder / "test").rglob("*.png"):
        file.unlink()
    with pytest.raises(DataError, match="no 'test/' folder"):
        load_dataset(str(folder))


def test_images_of_different_sizes(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    Image.new("RGB", (9, 8)).save(folder / "train" / "bee" / "2.png")
    with pytest.raises(DataError, match=r"train/bee/2\.png' is \(8, 9\)"):
        load_dataset(str(folder))


def test_corrupt_image_names_the_member(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_image_folder(tmp_path / "pets")
    (folder / "train" / "bee" / "1.png").write_bytes(b"\x89PNG truncated")
    archive = tar_folder(folder, tmp_path / "pets.tar.gz")
    with pytest.raises(DataError, match=r"cannot decode image 'train/bee/1\.png'"):
        load_dataset(str(archive))


def test_missing_path(tmp_path: Path, cache_dir: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(f"'{missing}': no such file or directory")):
        load_dataset(str(missing))


def test_unknown_file_lists_accepted_forms(tmp_path: Path, cache_dir: Path) -> None:
    odd = tmp_path / "data.csv"
    odd.write_text("a,b\n")
    with pytest.raises(DataError, match="expected 'cifar10', 'synthetic'"):
        load_dataset(str(odd))


def cifar_value(image: int, channel: int, row: int, column: int) -> int:
    return (image + 100 * channel + 32 * row + column) % 256


def cifar_batch(labels: list[int], offset: int) -> bytes:
    """Rows in the official CHW byte order, each pixel's value given by ``cifar_value``."""
    chw = np.indices((len(labels), 3, 32, 32))
    rows = cifar_value(chw[0] + offset, chw[1], chw[2], chw[3]).reshape(len(labels), 3072)
    return pickle.dumps({b"data": rows.astype(np.uint8), b"labels": labels}, protocol=2)


def write_cifar_python(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch([i % 3, (i + 1) % 3], offset=i))
    (folder / "test_batch").write_bytes(cifar_batch([2, 1, 0], offset=40))
    names = {b"label_names": [b"ant", b"bee", b"cow"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(names, protocol=2))
    return folder


def assert_cifar_python(dataset: Dataset) -> None:
    assert dataset.class_names == ("ant", "bee", "cow")
    assert dataset.x_train.shape == (10, 32, 32, 3) and dataset.x_test.shape == (3, 32, 32, 3)
    assert dataset.y_train.tolist() == [1, 2, 2, 0, 0, 1, 1, 2, 2, 0]
    assert dataset.y_train.dtype == np.int64
    assert dataset.x_train[3, 5, 7].tolist() == [cifar_value(3, c, 5, 7) for c in range(3)]
    assert dataset.x_test[2, 31, 0].tolist() == [cifar_value(42, c, 31, 0) for c in range(3)]


def test_cifar_python_directory(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_cifar_python(tmp_path / "cifar-10-batches-py")
    assert_cifar_python(load_dataset(str(folder)))


def test_cifar_python_archive_detected_by_content(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_cifar_python(tmp_path / "cifar-10-batches-py")
    archive = tmp_path / "renamed.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    assert_cifar_python(load_dataset(str(archive)))


def test_cifar_python_refuses_foreign_pickles(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_cifar_python(tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Path("evil")}))
    with pytest.raises(DataError, match=r"test_batch.*refusing to load 'pathlib.*Path'"):
        load_dataset(str(folder))


def test_cifar_python_missing_batch(tmp_path: Path, cache_dir: Path) -> None:
    folder = write_cifar_python(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="'data_batch_4' is missing"):
        load_dataset(str(folder))


def test_npz_round_trip(tmp_path: Path, cache_dir: Path) -> None:
    path = write_npz(tmp_path / "data.npz")
    dataset = load_dataset(str(path))
    with np.load(path) as raw:
        assert np.array_equal(dataset.x_train, raw["x_train"])
        assert np.array_equal(dataset.x_test, raw["x_test"])
    assert dataset.y_train.tolist() == [0, 1, 2, 3, 0, 1] and dataset.y_train.dtype == np.int64
    assert dataset.y_test.tolist() == [3, 0]
    assert dataset.class_names == ("0", "1", "2", "3")


def test_npz_grayscale_is_rejected(tmp_path: Path, cache_dir: Path) -> None:
    path = write_npz(tmp_path / "gray.npz", x_test=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"'x_test' is uint8 of shape \(2, 4, 4\)"):
        load_dataset(str(path))


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"y_train": np.array([0, 1, 2, 3, 0, 2**40])},
            "it has 5 distinct labels but the largest is 1099511627776",
        ),
        (
            {"y_train": np.array([0, 1, 2, 3, 0, 5000])},
            "it has 5 distinct labels but the largest is 5000",
        ),
        ({"y_test": np.array([3, 4])}, "y_test has label 4, but y_train has only classes 0..3"),
        (
            {"x_train": np.zeros((6, 4, 4, 3), np.float32)},
            "'x_train' is float32 of shape (6, 4, 4, 3)",
        ),
        ({"y_train": np.array([0, 1, 2, 3])}, "expected 6 non-negative integer labels"),
    ],
)
def test_npz_labels_must_be_class_indices_that_fit(
    tmp_path: Path, cache_dir: Path, overrides: dict, problem: str,
) -> None:
    """A stray label once built a 5,001-class model without a word, or hung listing 2**40
    classes."""
    path = write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    assert problem in str(info.value) and str(path) in str(info.value)


def test_npz_missing_key(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="lacks y_train, x_test, y_test; needs x_train"):
        load_dataset(str(path))


def test_second_load_is_served_from_cache(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_image_folder(tmp_path / "pets")
    first = load_dataset(str(folder))
    assert len(list((cache_dir / "datasets").glob("pets-*.npz"))) == 1

    def refuse(path: Path, source: str) -> Dataset:
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(sources, "_decode_file_source", refuse)
    second = load_dataset(str(folder))
    assert np.array_equal(first.x_train, second.x_train)
    assert np.array_equal(first.y_test, second.y_test)
    assert second.class_names == first.class_names and second.source == first.source


def test_changed_source_is_decoded_again_replacing_its_cache(
    tmp_path: Path, cache_dir: Path
) -> None:
    folder = write_image_folder(tmp_path / "pets")
    load_dataset(str(folder))
    Image.new("RGB", (8, 8), (9, 9, 9)).save(folder / "train" / "ant" / "4.png")
    assert len(load_dataset(str(folder)).y_train) == 13
    assert len(list((cache_dir / "datasets").iterdir())) == 1


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path: Path, cache_dir: Path) -> None:
    archive = tar_folder(write_image_folder(tmp_path / "pets"), tmp_path / "pets.tar.gz")
    load_dataset(str(archive))
    (cache_file,) = (cache_dir / "datasets").glob("*.npz")
    cache_file.write_bytes(b"PK\x03\x04 not really a zip")
    assert_image_folder(load_dataset(str(archive)))
    with np.load(cache_file) as rewritten:
        assert rewritten["class_names"].tolist() == ["ant", "bee", "cow"]
    assert list((cache_dir / "datasets").iterdir()) == [cache_file]


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNE_CACHE_DIR", str(tmp_path))
    assert cache.default_cache_dir() == tmp_path
    monkeypatch.delenv("TUNE_CACHE_DIR")
    assert cache.default_cache_dir() == Path.home() / ".cache" / "tune"


def labelled(counts: list[int]) -> Dataset:
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y), dtype=np.uint8)[:, None, None, None].repeat(2, axis=1)
    names = tuple(f"c{i}" for i in range(len(counts)))
    return Dataset(x, y.astype(np.int64), x[:1], y[:1].astype(np.int64), names, "test")


def test_split_is_stratified_and_disjoint() -> None:
    splits = split_for_tuning(labelled([100, 50, 50]), 40, None, seed=0)
    assert np.bincount(splits.y_val).tolist() == [20, 10, 10]
    assert np.bincount(splits.y_train).tolist() == [80, 40, 40]
    train_ids, val_ids = set(splits.x_train[:, 0, 0, 0]), set(splits.x_val[:, 0, 0, 0])
    assert not train_ids & val_ids and len(train_ids | val_ids) == 200
    assert splits.x_train.dtype == np.uint8 and splits.class_names == ("c0", "c1", "c2")
    assert not hasattr(splits, "x_test")


def test_split_is_seeded() -> None:
    dataset = labelled([100, 50, 50])
    first = split_for_tuning(dataset, 0.2, None, seed=3)
    again = split_for_tuning(dataset, 0.2, None, seed=3)
    other = split_for_tuning(dataset, 0.2, None, seed=4)
    assert np.array_equal(first.x_val, again.x_val)
    assert not np.array_equal(np.sort(first.x_val, axis=0), np.sort(other.x_val, axis=0))


def test_split_fraction_and_subset() -> None:
    splits = split_for_tuning(labelled([100, 50, 50]), 0.25, 60, seed=0)
    assert len(splits.y_val) == 50
    assert np.bincount(splits.y_train).tolist() == [30, 15, 15]
    assert not set(splits.x_train[:, 0, 0, 0]) & set(splits.x_val[:, 0, 0, 0])


def test_split_subset_larger_than_available_uses_all() -> None:
    splits = split_for_tuning(labelled([100, 50, 50]), 40, 10_000, seed=0)
    assert len(splits.y_train) == 160


@pytest.mark.parametrize("validation_size", [198, 0.999])
def test_split_rejects_a_validation_set_that_leaves_a_class_empty(
    validation_size: int | float,
) -> None:
    with pytest.raises(DataError, match=f"validation_size {validation_size!r}"):
        split_for_tuning(labelled([100, 50, 50]), validation_size, None, seed=0)


def test_split_too_few_for_a_stratified_validation_set() -> None:
    with pytest.raises(DataError, match="cannot split 200 images"):
        split_for_tuning(labelled([100, 50, 50]), 2, None, seed=0)


def test_cifar10_offline_fails_before_keras_naming_alternatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sources, "_keras_cifar10_cached", lambda: False)
    monkeypatch.setattr(sources, "_reachable", lambda host, port: False)
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(DataError) as raised:
        load_dataset("cifar10")
    alternatives = ("image-folder", "cifar10-jpeg.tar.gz", "cifar-10-python.tar.gz",
                    "cifar-10-batches-py/", ".npz", "'synthetic'")
    assert all(alternative in str(raised.value) for alternative in alternatives)


def test_unreachable_host_is_reported_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    assert sources._reachable("127.0.0.1", port) is False
    assert time.perf_counter() - start < 2.5


def test_listening_host_is_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert sources._reachable("127.0.0.1", server.getsockname()[1]) is True


def test_hanging_lookup_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(address: tuple[str, int], timeout: float) -> socket.socket:
        release.wait(10)
        raise OSError("answered too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(sources, "_PROBE_SECONDS", 0.3)
    start = time.perf_counter()
    try:
        assert sources._reachable("example.invalid", 443) is False
        assert time.perf_counter() - start < 1.0
    finally:
        release.set()


def test_keras_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    archive = tmp_path / "datasets" / "cifar-10-batches-py-target_archive"
    archive.parent.mkdir()
    archive.write_bytes(b"")
    assert sources._keras_cifar10_cached()


@pytest.mark.integration
def test_module_does_not_load_tensorflow() -> None:
    probe = (
        "import sys, tune.data.sources, tune.data.cache, tune.data.splits, tune.data.synthetic; "
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def first_members(archive: Path, out: Path, per_class: int) -> Path:
    """A small image-folder tarball of the first images of each class and split of ``archive``."""
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(archive, "r|gz") as source, tarfile.open(out, "w") as small:
        for member in source:
            parts = member.name.removeprefix("./").split("/")
            if member.isfile() and len(parts) >= 3:
                key = (parts[-3], parts[-2])
                if taken.get(key, 0) < per_class:
                    taken[key] = taken.get(key, 0) + 1
                    small.addfile(member, source.extractfile(member))
    return out


@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=f"{REAL_ARCHIVE} not present")
def test_real_cifar10_jpeg_archive_first_images(tmp_path: Path, cache_dir: Path) -> None:
    dataset = load_dataset(str(first_members(REAL_ARCHIVE, tmp_path / "first.tar", per_class=3)))
    assert dataset.class_names == sources.CIFAR10_CLASSES
    assert dataset.x_train.shape == (30, 32, 32, 3) and dataset.x_test.shape == (30, 32, 32, 3)
    assert dataset.x_train.dtype == np.uint8
    assert dataset.y_train.tolist() == [label for label in range(10) for _ in range(3)]
    assert dataset.y_test.tolist() == dataset.y_train.tolist()
    assert 40 < dataset.x_train.mean() < 220 and dataset.x_train.std() > 20


@pytest.mark.slow
@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=f"{REAL_ARCHIVE} not present")
def test_real_cifar10_jpeg_archive_full_and_cached(cache_dir: Path) -> None:
    dataset = load_dataset(str(REAL_ARCHIVE))
    assert dataset.x_train.shape == (50_000, 32, 32, 3)
    assert dataset.x_test.shape == (10_000, 32, 32, 3)
    assert np.bincount(dataset.y_train).tolist() == [5000] * 10
    assert np.bincount(dataset.y_test).tolist() == [1000] * 10
    start = time.perf_counter()
    again = load_dataset(str(REAL_ARCHIVE))
    assert time.perf_counter() - start < 2.0
    assert np.array_equal(again.x_train, dataset.x_train)
    assert again.class_names == sources.CIFAR10_CLASSES
