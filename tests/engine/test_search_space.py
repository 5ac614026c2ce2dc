"""The search-space schema: shipped files load, every kind of mistake gives one message naming the
file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT
from tune.engine.config import (
    BASELINE,
    DOMAINS,
    REGULARIZATION_DOMAINS,
    CategoricalSpec,
    FloatSpec,
    IntSpec,
    Origin,
    dump_space,
    load_space,
)
from tune.engine.study import baseline_params
from tune.errors import SpaceError

SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))
ORIGIN = Origin(
    study="quick",
    trial=3,
    rank=1,
    objective=0.9,
    val_accuracy=0.7,
    best_epoch=4,
    regime="balanced",
    reason="r",
)


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def error_of(tmp_path: Path, raw: dict) -> str:
    path = write(tmp_path, raw)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_spaces_load_and_search_something(path: Path) -> None:
    space = load_space(path)
    assert space.searched(), "a shipped space must search at least one hyperparameter"
    assert set(DOMAINS) - set(space.params()) <= {"batch_norm_momentum"}, (
        "every other knob spelled out"
    )
    assert space.study_name(path) == space.study.name


def test_required_spaces_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {"cifar10_seed_cnn.yaml", "cifar10_full.yaml", "quick.yaml"} <= names
    assert load_space(ROOT / "search_spaces/cifar10_full.yaml").model.name == "vgg_bn"


SECTIONS = {"study", "data", "model", "training", "regularization", "sampler", "pruner"}
DISTRIBUTION_KEYS = {"type", "low", "high", "log", "step", "choices"}


def test_every_key_of_shipped_spaces_is_commented() -> None:
    for path in SHIPPED:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            key = line.strip().split(":")[0]
            if (
                ":" not in line
                or line.lstrip().startswith("#")
                or key in SECTIONS | DISTRIBUTION_KEYS
            ):
                continue
            assert "#" in line, f"{path.name}:{number}: key {key!r} has no comment"


def test_distributions_and_fixed_values_parse(tmp_path: Path) -> None:
    space = load_space(write(tmp_path, {
        "regularization": {
            "l2_dense": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "early_stopping_patience": {"type": "int", "low": 1, "high": 5},
            "batch_norm": {"type": "categorical", "choices": [True, False]},
            "rotation": 10,
        },
        "training": {"optimizer": {"type": "categorical", "choices": ["adam", "sgd"]}},
    }))
    searched = space.searched()
    assert isinstance(searched["l2_dense"], FloatSpec) and searched["l2_dense"].log
    assert isinstance(searched["early_stopping_patience"], IntSpec)
    assert isinstance(searched["batch_norm"], CategoricalSpec)
    assert set(searched) == {"l2_dense", "early_stopping_patience", "batch_norm", "optimizer"}
    params = space.params()
    assert params["rotation"] == 10.0 and isinstance(params["rotation"], float)
    assert "dropout" not in params and params["learning_rate"] == 1e-3, (
        "unset, the model keeps its own"
    )


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({"regularizaton": {}}, "regularizaton", "unknown key"),
        ({"regularization": {"l3": 0.1}}, "regularization.l3", "unknown key"),
        ({"study": {"trials": "many"}}, "study.trials", "integer"),
        ({"regularization": {"dropout": 1.0}}, "regularization.dropout", "must be < 1, got 1.0"),
        (
            {"regularization": {"dropout": {"type": "float", "low": 0.1, "high": 1.2}}},
            "regularization.dropout",
            "high must be < 1",
        ),
        (
            {"regularization": {"l2_dense": {"type": "float", "low": 0.1, "high": 0.01}}},
            "regularization.l2_dense",
            "low <= high must hold",
        ),
        (
            {
                "regularization": {
                    "l2_dense": {"type": "float", "low": 0.0, "high": 0.01, "log": True}
                }
            },
            "regularization.l2_dense",
            "log scale needs low > 0",
        ),
        (
            {"regularization": {"early_stopping_patience": -1}},
            "regularization.early_stopping_patience",
            "must be >= 0",
        ),
        (
            {"regularization": {"early_stopping_patience": {"type": "float", "low": 1, "high": 3}}},
            "regularization.early_stopping_patience",
            "needs type 'int'",
        ),
        ({"regularization": {"batch_norm": "yes"}}, "regularization.batch_norm", "true or false"),
        (
            {"regularization": {"l2_dense": {"type": "normal", "low": 0, "high": 1}}},
            "regularization.l2_dense",
            "'type' must be one of",
        ),
        (
            {"regularization": {"l2_dense": {"type": "float", "low": 0, "high": 1, "scale": 2}}},
            "regularization.l2_dense.scale",
            "unknown key",
        ),
        ({"model": {"name": "resnet"}}, "model", "unknown model 'resnet'"),
        (
            {"study": {"pruner": {"type": "patient"}}},
            "study.pruner.type",
            "'none', 'median', 'successive_halving' or 'hyperband'",
        ),
        ({"training": {"optimizer": "adagrad"}}, "training.optimizer", "must be one of"),
        ({"data": {"validation_size": 1.5}}, "data.validation_size", "fraction must be < 1"),
        ({"diagnosis": {"overfit_gapp": 0.3}}, "diagnosis.overfit_gapp", "unknown key"),
        (
            {"study": {"enqueue": [{"l3": 0.1}]}},
            "study.enqueue",
            "entry 0: unknown hyperparameter 'l3'",
        ),
        (
            {"study": {"enqueue": [{"dropout": 2.0}]}},
            "study.enqueue",
            "entry 0: dropout must be < 1",
        ),
        (
            {"study": {"enqueue": [{"zoom": 0.1}]}},
            "(top level)",
            "entry 0 sets ['zoom'], which this space does not search",
        ),
        (
            {"diagnosis": {"overfit_gap": -0.1}},
            "diagnosis.overfit_gap",
            "greater than or equal to 0",
        ),
        ({"diagnosis": {"min_epochs": 1}}, "diagnosis.min_epochs", "greater than or equal to 2"),
        ({"diagnosis": {"flat_window": 2.5}}, "diagnosis.flat_window", "valid integer"),
        ({"diagnosis": {"smooth_epochs": True}}, "diagnosis.smooth_epochs", "valid integer"),
        ({"diagnosis": {"overfit_rise": float("nan")}}, "diagnosis.overfit_rise", "finite number"),
        (
            {"diagnosis": {"underfit_accuracy": 1.5}},
            "diagnosis.underfit_accuracy",
            "less than or equal to 1",
        ),
        ({"diagnosis": {"flat_slope": "0.01"}}, "diagnosis.flat_slope", "valid number"),
        ({"data": {"validation_size": 0}}, "data.validation_size", "greater than 0"),
        ({"data": {"validation_size": True}}, "data.validation_size", ""),
        (
            {"study": {"objective": "accuracy"}},
            "study.objective",
            "'val_data_loss' or 'val_accuracy'",
        ),
        ({"training": {"batch_size": 10**30}}, "training.batch_size", "must be <= 65536"),
        ({"training": {"epochs": 10**30}}, "training.epochs", "less than or equal to 10000"),
        ({"study": {"sampler": {"seed": -1}}}, "study.sampler.seed", "greater than or equal to 0"),
        (
            {"study": {"sampler": {"seed": 10**30}}},
            "study.sampler.seed",
            "less than or equal to 4294967295",
        ),
        ({"study": {"timeout": float("inf")}}, "study.timeout", "less than or equal to"),
        ({"study": {"trials": 10**30}}, "study.trials", "less than or equal to"),
        ({"data": {"seed": -3}}, "data.seed", "greater than or equal to 0"),
        (
            {"regularization": {"l2_dense": float("nan")}},
            "regularization.l2_dense",
            "must be finite",
        ),
        (
            {
                "regularization": {
                    "early_stopping_patience": {"type": "int", "low": 0, "high": 10**30}
                }
            },
            "regularization.early_stopping_patience",
            "must be <= 10000",
        ),
        (
            {"study": {"objective": "val_accuracy", "direction": "minimize"}},
            "study.direction",
            "'minimize' contradicts objective val_accuracy, which is maximized; drop direction",
        ),
    ],
)
def test_each_mistake_names_file_key_and_problem(
    tmp_path: Path, raw: dict, key: str, problem: str
) -> None:
    message = error_of(tmp_path, raw)
    assert f": {key}: " in message, message
    assert problem in message, message


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="cannot read"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: [unclosed\n")
    with pytest.raises(SpaceError, match=f"{bad}: not valid YAML"):
        load_space(bad)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpaceError, match="expected a mapping"):
        load_space(tmp_path / "list.yaml")


def test_dump_round_trips_and_fixing_params(tmp_path: Path) -> None:
    space = load_space(ROOT / "search_spaces/quick.yaml")
    fixed = space.with_fixed(
        {"l2_conv": 0.0, "l2_dense": 0.003, "dropout": 0.25}, study_name="quick-best", origin=ORIGIN
    )
    assert fixed.searched() == {}
    assert (
        fixed.params()["l2_dense"] == 0.003 and fixed.study.trials == 1 and not fixed.study.baseline
    )
    path = tmp_path / "fixed.yaml"
    path.write_text(dump_space(fixed, "header line"))
    assert path.read_text().startswith("# header line\n")
    assert load_space(path) == fixed


def test_overrides_are_validated(tmp_path: Path) -> None:
    space = load_space(ROOT / "search_spaces/quick.yaml")
    assert space.with_overrides(data={"source": "synthetic"}, study={"trials": 3}).study.trials == 3
    with pytest.raises(
        SpaceError,
        match=r"command-line option: study\.trials: Input should be greater than or equal to 1",
    ):
        space.with_overrides(study={"trials": 0})


def test_baseline_is_seed_000() -> None:
    assert BASELINE["l2_dense"] == 1e-3 and BASELINE["dropout"] == 0.5
    assert (
        not BASELINE["flip"]
        and BASELINE["rotation"] == 0.0
        and BASELINE["early_stopping_patience"] == 0
    )
    assert (
        BASELINE["l2_conv"] == BASELINE["l1_conv"] == BASELINE["l1_dense"] == 0.0
        and BASELINE["batch_size"] == 32
    )


def test_integer_thresholds_are_taken_as_integers(tmp_path: Path) -> None:
    """A new user's first diagnosis override: ``min_epochs: 4`` was once always rejected."""
    space = load_space(write(tmp_path, {"diagnosis": {"min_epochs": 4, "overfit_gap": 1}}))
    assert space.diagnosis.min_epochs == 4 and type(space.diagnosis.min_epochs) is int
    assert space.diagnosis.overfit_gap == 1.0 and space.diagnosis.flat_window == 5
    assert load_space(write(tmp_path, space.to_dict())) == space


