"""Model sources in the schema, their hashes, and which knobs can act on a model: all
TensorFlow-free, on scripted model facts."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted import SEED_CNN_FACTS
from tune.commands.compare import AS_GIVEN_LABEL, BASELINE_LABEL, reference
from tune.contract import BUILDER, FILE, ModelSource
from tune.engine.config import BASELINE, DEFAULTS, Origin, SearchSpace, validate_space
from tune.engine.knobs import as_given, check_knobs, reference_values, rewrite_notes
from tune.engine.model_source import builder_parts, check_unchanged, fingerprint, pin
from tune.engine.study import baseline_params
from tune.errors import ModelError, SpaceError

SEARCHED = {"type": "float", "low": 0.0001, "high": 0.01, "log": True}


def space(model: dict[str, Any] | None = None, **regularization: Any) -> SearchSpace:
    return validate_space({"model": model or {}, "regularization": regularization}, "space.yaml")


def test_a_model_section_takes_one_source_and_defaults_to_seed_cnn() -> None:
    assert space().model.source() == ModelSource()
    assert space({"file": "net.keras"}).model.source() == ModelSource(FILE, "net.keras")
    assert (
        space({"builder": "pkg.nets:build", "input_scale": "raw"}).model.source().input_scale
        == "raw"
    )
    for model, problem in [
        (
            {"name": "seed_cnn", "file": "a.keras"},
            "give one of name, file or builder, got name and file",
        ),
        ({"builder": "nets.build"}, "needs the form 'module:function'"),
        ({"builder": "nets.py:build", "weights": "keep"}, "weights: keep needs a file"),
        ({"file": "a.keras", "sha256": "abc"}, "String should match pattern"),
    ]:
        with pytest.raises(SpaceError, match=problem):
            space(model)


def test_the_hash_pins_the_file_and_refuses_a_changed_one(tmp_path: Path) -> None:
    net = tmp_path / "net.keras"
    net.write_bytes(b"one")
    pinned = pin(space({"file": str(net)}), "the study began")
    digest = pinned.model.sha256
    assert digest == fingerprint(ModelSource(FILE, str(net))) and len(digest) == 64
    assert pin(pinned, "the study began") == pinned
    net.write_bytes(b"two")
    with pytest.raises(ModelError, match=f"model file {net} changed since the study began"):
        check_unchanged(pinned.model.source(), "the study began")


def test_a_builder_is_pinned_by_its_source_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_nets.py").write_text("def build(shape, classes): ...\n")
    monkeypatch.chdir(tmp_path)
    by_module = fingerprint(ModelSource(BUILDER, "my_nets:build"))
    assert by_module == fingerprint(ModelSource(BUILDER, "my_nets.py:build")) is not None
    assert builder_parts("C:/nets/a.py:build") == ("C:/nets/a.py", "build")
    with pytest.raises(ModelError, match="no module named 'absent_nets'"):
        fingerprint(ModelSource(BUILDER, "absent_nets:build"))


def test_a_knob_that_could_act_on_nothing_is_named_with_the_file() -> None:
    no_hidden = dataclasses.replace(SEED_CNN_FACTS, hidden_dense=0)
    check_knobs(space(l2_dense=0.0), no_hidden, "s.yaml")  # off: nothing to complain about
    with pytest.raises(SpaceError) as error:
        check_knobs(
            space(l2_dense=SEARCHED, dropconnect=0.2, batch_norm_momentum=0.9), no_hidden, "s.yaml"
        )
    lines = str(error.value).splitlines()
    assert lines[0] == (
        "s.yaml: regularization.l2_dense: cannot act on model seed_cnn: "
        "it has no hidden Dense layer (its output layer is never regularized)"
    )
    assert [line.split(":")[1].strip() for line in lines] == [
        "regularization.l2_dense",
        "regularization.dropconnect",
        "regularization.batch_norm_momentum",
    ]
    normalized = dataclasses.replace(SEED_CNN_FACTS, batch_norms=4)
    with pytest.raises(
        SpaceError, match="has 4 BatchNormalization layers already; search batch_norm_momentum"
    ):
        check_knobs(
            space(batch_norm={"type": "categorical", "choices": [False, True]}),
            normalized,
            "s.yaml",
        )
    check_knobs(space(batch_norm=True, batch_norm_momentum=0.9), SEED_CNN_FACTS, "s.yaml")


def test_the_header_says_when_tune_adds_a_dropout() -> None:
    assert rewrite_notes(space(dropout=SEARCHED), SEED_CNN_FACTS) == [
        "the model has no Dropout layer: tune adds one before its output layer for dropout"]
    assert rewrite_notes(space(dropout=0.0), SEED_CNN_FACTS) == []


def test_a_users_model_baseline_is_the_model_as_given() -> None:
    own = dataclasses.replace(
        SEED_CNN_FACTS, own={**SEED_CNN_FACTS.own, "l2_dense": 1e-3, "dropout": 0.5}
    )
    users = space(
        {"file": "net.keras"},
        l2_dense=SEARCHED,
        dropout={"type": "float", "low": 0.0, "high": 0.6},
        flip={"type": "categorical", "choices": [False, True]},
    )
    given = reference_values(users, own)
    assert given == as_given(own) and given["batch_size"] == DEFAULTS["batch_size"]
    assert baseline_params(users, given) == {"l2_dense": 1e-3, "dropout": 0.5, "flip": False}
    assert reference_values(space(l2_dense=SEARCHED), own) == BASELINE, (
        "a built-in starts from seed 000's recipe"
    )


def test_compare_measures_a_users_model_against_itself_as_given() -> None:
    best = space({"file": "net.keras"}, l2_dense=0.01, dropout=0.2, flip=True).with_fixed(
        {}, study_name="s-best", origin=None).model_copy(update={"origin": _origin()})
    label, baseline = reference(best)
    assert label == AS_GIVEN_LABEL and baseline.model.file == "net.keras"
    assert {"l2_dense", "dropout"}.isdisjoint(baseline.params()), "the model's own penalty and rate"
    assert baseline.params()["flip"] is False
    label, seed = reference(space(l2_dense=0.01).model_copy(update={"origin": _origin()}))
    assert (
        label == BASELINE_LABEL
        and seed.params()["l2_dense"] == 1e-3
        and seed.params()["dropout"] == 0.5
    )


def _origin() -> Origin:

    return Origin(study="s", trial=3, rank=1, objective=0.9, regime="balanced", reason="r")
