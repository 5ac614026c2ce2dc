"""A user's own model through the command line: a tiny study for a saved file and for a builder,
exported and retrained, the saved model read back, in child processes as a user runs them; and
every bad model input, each one line on stderr, exit 2 and no store written, through the same
command line in this process (its fork server, started once, serves them all)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import keras
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tests.support.processes import cores_per_worker, tune_cli
from tests.support.spaces import tiny_space, write_space
from tune.cli import app
from tune.runtime.storage import open_storage
from tune.tracking.tracker import (
    MODEL_LAYERS_FILE,
    MODEL_SHA256_TAG,
    MODEL_SOURCE_TAG,
    ROLE_TAG,
)
from tune.training.tf_logs import UNFILTERED_VAR

pytestmark = pytest.mark.integration

L = keras.layers
SHAPE = (32, 32, 3)
BUILDER = textwrap.dedent("""\
    import keras

    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(8, 3, activation="relu", name="my_conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D(name="my_pool")(x)
        x = keras.layers.Dense(16, activation="relu", name="my_hidden")(x)
        outputs = keras.layers.Dense(num_classes, name="my_logits")(x)
        return keras.Model(inputs, outputs, name="users_net")
""")


def users_model() -> keras.Model:
    """A small CNN written as a user would, with its own L2 on the hidden layer and a Dropout."""
    return keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Conv2D(8, 3, activation="relu", name="my_conv"),
            L.MaxPooling2D(name="my_pool"),
            L.Flatten(name="my_flat"),
            L.Dense(
                16,
                activation="relu",
                kernel_regularizer=keras.regularizers.L2(1e-3),
                name="my_hidden",
            ),
            L.Dropout(0.5, name="my_dropout"),
            L.Dense(10, activation="softmax", name="my_output"),
        ],
        name="users_net",
    )


def with_model(space: dict, model: dict) -> dict:
    """quick.yaml names a built-in; a file or builder replaces it."""
    return {**space, "model": model}


def study_space(name: str, model: dict) -> dict:
    return with_model(
        tiny_space(
            study={
                "name": name,
                "trials": 2,
                "sampler": {"type": "random", "seed": 1},
                "pruner": {"type": "none"},
                "baseline": True,
            },
            training={"epochs": 2},
            regularization={
                "l2_conv": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
                "dropout": {"type": "float", "low": 0.0, "high": 0.6},
                **{key: None for key in ("l1_conv", "l1_dense", "l2_dense")},
            },
        ),
        model,
    )


def _clean(space: dict) -> dict:
    """tiny_space copies quick.yaml, which fixes the dense penalties; None leaves them the
    model's."""
    space["regularization"] = {
        key: value for key, value in space["regularization"].items() if value is not None
    }
    return space


def run_export_train(root: Path, name: str, model: dict) -> dict:
    env = {"TUNE_STORE_DIR": str(root / "mlruns"), "MLFLOW_TRACKING_URI": ""}
    space = write_space(root / "space.yaml", _clean(study_space(name, model)))
    run = tune_cli("run", str(space), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    best = root / "best.yaml"
    export = tune_cli("export", name, "--out", str(best), env=env)
    assert export.returncode == 0, export.stderr[-3000:]
    train = tune_cli("train", str(best), "--epochs", "1", env=env)
    assert train.returncode == 0, train.stderr[-3000:]
    study = optuna.load_study(
        study_name=name,
        storage=open_storage(f"journal:{root / 'mlruns' / 'optuna' / 'journal.log'}"),
    )
    client = MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    [saved] = (root / "mlruns" / "models").rglob("*.keras")
    return {
        "env": env,
        "run": run,
        "best": best,
        "export": yaml.safe_load(best.read_text()),
        "study": study,
        "client": client,
        "saved": saved,
        "train": train,
        "root": root,
    }


def builder_then_compare(root: Path) -> dict:
    done = run_export_train(root, "users_builder", {"builder": f"{root / 'my_models.py'}:build"})
    return {
        **done,
        "compare": tune_cli("compare", "users_builder", "--epochs", "1", env=done["env"]),
    }


def rejected_lines(args: list[str], store: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``tune ARGS`` in this process with its own store, which must refuse it with exit status 2:
    the non-blank lines it wrote to stderr."""
    monkeypatch.setenv("TUNE_STORE_DIR", str(store))
    monkeypatch.setenv(UNFILTERED_VAR, "1")  # this process's stderr stays pytest's
    for name in ("MLFLOW_TRACKING_URI", "TUNE_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return [line for line in result.stderr.splitlines() if line.strip()]


Jobs = dict[str, "Future[Any]"]


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    """Both studies' commands, started here, as many side by side as this worker has cores (two
    on a small machine when pytest runs alone, one each under ``-n 2``): each pays TensorFlow's
    start-up in processes of its own. The files they read are written first, one after another
    (Keras is not made for threads). A test waits for its own commands only, and a command's
    failure is its test's."""
    root = tmp_path_factory.mktemp("users")
    file_root, builder_root = root / "file", root / "builder"
    file_root.mkdir()
    builder_root.mkdir()
    users_model().save(file_root / "my_net.keras")
    (builder_root / "my_models.py").write_text(BUILDER)
    with ThreadPoolExecutor(cores_per_worker()) as pool:
        yield {
            "builder": pool.submit(builder_then_compare, builder_root),
            "file": pool.submit(
                run_export_train, file_root, "users_file", {"file": str(file_root / "my_net.keras")}
            ),
        }


@pytest.fixture(scope="module")
def from_file(launched: Jobs) -> dict:
    done = launched["file"].result()
    return {**done, "saved": keras.saving.load_model(done["saved"])}


def test_the_baseline_trial_is_the_model_as_given(from_file: dict) -> None:
    baseline = from_file["study"].trials[0]
    assert baseline.user_attrs["baseline"] is True
    assert baseline.params["dropout"] == 0.5, "its own Dropout rate"
    assert "no Dropout layer" not in from_file["run"].stdout


def test_the_parent_run_records_source_hash_size_and_layers(from_file: dict) -> None:
    client = from_file["client"]
    experiment = client.get_experiment_by_name("users_file")
    [parent] = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'study'")
    assert parent.data.tags[MODEL_SOURCE_TAG] == f"file {from_file['root'] / 'my_net.keras'}"
    assert parent.data.tags[MODEL_SHA256_TAG] == from_file["export"]["model"]["sha256"]
    assert parent.data.params["model.parameters"] == str(users_model().count_params())
    table = Path(client.download_artifacts(parent.info.run_id, MODEL_LAYERS_FILE)).read_text()
    assert (
        "| my_hidden | Dense | l1_dense, l2_dense, dropconnect, weight_noise | L2 0.001 |" in table
    )
    assert "| my_output | Dense | none (output layer) |" in table


def test_the_retrained_model_keeps_the_users_names_and_the_exported_regularization(
    from_file: dict,
) -> None:
    export, saved = from_file["export"], from_file["saved"]
    assert export["model"]["file"].endswith("my_net.keras") and len(export["model"]["sha256"]) == 64
    names = [layer.name for layer in saved.layers]
    assert names[-6:] == ["my_conv", "my_pool", "my_flat", "my_hidden", "my_dropout", "my_output"]
    conv = saved.get_layer("my_conv").kernel_regularizer.get_config()
    assert conv["l2"] == pytest.approx(export["regularization"]["l2_conv"], rel=1e-6)
    assert saved.get_layer("my_dropout").rate == pytest.approx(export["regularization"]["dropout"])
    assert saved.get_layer("my_hidden").kernel_regularizer.get_config()["l2"] == pytest.approx(
        1e-3
    ), "unsearched: its own"
    assert saved.get_layer("my_output").kernel_regularizer is None


def test_a_changed_model_file_is_refused_by_train(
    from_file: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = from_file["root"] / "my_net.keras"
    original = path.read_bytes()
    try:
        users_model().save(path)  # same architecture, new weights: a different file
        args = ["train", str(from_file["best"]), "--epochs", "1"]
        [line] = rejected_lines(args, from_file["root"] / "mlruns", monkeypatch)
    finally:
        path.write_bytes(original)
    assert line.startswith(f"error: model file {path} changed since") and "sha256" in line


def test_a_builder_study_exports_and_retrains_a_logits_model(launched: Jobs) -> None:
    done = launched["builder"].result()
    assert "tune adds one before its output layer for dropout" in done["run"].stdout
    assert done["export"]["model"]["builder"].endswith("my_models.py:build")
    saved = keras.saving.load_model(done["saved"])
    assert [layer.name for layer in saved.layers][-5:] == [
        "my_conv",
        "my_pool",
        "my_hidden",
        "my_logits_dropout",
        "my_logits",
    ]
    assert saved.get_layer("my_logits").activation.__name__ == "linear"
    assert saved.get_layer("my_conv").kernel_regularizer.get_config()["l2"] == pytest.approx(
        done["export"]["regularization"]["l2_conv"]
    )
    compare = done["compare"]
    assert compare.returncode == 0, compare.stderr[-3000:]
    assert "model as given" in compare.stdout and "best config" in compare.stdout
    retrains = done["client"].search_runs(
        [done["client"].get_experiment_by_name("users_builder").experiment_id],
        "tags.`tune.role` = 'retrain'",
    )
    as_given = [run for run in retrains if run.info.run_name.startswith("users_builder-as-given")]
    assert len(as_given) == 1 and "test_accuracy" in as_given[0].data.metrics
    assert "l2_conv" not in as_given[0].data.params and as_given[0].data.params["flip"] == "False"


def _lambda_model(path: Path) -> None:
    keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Lambda(lambda x: x * 2.0),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ]
    ).save(path)


def _sized(path: Path, shape: tuple[int, ...], outputs: int) -> None:
    keras.Sequential(
        [keras.Input(shape), L.Flatten(), L.Dense(4), L.Dense(outputs, activation="softmax")]
    ).save(path)


def _write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


SUBCLASSED = """\
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.out = keras.layers.Dense(10, activation="softmax")

        def call(self, inputs):
            return self.out(self.flat(inputs))

    def build(input_shape, num_classes):
        net = Net()
        net(keras.ops.zeros((1, *input_shape)))
        return net
"""
BAD = {
    "missing file": (
        {"file": "{d}/nowhere.keras"},
        None,
        "model file {d}/nowhere.keras: no such file",
    ),
    "not an archive": (
        {"file": "{d}/notes.keras"},
        lambda d: (d / "notes.keras").write_text("hello"),
        "model file {d}/notes.keras: not a Keras archive",
    ),
    "lambda layer": (
        {"file": "{d}/lambda.keras"},
        lambda d: _lambda_model(d / "lambda.keras"),
        "model file {d}/lambda.keras: it has a Lambda layer, which runs arbitrary code",
    ),
    "output size": (
        {"file": "{d}/five.keras"},
        lambda d: _sized(d / "five.keras", SHAPE, 5),
        "model file {d}/five.keras: its output shape (5,) does not match the data's 10 classes",
    ),
    "input shape": (
        {"file": "{d}/mnist.keras"},
        lambda d: _sized(d / "mnist.keras", (28, 28, 1), 10),
        "model file {d}/mnist.keras: its input shape (28, 28, 1) does not fit the data's images "
        "(32, 32, 3)",
    ),
    "no colon": (
        {"builder": "my_models.build"},
        None,
        "model: builder 'my_models.build' needs the form",
    ),
    "no module": (
        {"builder": "no_such_module_here:build"},
        None,
        "builder 'no_such_module_here:build': no module named",
    ),
    "no function": (
        {"builder": "{d}/empty.py:build"},
        lambda d: _write(d / "empty.py", "x = 1\n"),
        "builder '{d}/empty.py:build': {d}/empty.py has no function 'build'",
    ),
    "builder raises": (
        {"builder": "{d}/raises.py:build"},
        lambda d: _write(
            d / "raises.py", "def build(shape, classes):\n    raise ValueError('no GPU')\n"
        ),
        "builder '{d}/raises.py:build' raised ValueError: no GPU",
    ),
    "not a model": (
        {"builder": "{d}/number.py:build"},
        lambda d: _write(d / "number.py", "def build(shape, classes):\n    return 42\n"),
        "builder '{d}/number.py:build' returned int, not a keras.Model",
    ),
    "subclassed": (
        {"builder": "{d}/sub.py:build"},
        lambda d: _write(d / "sub.py", SUBCLASSED),
        "Net 'net' is a subclassed model, whose layers tune cannot rewrite: "
        "give a Sequential model or a functional one",
    ),
}


def bad_model_space(folder: Path, case: str) -> Path:
    """The case's files in ``folder``, and a space naming its model."""
    model, make, _ = BAD[case]
    folder.mkdir()
    if make:
        make(folder)
    model = {key: value.format(d=folder) for key, value in model.items()}
    return write_space(folder / "space.yaml", with_model(tiny_space(), model))


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_model_is_one_line_exit_2_and_no_store(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = bad_model_space(tmp_path / "bad", case)
    folder, problem = space.parent, BAD[case][2]
    lines = rejected_lines(["run", str(space)], folder / "mlruns", monkeypatch)
    assert (
        len(lines) == 1 and lines[0].startswith("error: ") and problem.format(d=folder) in lines[0]
    ), lines
    assert not (folder / "mlruns").exists()


def test_a_knob_with_nothing_to_act_on_names_the_file_and_the_knob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "knob"
    folder.mkdir()
    keras.Sequential(
        [
            keras.Input(SHAPE),
            L.Conv2D(4, 3),
            L.GlobalAveragePooling2D(),
            L.Dense(10, activation="softmax"),
        ]
    ).save(folder / "no_hidden.keras")
    space = write_space(
        folder / "space.yaml", with_model(tiny_space(), {"file": str(folder / "no_hidden.keras")})
    )
    lines = rejected_lines(["run", str(space)], folder / "mlruns", monkeypatch)
    assert lines == [
        f"error: {folder / 'space.yaml'}: regularization.l2_dense: "
        f"cannot act on model file {folder / 'no_hidden.keras'}: "
        "it has no hidden Dense layer (its output layer is never regularized)"
    ]
    assert not (folder / "mlruns").exists()
