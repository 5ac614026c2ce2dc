"""Search-space files: the schema, its validation, and conversion back to YAML or JSON.

A search-space file holds a whole study (what to search, the model, the data, training and study
settings), so a study can be re-run, resumed or exported from one file. Every hyperparameter is
either a fixed value or a distribution; an exported config is the same schema with every value
fixed and an ``origin`` saying which trial it came from. Allowed values are declared once, as data,
in ``DOMAINS`` (and the diagnosis thresholds on ``Thresholds``); every check happens here, before
any store is opened, so a bad file never leaves a half-created study behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from tune.contract import (
    AUTO_PRECISION,
    BUILDER,
    BUILTIN,
    DEFAULT_OBJECTIVE,
    FILE,
    FRESH_WEIGHTS,
    INPUT_SCALES,
    KEEP_WEIGHTS,
    LR_SCHEDULES,
    MODEL_NAMES,
    OBJECTIVES,
    OPTIMIZER_NAMES,
    PRECISIONS,
    SEED_CNN,
    Direction,
    ModelKind,
    ModelSource,
    Objective,
    Scalar,
    TrainSettings,
)
from tune.errors import SpaceError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

# Limits no real study comes near. Past them a value is a typo, and failing here beats a crash or
# an endless run hours into a study.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_COUNT = 10**9  # trials, images
MAX_SEED = 2**32 - 1  # NumPy's and Optuna's samplers take seeds below 2**32
MAX_TIMEOUT = 366 * 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class Domain:
    """The values a hyperparameter may take, whether fixed or searched."""

    kind: type
    default: Scalar
    help: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    # +1 where more of it is stronger regularization, -1 where less is, 0 where it is no
    # regularization strength (optimizer, batch norm); how the report tells which way to move it.
    regularizes: int = 0
    # Left unset, the model keeps its own value (``FROM_MODEL``).
    from_model: bool = False

    def strength(self, value: Scalar) -> float:
        """How strongly ``value`` regularizes, larger being stronger, so every knob reads the same
        way; patience 0 turns early stopping off, the weakest setting there is."""
        if self.regularizes < 0 and value == 0:
            return -math.inf
        return self.regularizes * float(value)

    def check(self, value: object) -> str | None:
        """Return a problem with ``value`` or None; used for fixed values and range ends alike."""
        if self.kind is bool:
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind is str:
            return (
                None
                if value in self.choices
                else f"must be one of {list(self.choices)}, got {value!r}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if self.kind is int and not float(value).is_integer():
            return f"must be an integer, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if self.low is not None and value < self.low:
            return f"must be >= {self.low:g}, got {value!r}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"must be {'<' if self.high_open else '<='} {self.high:g}, got {value!r}"
        return None


REGULARIZATION_DOMAINS: dict[str, Domain] = {
    "l1_conv": Domain(
        float,
        0.0,
        "L1 lambda on every convolution kernel (not biases or BN)",
        low=0,
        regularizes=1,
        from_model=True,
    ),
    "l1_dense": Domain(
        float,
        0.0,
        "L1 lambda on every hidden Dense kernel (not the output layer)",
        low=0,
        regularizes=1,
        from_model=True,
    ),
    "l2_conv": Domain(
        float,
        0.0,
        "L2 lambda on every convolution kernel (not biases or BN)",
        low=0,
        regularizes=1,
        from_model=True,
    ),
    "l2_dense": Domain(
        float,
        0.0,
        "L2 lambda on every hidden Dense kernel (not the output layer)",
        low=0,
        regularizes=1,
        from_model=True,
    ),
    "dropout": Domain(
        float,
        0.0,
        "rate of the model's Dropout layers (one is added before the output layer if it has none)",
        low=0,
        high=1,
        high_open=True,
        regularizes=1,
        from_model=True,
    ),
    "dropconnect": Domain(
        float,
        0.0,
        "DropConnect rate: fraction of hidden dense WEIGHTS dropped per step",
        low=0,
        high=1,
        high_open=True,
        regularizes=1,
    ),
    "input_noise": Domain(
        float,
        0.0,
        "stddev of Gaussian noise added to inputs scaled to [0, 1]",
        low=0,
        regularizes=1,
    ),
    "weight_noise": Domain(
        float,
        0.0,
        "stddev of Gaussian noise added to every conv and hidden dense kernel at each training "
        "step",
        low=0,
        regularizes=1,
    ),
    "batch_norm": Domain(
        bool,
        False,
        "batch normalization after every conv and hidden dense layer, for a model that has none",
        from_model=True,
    ),
    "batch_norm_momentum": Domain(
        float,
        0.99,
        "momentum of the moving mean and variance of every BatchNormalization layer",
        low=0,
        high=1,
        high_open=True,
        from_model=True,
    ),
    "flip": Domain(bool, False, "random horizontal flips", regularizes=1),
    "rotation": Domain(
        float, 0.0, "random rotation range in degrees", low=0, high=180, regularizes=1
    ),
    "width_shift": Domain(
        float,
        0.0,
        "random horizontal shift, fraction of the width",
        low=0,
        high=1,
        high_open=True,
        regularizes=1,
    ),
    "height_shift": Domain(
        float,
        0.0,
        "random vertical shift, fraction of the height",
        low=0,
        high=1,
        high_open=True,
        regularizes=1,
    ),
    "zoom": Domain(
        float,
        0.0,
        "random zoom range, fraction (0.1 = zoom between 0.9x and 1.1x)",
        low=0,
        high=1,
        high_open=True,
        regularizes=1,
    ),
    "early_stopping_patience": Domain(
        int,
        0,
        "epochs without an objective improvement before stopping; 0 = off",
        low=0,
        high=MAX_EPOCHS,
        regularizes=-1,
    ),
}
# The knobs a model carries itself (penalties, dropout rates, batch norm): left out of a file, they
# stay as the model has them; a tune built-in has none of them, so for it that means off.
FROM_MODEL: tuple[str, ...] = tuple(
    name for name, domain in REGULARIZATION_DOMAINS.items() if domain.from_model
)
TRAINING_DOMAINS: dict[str, Domain] = {
    "learning_rate": Domain(float, 1e-3, "optimizer learning rate", low=1e-12),
    "batch_size": Domain(int, 64, "images per training step", low=1, high=MAX_BATCH_SIZE),
    "optimizer": Domain(str, "adam", "optimizer", choices=OPTIMIZER_NAMES),
    "lr_schedule": Domain(
        str,
        "constant",
        "learning rate per epoch: constant, or cosine decay from learning_rate towards 0 over the "
        "epochs",
        choices=LR_SCHEDULES,
    ),
}
DOMAINS: dict[str, Domain] = {**REGULARIZATION_DOMAINS, **TRAINING_DOMAINS}
# The weight penalties: L1 and L2, each per layer group.
LAMBDAS: tuple[str, ...] = tuple(
    name for name in REGULARIZATION_DOMAINS if name.startswith(("l1_", "l2_"))
)

# Every hyperparameter at its default: no regularization at all.
DEFAULTS: dict[str, Scalar] = {name: domain.default for name, domain in DOMAINS.items()}
# Seed 000's own configuration: L2 1e-3 on its Dense64 kernel only, dropout 0.5, Adam 1e-3 with
# Keras's default batch of 32, no augmentation, no early stopping. Every study's first trial, so any
# result can be compared with the reference recipe.
BASELINE: dict[str, Scalar] = {**DEFAULTS, "l2_dense": 1e-3, "dropout": 0.5, "batch_size": 32}
# Where the seeds would start a practitioner: L2 1e-3 on the dense kernel (seed 000's, the middle
# of seed 002's 1e-4..1e-2), dropout 0.3 (inside seed 002's 0.2-0.5), horizontal flips, early
# stopping with seed 002's patience 5. No shifts or rotations: they pay off only over more epochs
# than a first trial gets (measured on 10,000 CIFAR-10 images, 15 epochs: flips alone 0.586, with
# 0.1 shifts 0.565). The warm-start trial, clamped into each study's ranges.
TYPICAL: dict[str, Scalar] = {
    **DEFAULTS,
    "l2_dense": 1e-3,
    "dropout": 0.3,
    "flip": True,
    "early_stopping_patience": 5,
}


# The limits of each threshold, declared once: the search-space schema validates the
# ``diagnosis:`` section against them (pydantic reads ``Annotated`` fields of a dataclass).
_Epochs = Annotated[int, Field(ge=2, strict=True)]
_Count = Annotated[int, Field(ge=1, strict=True)]
_Positive = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
_Fraction = Annotated[float, Field(ge=0, le=1, strict=True)]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Where the diagnosis draws its lines; the `diagnosis:` section of a search-space file sets
    any of them by name. Defaults are tuned for CIFAR-10-sized problems with accuracy measured on a
    few thousand images, whose epoch-to-epoch noise is about one accuracy point."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    # epochs; a trial pruned before this says nothing about its regime (2 is the least a slope
    # needs).
    min_epochs: _Epochs = 3
    # epochs averaged for every end value and for the validation minimum: damps single noisy epochs
    # while still reacting within an early-stopping patience window.
    smooth_epochs: _Count = 3
    # nats of val_data_loss - clean_train_loss at the end. exp(0.5) = 1.65: validation images get
    # 1.65x less probability on their true class (geometric mean) than training images, which no
    # well-regularized CIFAR-10 CNN shows (theirs stay around 0.1-0.3 nats).
    overfit_gap: _Positive = 0.5
    # relative rise of the end val_data_loss above its minimum (0.10 = 10%). Early-stopping tails
    # and noise move it a few percent; a climb past 10% is the classic overfitting U.
    overfit_rise: _Positive = 0.10
    # relative fall of clean_train_loss over the same epochs the validation loss rose (0.05 = 5%):
    # a rise with a falling training loss is overfitting; a rise with both rising is instability.
    overfit_train_fall: _Positive = 0.05
    # clean training accuracy, as a fraction of the way from chance (1/num_classes) to 1, below
    # which the model "cannot fit its training data": 0.5 -> 55% on 10 classes, where every
    # capable CIFAR-10 CNN that is not held back gets to 70-90%.
    underfit_accuracy: _Fraction = 0.5
    # |clean train accuracy - val accuracy| at or below which the two are "close" (0.05 = 5 points):
    # a held-back model generalizes as well as it fits.
    underfit_gap: _Fraction = 0.05
    # accuracy gained per epoch (least-squares slope over the last flat_window epochs) below which a
    # curve is flat. 0.01 = 1 point/epoch: three times the slope noise of 1-point epoch jitter.
    flat_slope: _Positive = 0.01
    # epochs the flatness slope is fitted over (fewer if the run is shorter).
    flat_window: _Epochs = 5
    # The early call (``pruner.early_regime``), made once, after this many epochs: by then a
    # CIFAR-10 CNN that can learn at all is well above chance.
    early_epochs: _Epochs = 3
    # clean training accuracy within this fraction of the way from chance to 1 (0.05 -> 14.5% on
    # 10 classes), and flat: the model cannot fit its data and never will at this strength.
    early_chance_margin: _Fraction = 0.05
    # nats of val_data_loss - clean_train_loss, twice ``overfit_gap``, with the validation loss
    # already past its minimum: overfitting this hard this early does not turn around.
    early_overfit_gap: _Positive = 1.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatSpec(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None


class IntSpec(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1


class CategoricalSpec(_Strict):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)


# What a searched hyperparameter looks like in a file; ``tune.engine.study`` turns each into the
# matching ``trial.suggest_*`` call. Named *Spec so they never shadow Optuna's distributions.
SearchSpec = FloatSpec | IntSpec | CategoricalSpec
ParamSpec = SearchSpec | Scalar
_SPECS: dict[str, type[SearchSpec]] = {
    "float": FloatSpec,
    "int": IntSpec,
    "categorical": CategoricalSpec,
}


def _raise(problem: object) -> None:
    """``problem`` is a message, or anything false (``cond and message``) when there is none."""
    if problem:
        raise ValueError(problem)


def _parse_distribution(domain: Domain, raw: dict[str, Any]) -> SearchSpec:
    kind = raw.get("type")
    if kind not in _SPECS:
        raise ValueError(f"'type' must be one of {list(_SPECS)}, got {kind!r}")
    dist = _SPECS[kind].model_validate(raw)
    if isinstance(dist, CategoricalSpec):
        for choice in dist.choices:
            _raise(domain.check(choice) and f"choice {choice!r} {domain.check(choice)}")
        return dist
    _raise(
        domain.kind not in (int, float)
        and f"a {domain.kind.__name__} parameter can only be fixed or categorical"
    )
    _raise(domain.kind is int and kind == "float" and "an integer parameter needs type 'int'")
    _raise(
        dist.low > dist.high and f"low <= high must hold, got low={dist.low!r}, high={dist.high!r}"
    )
    _raise(dist.log and dist.low <= 0 and f"log scale needs low > 0, got low={dist.low!r}")
    _raise(
        dist.log and kind == "float" and dist.step is not None and "log and step cannot be combined"
    )
    _raise(dist.step is not None and dist.step <= 0 and f"step must be > 0, got {dist.step!r}")
    for end in ("low", "high"):
        problem = domain.check(getattr(dist, end))
        _raise(problem and f"{end} {problem}")
    return dist


def parse_param(name: str, raw: Any) -> ParamSpec:  # noqa: ANN401 (raw YAML or JSON)
    """A fixed value or a distribution mapping, checked against the parameter's domain."""
    domain = DOMAINS[name]
    if isinstance(raw, dict):
        return _parse_distribution(domain, raw)
    _raise(domain.check(raw))
    return domain.kind(raw) if domain.kind in (int, float) else raw


