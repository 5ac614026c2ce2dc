"""Which knobs can act on a given model, decided before anything is stored: a knob that could be
turned on but has nothing to act on is the user's mistake, named with the file and the knob; and
the model as its user wrote it, in knob values, for the baseline trial and ``tune compare``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tune.contract import ModelFacts, Scalar
from tune.engine.config import (
    BASELINE,
    DEFAULTS,
    DOMAINS,
    FROM_MODEL,
    CategoricalSpec,
    ParamSpec,
    SearchSpace,
)
from tune.errors import SpaceError


def could_be_on(spec: ParamSpec, off: Scalar) -> bool:
    """Searched over anything but ``off``, or fixed to something else."""
    if isinstance(spec, CategoricalSpec):
        return any(choice != off for choice in spec.choices)
    if isinstance(spec, BaseModel):
        return True
    return spec != off


def _why_not(name: str, spec: ParamSpec, facts: ModelFacts) -> str | None:
    """Why ``name`` cannot act on the model, or None if it can."""
    on = could_be_on(spec, DOMAINS[name].default)
    if name in ("l1_conv", "l2_conv") and on and facts.convs == 0:
        return "it has no convolution layer besides its output layer"
    if name in ("l1_dense", "l2_dense", "dropconnect") and on and facts.hidden_dense == 0:
        return "it has no hidden Dense layer (its output layer is never regularized)"
    if name == "weight_noise" and on and facts.noisy_convs + facts.hidden_dense == 0:
        return "it has no Conv1D/2D/3D or hidden Dense layer to add weight noise to"
    if name == "batch_norm" and on and facts.batch_norms:
        return (
            f"it has {facts.batch_norms} BatchNormalization layers already; search "
            "batch_norm_momentum instead"
        )
    return None


def _momentum_without_norm(space: SearchSpace, facts: ModelFacts) -> str | None:
    params = space.params()
    if "batch_norm_momentum" not in params or facts.batch_norms:
        return None
    if "batch_norm" in params and could_be_on(params["batch_norm"], False):
        return None
    return "it has no BatchNormalization layer; add them with batch_norm: true"


def check_knobs(space: SearchSpace, facts: ModelFacts, origin: Path | str) -> None:
    """Every knob the space sets must have something to act on in this model."""
    problems = {
        name: _why_not(name, spec, facts)
        for name, spec in space.params().items()
        if name in DOMAINS
    }
    problems["batch_norm_momentum"] = _momentum_without_norm(space, facts)
    lines = [
        f"{origin}: regularization.{name}: cannot act on model {space.model.source().describe()}: "
        f"{why}"
        for name, why in problems.items()
        if why
    ]
    if lines:
        raise SpaceError("\n".join(lines))


def rewrite_notes(space: SearchSpace, facts: ModelFacts) -> list[str]:
    """What the rewrite does that the model does not say, for the run's header."""
    params = space.params()
    notes = []
    if facts.dropouts == 0 and "dropout" in params and could_be_on(params["dropout"], 0.0):
        notes.append(
            "the model has no Dropout layer: tune adds one before its output layer for dropout"
        )
    skipped = facts.convs - facts.noisy_convs
    if skipped and "weight_noise" in params and could_be_on(params["weight_noise"], 0.0):
        notes.append(
            f"weight_noise leaves {skipped} depthwise, separable or transposed convolutions as "
            "they are"
        )
    mixed = [name for name in FROM_MODEL if name in params and name not in facts.own]
    if mixed:
        notes.append(
            f"the model's layers disagree on {', '.join(mixed)}: the searched value replaces each "
            "layer's own"
        )
    return notes


def as_given(facts: ModelFacts) -> dict[str, Scalar]:
    """The model as its user wrote it, in knob values: the penalties, dropout rate and momentum it
    carries (where its layers agree), everything tune adds off, training at the defaults."""
    carried = {name: value for name, value in DEFAULTS.items() if name not in FROM_MODEL}
    return {**carried, **facts.own}


def reference_values(space: SearchSpace, facts: ModelFacts) -> dict[str, Scalar]:
    """What a study's baseline trial starts from: seed 000's recipe for the built-ins, the model as
    given for a user's model."""
    return as_given(facts) if space.model.source().is_users else dict(BASELINE)
