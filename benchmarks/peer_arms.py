"""The Keras-side peers that ``benchmarks.peers`` races against ``tune``: KerasTuner's Hyperband,
and Optuna's TPE with a median pruner and random search, written the way Optuna's Keras example
writes them (one process, ``model.fit`` with ``KerasPruningCallback``).

Each arm reads the same search-space file as the tune arm, samples exactly the hyperparameters it
searches, and builds, compiles and feeds the model with ``tune.training``'s own functions, so the
arms differ only in how they search. ``keras_tuner`` and ``optuna_integration`` are imported inside
the arms: running them needs the ``bench`` extra, importing this module does not.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import optuna
import tensorflow as tf
from pydantic import BaseModel

from benchmarks.race import Record
from tune.commands.run import load_splits
from tune.contract import VAL_ACCURACY, Params, Scalar, Splits
from tune.engine.config import (
    CategoricalSpec,
    FloatSpec,
    SearchSpace,
    SearchSpec,
    load_space,
)
from tune.engine.study import suggest_params
from tune.paths import store_dir
from tune.training.fit import compile_model, resolve_precision
from tune.training.models import build_model
from tune.training.pipeline import eval_dataset, train_dataset

if TYPE_CHECKING:
    import keras_tuner

HYPERBAND_FACTOR = 3
# KerasTuner advises as many iterations as the resources allow: the race's budget ends the search,
# never this count.
HYPERBAND_ITERATIONS = 1000


@dataclass(frozen=True)
class _Task:
    """What every Keras-side arm trains on, loaded once per arm."""

    space: SearchSpace
    splits: Splits
    validation: tf.data.Dataset
    # The sampler seed of the space, which tune's own trials train with too (plus the trial number).
    seed: int

    @classmethod
    def load(cls, space_file: Path) -> _Task:
        space = load_space(space_file)
        seed = space.study.sampler.seed or 0
        keras.utils.set_random_seed(seed)
        splits = load_splits(space)
        return cls(space, splits, eval_dataset(splits.x_val, splits.y_val), seed)

    def model(self, params: Params) -> keras.Model:
        """The policy is set before every build: ``keras.backend.clear_session()`` between trials
        resets it."""
        keras.mixed_precision.set_global_policy(resolve_precision(self.space.training.precision))
        model, facts = build_model(
            self.space.model.source(),
            params,
            self.splits.x_train.shape[1:],
            len(self.splits.class_names),
        )
        compile_model(model, params, logits=facts.logits)
        return model

    def fit(
        self,
        model: keras.Model,
        params: Params,
        callbacks: list[keras.callbacks.Callback],
        **schedule: Any,
    ) -> keras.callbacks.History:
        """The one training call of every Keras-side arm; ``schedule`` carries Hyperband's epochs
        and initial epoch, which replace the space's epochs."""
        return model.fit(
            train_dataset(
                self.splits.x_train, self.splits.y_train, int(params["batch_size"]), self.seed
            ),
            validation_data=self.validation,
            shuffle=False,
            verbose=0,
            callbacks=[*callbacks, _early_stopping(params)],
            **{"epochs": self.space.training.epochs, **schedule},
        )


class _EpochRecorder(keras.callbacks.Callback):
    """Goes first among the callbacks, so an epoch is recorded before a pruner can end its trial."""

    def __init__(self, record: Record, trial: int) -> None:
        super().__init__()
        self._record = record
        self._trial = trial

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._record(self._trial, epoch, float((logs or {})[VAL_ACCURACY]))


def _early_stopping(params: Params) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(
        monitor=VAL_ACCURACY,
        mode="max",
        patience=int(params["early_stopping_patience"]),
        restore_best_weights=True,
    )


def declare(hp: keras_tuner.HyperParameters, name: str, spec: SearchSpec) -> Scalar:
    """The KerasTuner twin of ``tune.engine.study``'s suggestion: same name, range and scale.
    KerasTuner multiplies by the step on a log scale, so a log int gets none (Optuna steps it by
    1)."""
    if isinstance(spec, CategoricalSpec):
        return hp.Choice(name, spec.choices)
    sampling = "log" if spec.log else "linear"
    if isinstance(spec, FloatSpec):
        return hp.Float(name, spec.low, spec.high, step=spec.step, sampling=sampling)
    return hp.Int(
        name, spec.low, spec.high, step=None if spec.log else spec.step, sampling=sampling
    )


def hp_params(hp: keras_tuner.HyperParameters, space: SearchSpace) -> dict[str, Scalar]:
    """Every hyperparameter of one KerasTuner trial, as ``suggest_params`` gives them to Optuna's.
    Declaring a name again returns its value, so build and fit read the same trial."""
    return {
        name: declare(hp, name, spec) if isinstance(spec, BaseModel) else spec
        for name, spec in space.params().items()
    }


def hyperband(space_file: Path, record: Record) -> None:
    """KerasTuner's Hyperband on validation accuracy, with its checkpoints in the arm's store."""
    import keras_tuner

    task = _Task.load(space_file)
    trials = itertools.count()

    class PeerHyperModel(keras_tuner.HyperModel):
        def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
            return task.model(hp_params(hp, task.space))

        def fit(
            self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any
        ) -> keras.callbacks.History:
            """KerasTuner hands over its own callbacks and Hyperband's epochs; the data are the
            task's."""
            callbacks = [_EpochRecorder(record, next(trials)), *kwargs.pop("callbacks", [])]
            return task.fit(model, hp_params(hp, task.space), callbacks, **kwargs)

    tuner = keras_tuner.Hyperband(
        PeerHyperModel(),
        objective=keras_tuner.Objective(VAL_ACCURACY, direction="max"),
        max_epochs=task.space.training.epochs,
        factor=HYPERBAND_FACTOR,
        hyperband_iterations=HYPERBAND_ITERATIONS,
        seed=task.seed,
        directory=store_dir(),
        project_name="hyperband",
        overwrite=True,
    )
    tuner.search()


def optuna_tpe_median(space_file: Path, record: Record) -> None:
    """Optuna's documented Keras recipe: TPE, and a median pruner fed by
    ``KerasPruningCallback``."""
    _optuna_search(space_file, record, optuna.samplers.TPESampler, optuna.pruners.MedianPruner())


def random_search(space_file: Path, record: Record) -> None:
    """The floor every tuner has to beat: random sampling, never pruned, in the same loop."""
    _optuna_search(space_file, record, optuna.samplers.RandomSampler, optuna.pruners.NopPruner())


def _optuna_search(
    space_file: Path,
    record: Record,
    sampler: Callable[..., optuna.samplers.BaseSampler],
    pruner: optuna.pruners.BasePruner,
) -> None:
    from optuna_integration import KerasPruningCallback

    task = _Task.load(space_file)

    def objective(trial: optuna.Trial) -> float:
        keras.backend.clear_session()
        params = suggest_params(trial, task.space)
        callbacks = [
            _EpochRecorder(record, trial.number),
            KerasPruningCallback(trial, VAL_ACCURACY),
        ]
        history = task.fit(task.model(params), params, callbacks)
        return max(history.history[VAL_ACCURACY])

    study = optuna.create_study(
        direction="maximize", sampler=sampler(seed=task.seed), pruner=pruner
    )
    study.optimize(objective, n_trials=task.space.study.trials, timeout=task.space.study.timeout)