class _ParamSection(_Strict):
    @field_validator("*", mode="before")
    @classmethod
    def _check(cls, raw: Any, info: ValidationInfo) -> Any:  # noqa: ANN401 (before validation)
        return raw if info.field_name not in DOMAINS else parse_param(info.field_name, raw)


def _param_fields(domains: dict[str, Domain]) -> dict[str, tuple[object, object]]:
    """A ``from_model`` knob left out is None: the model's own value, never overwritten."""
    return {
        name: (ParamSpec | None, Field(default=None, description=d.help))
        if d.from_model
        else (ParamSpec, Field(default=d.default, description=d.help))
        for name, d in domains.items()
    }


class SamplerSettings(_Strict):
    type: Literal["tpe", "random", "qmc"] = "tpe"
    seed: int | None = Field(0, ge=0, le=MAX_SEED)
    # Fewer than Optuna's 10 random trials, and pruning after 2 finished trials rather than 5: on
    # the race's task (make bench-peers) this reached KerasTuner Hyperband's best in 0.41x its time,
    # raced in one invocation (docs/results/cpu_speed/peers_new_defaults), where 10 and 5 needed
    # 1.1x.
    n_startup_trials: int = Field(5, ge=0, le=MAX_COUNT)
    multivariate: bool = True
    # TPE samples less where trials ended under- or over-regularized (an Optuna constraint per
    # trial).
    regime_aware: bool = False

    @model_validator(mode="after")
    def _regimes_need_tpe(self) -> SamplerSettings:
        _raise(
            self.regime_aware
            and self.type != "tpe"
            and f"regime_aware needs type 'tpe', got {self.type!r}"
        )
        return self


