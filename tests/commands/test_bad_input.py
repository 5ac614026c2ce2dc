"""The malformed-input corpus: every bad file, source, URL or option given to the command line
gets exit status 2 and one line naming the file or key and the problem, and leaves every store
(Optuna journal, MLflow database and artifacts, reports, exports) byte for byte as it was.

The search-space schema has its own corpus in test_search_space.py; these are the other inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.support.data import write_image_folder, write_npz
from tests.support.scripted import ScriptedTrainer, describe_scripted
from tests.support.spaces import tiny_space, write_space
from tune.cli import app
from tune.commands.run import RunOverrides, run_study

# `tune run` starts its fork server (TensorFlow, in a child process) before it loads the data.
pytestmark = pytest.mark.integration

STUDY = "kept"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store holding a finished study, which no bad input may change."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", str(root / "mlruns"))
        patch.setenv("TUNE_CACHE_DIR", str(root / "cache"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("TUNE_STORAGE", raising=False)
        space = write_space(root / "space.yaml", tiny_space(study={"name": STUDY, "trials": 2}))
        run_study(
            space,
            RunOverrides(),
            storage=None,
            tracking_uri=None,
            echo=lambda line: None,
            trainer=ScriptedTrainer(),
            describer=describe_scripted,
        )
        yield root


def snapshot(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    return info, data if kind == tarfile.REGTYPE else None


# --- the bad inputs: each builds its file(s) in tmp and returns the command-line arguments ---

def folder_of_text_files(tmp: Path) -> list[str]:
    for split in ("train", "test"):
        (tmp / "notes" / split / "cat").mkdir(parents=True)
        (tmp / "notes" / split / "cat" / "readme.txt").write_text("not an image")
    return ["--data", str(tmp / "notes")]


def one_corrupt_jpeg(tmp: Path) -> list[str]:
    root = write_image_folder(tmp / "pets")
    (root / "train" / "ant" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return ["--data", str(root)]


def classes_differ(tmp: Path) -> list[str]:
    root = write_image_folder(tmp / "pets")
    (root / "test" / "ant").rename(root / "test" / "ape")
    return ["--data", str(root)]


def odd_sized_image(tmp: Path) -> list[str]:
    root = write_image_folder(tmp / "pets")
    Image.new("RGB", (8, 9)).save(root / "train" / "bee" / "9.png")
    return ["--data", str(root)]


def npz_with(**arrays: np.ndarray) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        return ["--data", str(write_npz(tmp / "bad.npz", **arrays))]
    return build


def archive_with(*members: tuple[tarfile.TarInfo, bytes | None]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        good = [
            member(f"{split}/{name}/0.png", png())
            for split in ("train", "test")
            for name in ("ant", "bee")
        ]
        return ["--data", str(tar_with(tmp / "data.tar.gz", [*good, *members]))]
    return build


def not_gzip(tmp: Path) -> list[str]:
    (tmp / "data.tar.gz").write_bytes(b"this is not a gzip file")
    return ["--data", str(tmp / "data.tar.gz")]


def truncated_gzip(tmp: Path) -> list[str]:
    (tmp / "data.tar.gz").write_bytes(gzip.compress(b"\0" * 4096)[:40])
    return ["--data", str(tmp / "data.tar.gz")]


def empty_folder(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["--data", str(tmp / "empty")]


def space_file(text: str, name: str = "space.yaml") -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / name).write_text(text)
        return ["@space", str(tmp / name)]
    return build


def options(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: list(args)


CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    # data sources
    "folder of non-images": (folder_of_text_files, ["notes", "no 'train/' folder"]),
    "one corrupt jpeg among good ones": (one_corrupt_jpeg, ["train/ant/bad.jpg", "cannot decode"]),
    "train and test classes differ": (classes_differ, ["test/ classes", "differ"]),
    "odd-sized image": (odd_sized_image, ["train/bee/9.png", "(9, 8)"]),
    "grayscale images in an npz": (
        npz_with(x_train=np.zeros((6, 4, 4), np.uint8)),
        ["'x_train'", "(6, 4, 4)"],
    ),
    "float images in an npz": (
        npz_with(x_train=np.zeros((6, 4, 4, 3), np.float32)),
        ["'x_train' is float32"],
    ),
    "label count differs from image count": (
        npz_with(y_train=np.array([0, 1, 2])),
        ["'y_train'", "expected 6"],
    ),
    "negative label": (
        npz_with(y_train=np.array([0, 1, 2, 3, 0, -1])),
        ["'y_train'", "non-negative"],
    ),
    "label 2**40": (
        npz_with(y_train=np.array([0, 1, 2, 3, 0, 2**40])),
        ["largest is 1099511627776"],
    ),
    "test label unseen in training": (npz_with(y_test=np.array([3, 9])), ["y_test has label 9"]),
    "npz missing arrays": (
        lambda tmp: (
            np.savez(tmp / "x.npz", x_train=np.zeros((1, 2, 2, 3), np.uint8)),
            ["--data", str(tmp / "x.npz")],
        )[1],
        ["lacks y_train"],
    ),
    "symlink member in archive": (
        archive_with(member("train/ant/link.png", kind=tarfile.SYMTYPE, link="/etc/passwd")),
        ["train/ant/link.png", "is a link"],
    ),
    "path traversal member in archive": (
        archive_with(member("../../evil.png", png())),
        ["'../../evil.png' points outside"],
    ),
    "absolute member in archive": (
        archive_with(member("/tmp/evil.png", png())),
        ["'/tmp/evil.png' points outside"],
    ),
    "not a gzip archive": (not_gzip, ["data.tar.gz"]),
    "truncated gzip archive": (truncated_gzip, ["data.tar.gz"]),
    "empty folder": (empty_folder, ["empty"]),
    "missing path": (
        options("--data", "/nonexistent/cifar.npz"),
        ["/nonexistent/cifar.npz", "no such file"],
    ),
    "unknown source": (options("--data", "imagenet"), ["'imagenet'", "expected 'cifar10'"]),
    "synthetic of zero images": (options("--data", "synthetic:0"), ["synthetic:N"]),
    # storages
    "unreachable PostgreSQL": (
        options("--storage", "postgresql://tune:pw@127.0.0.1:9/optuna"),
        ["postgresql://tune:***@127.0.0.1:9/optuna", "cannot open"],
    ),
    "Redis that does not answer": (
        options("--storage", "redis://:secret-pw@127.0.0.1:9/0"),
        ["redis://:***@127.0.0.1:9/0", "cannot open"],
    ),
    "unknown storage kind": (
        options("--storage", "mongodb://127.0.0.1/optuna"),
        ["mongodb://127.0.0.1/optuna", "unknown kind"],
    ),
    # options and files
    "zero trials": (options("--trials", "0"), ["study.trials", "greater than or equal to 1"]),
    "zero timeout": (options("--timeout", "0"), ["study.timeout", "greater than 0"]),
    "negative seed": (
        options("--seed", "-5"),
        ["study.sampler.seed", "greater than or equal to 0"],
    ),
    "huge epochs in yaml": (
        space_file("training:\n  epochs: 1000000000000000000000000000000\n"),
        ["training.epochs", "less than or equal to 10000"],
    ),
    "non-finite dropout in yaml": (
        space_file("regularization:\n  dropout: .nan\n"),
        ["regularization.dropout", "finite"],
    ),
    "infinite timeout in yaml": (space_file("study:\n  timeout: .inf\n"), ["study.timeout"]),
    "duplicate yaml keys": (
        space_file("study:\n  trials: 2\nstudy:\n  trials: 3\n"),
        ["line 3: key 'study' appears twice"],
    ),
    "missing space file": (
        lambda tmp: ["@space", str(tmp / "nope.yaml")],
        ["nope.yaml", "cannot read"],
    ),
    "space file is a folder": (lambda tmp: ["@space", str(tmp)], ["cannot read"]),
}


def assert_rejected(
    case: str, args: list[str], fragments: list[str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tune run`` with ``args``: exit 2, one line with every fragment, and the store untouched."""
    monkeypatch.setenv("TUNE_STORE_DIR", str(store / "mlruns"))
    monkeypatch.setenv("TUNE_CACHE_DIR", str(store / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNE_STORAGE", raising=False)
    space, args = (
        (args[1], args[2:]) if args[:1] == ["@space"] else (str(store / "space.yaml"), args)
    )
    before = snapshot(store)
    result = CliRunner().invoke(app, ["run", space, *args])
    assert result.exit_code == 2, (
        f"{case}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{case}: {fragment!r} not in {lines[0]!r}"
    assert snapshot(store) == before, f"{case} changed a store"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_no_store_changes(
    case: str, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    build, fragments = CASES[case]
    assert_rejected(case, build(tmp_path), fragments, store, monkeypatch)
    assert len(CASES) >= 25


@pytest.fixture
def redis_user() -> Iterator[str]:
    """A Redis user of its own with a password (the server's default user needs none), removed
    afterwards."""
    redis = pytest.importorskip("redis")
    server = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        server.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run checks it)")
    name = f"tune-test-{uuid.uuid4().hex[:8]}"
    server.acl_setuser(name, enabled=True, passwords=["+right-pw"], keys=["*"], commands=["+@all"])
    try:
        yield name
    finally:
        server.acl_deluser(name)


@pytest.mark.services
def test_wrong_storage_password_is_one_line_exit_2_and_no_store_changes(
    redis_user: str, store: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real server refusing the password (PostgreSQL here trusts every local login, so Redis's
    users stand in for it); the password is masked in the message."""
    url = f"redis://{redis_user}:wrong-pw@127.0.0.1:6379/0?prefix=tune-test-wrong"
    assert_rejected(
        "wrong Redis password",
        ["--storage", url],
        [f"redis://{redis_user}:***@127.0.0.1:6379/0", "cannot open"],
        store,
        monkeypatch,
    )