def test_the_objective_sets_the_direction_and_an_older_direction_key_still_loads(
    tmp_path: Path,
) -> None:
    space = load_space(write(tmp_path, {"study": {"objective": "val_accuracy"}}))
    assert (space.objective.metric, space.objective.direction) == ("val_accuracy", "maximize")
    assert space.train_settings(seed=0).objective == space.objective
    older = load_space(write(tmp_path, {"study": {"direction": "minimize"}}))
    assert older.objective.metric == "val_data_loss" and "direction" not in older.to_dict()["study"]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        (
            "space.yaml",
            "study:\n  trials: 3\nregularization:\n  dropout: 0.1\nstudy:\n  trials: 5\n",
            "line 5: key 'study' appears twice in the same section",
        ),
        (
            "space.yaml",
            "regularization:\n  dropout: 0.1\n  dropout: 0.2\n",
            "line 3: key 'dropout' appears twice in the same section",
        ),
        (
            "space.json",
            '{"study": {"trials": 2, "trials": 3}}',
            "key 'trials' appears twice in the same object",
        ),
    ],
)
def test_a_key_given_twice_is_an_error_not_a_silent_overwrite(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value) == f"{path}: {problem}"


def test_binary_garbage_gets_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value) == f"{path}: not a text file: byte 128 is not UTF-8"