class PrunerSettings(_Strict):
    type: Literal["none", "median", "successive_halving", "hyperband"] = "median"
    n_startup_trials: int = Field(2, ge=0, le=MAX_COUNT)
    n_warmup_steps: int = Field(1, ge=0, le=MAX_EPOCHS)
    min_resource: int = Field(1, ge=1, le=MAX_EPOCHS)
    reduction_factor: int = Field(3, ge=2, le=MAX_EPOCHS)
    # Also stop a trial after diagnosis.early_epochs epochs when it is stuck at chance or already
    # overfitting hard (``tune.engine.diagnosis.early_call``), with that regime and reason.
    early_regime: bool = False


class StudySettings(_Strict):
    name: str | None = Field(None, min_length=1)
    objective: Literal[tuple(OBJECTIVES)] = DEFAULT_OBJECTIVE.metric  # type: ignore[valid-type]
    # Follows from the objective; still accepted (and checked) so older files and stored studies,
    # which spelled it out, keep loading. Never written back.
    direction: Direction | None = Field(None, exclude=True)
    trials: int = Field(20, ge=1, le=MAX_COUNT)
    timeout: float | None = Field(None, gt=0, le=MAX_TIMEOUT)
    sampler: SamplerSettings = SamplerSettings()
    pruner: PrunerSettings = PrunerSettings()
    baseline: bool = True
    # Enqueue the seeds' typical values (``TYPICAL``), clamped into the searched ranges, as an early
    # trial: a sensible config to compare with, and a good one in front of the user sooner.
    warm_start: bool = True
    enqueue: list[dict[str, Scalar]] = Field(default_factory=list)

    @field_validator("direction")
    @classmethod
    def _objective_direction(
        cls, value: Direction | None, info: ValidationInfo
    ) -> Direction | None:
        objective = OBJECTIVES.get(info.data.get("objective", ""))
        _raise(
            objective
            and value
            and value != objective.direction
            and f"{value!r} contradicts objective {objective.metric}, which is "
            f"{objective.direction}d; drop direction"
        )
        return value

    @field_validator("enqueue")
    @classmethod
    def _known_values(cls, entries: list[dict[str, Scalar]]) -> list[dict[str, Scalar]]:
        for number, entry in enumerate(entries):
            for name, value in entry.items():
                _raise(name not in DOMAINS and f"entry {number}: unknown hyperparameter {name!r}")
                problem = DOMAINS[name].check(value)
                _raise(problem and f"entry {number}: {name} {problem}")
        return entries


class DataSettings(_Strict):
    source: str = "cifar10"
    validation_size: StrictInt | StrictFloat = Field(5000, gt=0, le=MAX_COUNT)
    train_subset: int | None = Field(None, ge=1, le=MAX_COUNT)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    clean_train_size: int = Field(5000, ge=1, le=MAX_COUNT)

    @field_validator("validation_size")
    @classmethod
    def _fraction_below_one(cls, value: int | float) -> int | float:
        _raise(isinstance(value, float) and value >= 1 and f"a fraction must be < 1, got {value!r}")
        return value


_SOURCES = ("name", "file", "builder")


class ModelSettings(_Strict):
    """One of: ``name`` (a built-in), ``file`` (a saved ``.keras`` model) or ``builder``
    (``module:function`` or ``path.py:function``, returning a plain uncompiled model)."""

    name: str | None = None
    file: str | None = Field(None, min_length=1)
    builder: str | None = Field(None, min_length=1)
    weights: Literal["fresh", "keep"] = FRESH_WEIGHTS
    input_scale: Literal[INPUT_SCALES] = "auto"  # type: ignore[valid-type]
    # The file's (or the builder's source file's) hash when the study began; an export carries it so
    # a retrain refuses a model that changed since.
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="before")
    @classmethod
    def _built_in_by_default(cls, raw: Any) -> Any:  # noqa: ANN401 (before validation)
        if isinstance(raw, dict) and all(raw.get(key) is None for key in _SOURCES):
            return {**raw, "name": SEED_CNN}
        return raw

    @model_validator(mode="after")
    def _one_source(self) -> ModelSettings:
        given = [key for key in _SOURCES if getattr(self, key) is not None]
        _raise(len(given) > 1 and f"give one of name, file or builder, got {' and '.join(given)}")
        _raise(
            self.name is not None
            and self.name not in MODEL_NAMES
            and f"unknown model {self.name!r}; known: {list(MODEL_NAMES)}, or give a file or a "
            "builder"
        )
        _raise(
            self.builder is not None
            and ":" not in self.builder
            and f"builder {self.builder!r} needs the form 'module:function' or "
            "'path/to/file.py:function'"
        )
        _raise(
            self.weights == KEEP_WEIGHTS
            and self.file is None
            and "weights: keep needs a file: only a saved model has weights to keep"
        )
        return self

    def source(self) -> ModelSource:
        kind, ref = next(
            (kind, getattr(self, key))
            for key, kind in zip(_SOURCES, (BUILTIN, FILE, BUILDER))
            if getattr(self, key) is not None
        )
        return ModelSource(cast(ModelKind, kind), ref, self.weights, self.input_scale, self.sha256)