def test_train_settings_come_from_the_fixed_sections() -> None:
    space = load_space(ROOT / "search_spaces/quick.yaml")
    settings = space.train_settings(seed=7)
    assert (settings.model.ref, settings.epochs, settings.seed) == ("seed_cnn", 10, 7)
    assert (settings.precision, settings.clean_train_size) == ("auto", 2000)


@pytest.mark.parametrize(
    "path", [path for path in SHIPPED if load_space(path).study.baseline], ids=lambda p: p.name
)
def test_every_shipped_space_with_a_baseline_can_enqueue_seed_000s_regularization_exactly(
    path: Path,
) -> None:
    space = load_space(path)
    searched = set(space.searched()) & set(REGULARIZATION_DOMAINS)
    fixed = {
        name: value
        for name, value in space.params().items()
        if name in REGULARIZATION_DOMAINS and name not in searched
    }
    assert baseline_params(space) == {
        name: BASELINE[name] for name in searched | set(baseline_params(space))
    }
    assert searched <= set(baseline_params(space)), (
        f"{sorted(searched - set(baseline_params(space)))} cannot take seed 000's value"
    )
    assert fixed == {name: BASELINE[name] for name in fixed}, (
        "a fixed regularizer differs from seed 000"
    )


def ends_of(spec: FloatSpec | IntSpec | CategoricalSpec) -> list:
    return spec.choices if isinstance(spec, CategoricalSpec) else [spec.low, spec.high]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_exports_and_reloads_unchanged(
    path: Path, fmt: str, tmp_path: Path
) -> None:
    space = load_space(path)
    for end in (0, -1):
        values = {name: ends_of(spec)[end] for name, spec in space.searched().items()}
        fixed = space.with_fixed(values, study_name="x-best", origin=ORIGIN)
        out = tmp_path / f"fixed.{fmt}"
        out.write_text(dump_space(fixed, "a header", fmt))
        reloaded = load_space(out)
        assert reloaded == fixed and reloaded.searched() == {} and reloaded.origin == ORIGIN
        assert {name: reloaded.params()[name] for name in values} == values