if TYPE_CHECKING:
    # What mypy sees of the two sections ``create_model`` builds from ``DOMAINS`` below, which it
    # cannot follow: the training section's own fields; every hyperparameter is read by name.
    class RegularizationSettings(_ParamSection):
        def __init__(self, **data: object) -> None: ...

    class TrainingSettings(_ParamSection):
        epochs: int
        precision: str

        def __init__(self, **data: object) -> None: ...

else:
    RegularizationSettings = create_model(
        "RegularizationSettings", __base__=_ParamSection, **_param_fields(REGULARIZATION_DOMAINS)
    )
    TrainingSettings = create_model(
        "TrainingSettings",
        __base__=_ParamSection,
        epochs=(int, Field(20, ge=1, le=MAX_EPOCHS, description="maximum epochs per trial")),
        precision=(
            Literal[PRECISIONS],
            Field(
                AUTO_PRECISION,
                description=(
                    "Keras dtype policy; auto: mixed_bfloat16 where the CPU or GPU has native "
                    "bfloat16, else float32"
                ),
            ),
        ),
        **_param_fields(TRAINING_DOMAINS),
    )


class Origin(_Strict):
    """Where an exported config came from: its study and trial and how that trial did, so a
    retrain can be traced back to them. ``tune run`` ignores it."""

    study: str
    trial: int = Field(ge=0)
    rank: int = Field(ge=1)
    objective: float
    val_accuracy: float | None = None
    best_epoch: int | None = Field(None, ge=1)
    regime: str
    reason: str


class SearchSpace(_Strict):
    study: StudySettings = StudySettings()
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    training: TrainingSettings = TrainingSettings()
    regularization: RegularizationSettings = RegularizationSettings()
    diagnosis: Thresholds = Thresholds()
    origin: Origin | None = None

    @model_validator(mode="after")
    def _enqueue_only_searched(self) -> SearchSpace:
        for number, entry in enumerate(self.study.enqueue):
            fixed = sorted(set(entry) - set(self.searched()))
            _raise(
                fixed
                and f"study.enqueue entry {number} sets {fixed}, which this space does not search"
            )
        return self

    def params(self) -> dict[str, ParamSpec]:
        """Every hyperparameter by name, fixed or searched, across both sections; a ``FROM_MODEL``
        knob left unset is absent: the model keeps its own."""
        training = self.training
        regularization = {
            name: value for name, value in dict(self.regularization).items() if value is not None
        }
        return {**regularization, **{name: getattr(training, name) for name in TRAINING_DOMAINS}}

    def searched(self) -> dict[str, SearchSpec]:
        return {n: p for n, p in self.params().items() if isinstance(p, BaseModel)}

    def train_settings(self, seed: int) -> TrainSettings:
        """What every trial of this study trains with, whatever the sampler picks."""
        return TrainSettings(
            model=self.model.source(),
            epochs=self.training.epochs,
            seed=seed,
            precision=self.training.precision,
            clean_train_size=self.data.clean_train_size,
            objective=self.objective,
        )

    @property
    def objective(self) -> Objective:
        return OBJECTIVES[self.study.objective]

    def study_name(self, path: Path | None = None) -> str:
        return self.study.name or (path.stem if path else "tune")

    def with_overrides(self, **sections: Mapping[str, object]) -> SearchSpace:
        """Apply CLI overrides (``data={'source': ...}``) and re-validate the result."""
        raw = self.to_dict()
        for section, values in sections.items():
            raw[section].update({k: v for k, v in values.items() if v is not None})
        try:
            return SearchSpace.model_validate(raw)
        except ValidationError as exc:
            raise SpaceError(_format_errors("command-line option", exc)) from None

    def with_fixed(
        self, values: Mapping[str, Scalar | None], *, study_name: str, origin: Origin | None
    ) -> SearchSpace:
        """The same study with ``values`` fixed (None unsets a ``FROM_MODEL`` knob: the model's own)
        and the study's ``origin``: what ``tune export`` writes. A config made up rather than taken
        from a trial (a baseline) has none."""
        raw = self.to_dict()
        for name, value in values.items():
            section = raw["training" if name in TRAINING_DOMAINS else "regularization"]
            if value is None:
                section.pop(name, None)
            else:
                section[name] = value
        raw["study"].update(name=study_name, trials=1, baseline=False, enqueue=[])
        raw["origin"] = origin and origin.model_dump()
        return SearchSpace.model_validate(raw)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def default_train_settings(
    model: ModelSource, epochs: int, seed: int, **fields: Any
) -> TrainSettings:
    """Training settings with a default study's values for everything ``fields`` leaves out: for
    callers that train without a search-space file (benchmarks, tests)."""
    return dataclasses.replace(
        SearchSpace().train_settings(seed), model=model, epochs=epochs, **fields
    )


def _format_error(origin: Path | str, error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"] if part not in _SPECS) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        message = "unknown key"
    return f"{origin}: {key}: {message}"


def _format_errors(origin: Path | str, exc: ValidationError) -> str:
    return "\n".join(_format_error(origin, e) for e in exc.errors())


def validate_space(raw: object, origin: Path | str) -> SearchSpace:
    """``origin`` names where ``raw`` came from (a file, or a study's stored copy) in every
    message."""
    if not isinstance(raw, dict):
        raise SpaceError(
            f"{origin}: (top level): expected a mapping of sections, got {type(raw).__name__}"
        )
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as exc:
        raise SpaceError(_format_errors(origin, exc)) from None


def load_space(path: Path) -> SearchSpace:
    """Read and validate a search-space file; every problem names the file and the key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpaceError(f"{path}: not a text file: byte {exc.start} is not UTF-8") from None
    try:
        raw = (
            json.loads(text, object_pairs_hook=_unique_keys)
            if Path(path).suffix == ".json"
            else yaml.load(text, _UniqueKeyLoader)
        )
    except json.JSONDecodeError as exc:
        raise SpaceError(f"{path}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from None
    except _DuplicateKey as exc:
        raise SpaceError(f"{path}: {exc}") from None
    return validate_space(raw or {}, Path(path))


class _DuplicateKey(ValueError):
    """A key given twice: YAML and JSON loaders silently keep the last, dropping a value or a
    whole section the user meant to set."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, object]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in the same "
                    "section"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    twice = next((key for key in keys if keys.count(key) > 1), None)
    if twice is not None:
        raise _DuplicateKey(f"key {twice!r} appears twice in the same object")
    return dict(pairs)


SPACE_FORMATS = ("yaml", "json")


def dump_space(space: SearchSpace, header: str = "", fmt: str = "yaml") -> str:
    """YAML with ``header`` as comments, or JSON, which has no comments: ``origin`` says it all."""
    if fmt == "json":
        return json.dumps(space.to_dict(), indent=2) + "\n"
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(space.to_dict(), sort_keys=False)
