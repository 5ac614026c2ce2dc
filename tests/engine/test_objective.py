"""The objective, the study and the trial record on in-memory Optuna studies with a scripted
trainer and an in-memory tracker: milliseconds, no TensorFlow, no MLflow."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tests.support.scripted import EPOCHS, SPLITS, ScriptedTrainer, lost_causes, regularized_curves
from tests.support.spaces import tiny_space
from tests.support.tracking import RecordingTracker
from tune.contract import (
    DEFAULT_OBJECTIVE,
    GAP_LOSS,
    EpochHook,
    Params,
    Splits,
    Trainer,
    TrainingResult,
    TrainSettings,
    TrialAttr,
)
from tune.engine import trial_record
from tune.engine.config import SearchSpace
from tune.engine.diagnosis import INCONCLUSIVE, OVER_REGULARIZED, UNDER_REGULARIZED
from tune.engine.objective import (
    NO_EPOCH,
    REGIME_CONSTRAINT,
    TrialContext,
    TrialEnd,
    make_objective,
)
from tune.engine.study import (
    SPACE_ATTR,
    baseline_params,
    load_existing_study,
    make_pruner,
    make_sampler,
    open_study,
    stored_space,
    suggest_params,
    warm_start_params,
)
from tune.errors import Interrupted, SpaceError, StudyError
from tune.runtime.processes import handling, interrupt

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEED = 100


def space(**sections: dict[str, Any]) -> SearchSpace:
    raw = tiny_space(
        training={"epochs": EPOCHS},
        regularization={
            "l2_conv": 0.0,
            "l2_dense": 0.001,
            "dropout": {"type": "float", "low": 0.0, "high": 1.0 - 1e-9},
        },
    )
    for section, values in sections.items():
        raw[section].update(values)
    return SearchSpace.model_validate(raw)


def run(
    trials: list[dict[str, Any]], trainer: Trainer | None = None,
    pruner: optuna.pruners.BasePruner | None = None, **sections: dict[str, Any],
) -> tuple[optuna.Study, RecordingTracker, Any]:
    """The given dropout values as trials of an in-memory study, through the real objective."""
    study = optuna.create_study(pruner=pruner or optuna.pruners.NopPruner())
    for params in trials:
        study.enqueue_trial(params)
    tracker, trainer = RecordingTracker(), trainer or ScriptedTrainer()
    ctx = TrialContext(space(**sections), SPLITS, "scripted", "parent-run", SEED)
    study.optimize(make_objective(ctx, tracker, trainer), n_trials=len(trials), catch=(Exception,))
    return study, tracker, trainer


def test_a_complete_trial_is_valued_at_its_best_epoch_and_recorded_everywhere() -> None:
    study, tracker, trainer = run([{"dropout": 0.5}])
    (trial,) = study.trials
    expected = regularized_curves(0.5)
    assert trial.state == TrialState.COMPLETE and trial.value == min(
        expected[DEFAULT_OBJECTIVE.metric]
    )
    assert trial.intermediate_values == dict(enumerate(expected[DEFAULT_OBJECTIVE.metric]))
    assert trial.user_attrs["regime"] == "balanced"
    assert trial.user_attrs["curves"][DEFAULT_OBJECTIVE.metric] == pytest.approx(
        expected[DEFAULT_OBJECTIVE.metric]
    )
    (params, settings), = trainer.calls
    assert params == {**space().params(), "dropout": 0.5}
    assert (settings.seed, settings.epochs, settings.clean_train_size) == (
        SEED + trial.number,
        EPOCHS,
        200,
    )
    run_ = tracker.of_trial(trial.number)
    assert trial.user_attrs[TrialAttr.RUN_ID] in tracker.runs and run_.parent == "parent-run"
    assert run_.series(DEFAULT_OBJECTIVE.metric)[:EPOCHS] == expected[DEFAULT_OBJECTIVE.metric]
    assert len(run_.series(GAP_LOSS)) == EPOCHS
    assert run_.series("best_epoch") == [EPOCHS] and run_.series("epochs_run") == [EPOCHS]
    assert (
        run_.diagnosis == trial_record.trial_diagnosis(trial)
        and run_.diagnosis.regime == "balanced"
    )
    assert run_.title == "scripted trial 0 (complete)"
    assert run_.state == TrialState.COMPLETE


@pytest.mark.parametrize(("dropout", "regime"), [(0.1, UNDER_REGULARIZED), (0.9, OVER_REGULARIZED)])
def test_the_stored_diagnosis_reads_back_as_it_was_made(dropout: float, regime: str) -> None:
    study, tracker, _ = run([{"dropout": dropout}])
    (trial,) = study.trials
    diagnosis = trial_record.trial_diagnosis(trial)
    assert diagnosis == tracker.of_trial(0).diagnosis and diagnosis.regime == regime
    assert "reason" not in diagnosis.numbers and diagnosis.numbers["epochs"] == EPOCHS
    assert trial_record.trial_curves(trial)[DEFAULT_OBJECTIVE.metric] == pytest.approx(
        regularized_curves(dropout)[DEFAULT_OBJECTIVE.metric]
    )


def test_a_pruned_trial_stops_where_the_pruner_says_and_is_recorded_as_pruned() -> None:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study, tracker, _ = run([{"dropout": 0.5}, {"dropout": 0.9}], pruner=pruner)
    pruned = study.trials[1]
    assert pruned.state == TrialState.PRUNED and list(pruned.intermediate_values) == [0]
    assert pruned.user_attrs["regime"] == INCONCLUSIVE
    assert "only 1 epoch recorded" in pruned.user_attrs["diagnosis"]["reason"]
    assert len(pruned.user_attrs["curves"][DEFAULT_OBJECTIVE.metric]) == 1
    assert tracker.of_trial(1).state == TrialState.PRUNED


@pytest.mark.parametrize("early_regime", [True, False])
def test_the_early_regime_call_prunes_lost_causes_with_their_regime_and_reason(
    early_regime: bool,
) -> None:
    pruner = {"pruner": {"type": "none", "early_regime": early_regime}}
    study, tracker, _ = run(
        [{"dropout": d} for d in (0.95, 0.0, 0.5)],
        ScriptedTrainer(script=lost_causes),
        study=pruner,
    )
    stuck, overfit, balanced = study.trials
    assert balanced.state == TrialState.COMPLETE and len(balanced.intermediate_values) == EPOCHS
    if not early_regime:
        assert stuck.state == overfit.state == TrialState.COMPLETE
        return
    for trial, regime in ((stuck, OVER_REGULARIZED), (overfit, UNDER_REGULARIZED)):
        assert trial.state == TrialState.PRUNED and len(trial.intermediate_values) == 3
        diagnosis = trial_record.trial_diagnosis(trial)
        assert diagnosis.regime == regime and diagnosis.reason.startswith(
            "early call after 3 epochs"
        )
        assert diagnosis.numbers["epochs"] == 3
        assert tracker.of_trial(trial.number).diagnosis == diagnosis
        assert tracker.of_trial(trial.number).state == TrialState.PRUNED


@pytest.mark.parametrize("regime_aware", [True, False])
def test_a_regime_aware_study_marks_under_and_over_regularized_trials_infeasible(
    regime_aware: bool,
) -> None:
    sampler = {"sampler": {"type": "tpe", "regime_aware": regime_aware}}
    study, _, _ = run([{"dropout": d} for d in (0.1, 0.5, 0.9)], study=sampler)
    constraints = [trial.constraints for trial in study.trials]
    if regime_aware:
        assert constraints == [
            {REGIME_CONSTRAINT: 1.0},
            {REGIME_CONSTRAINT: 0.0},
            {REGIME_CONSTRAINT: 1.0},
        ]
        # TPE reads them: the infeasible trials go to its "bad" group whatever their values
        assert [
            optuna.samplers._tpe.sampler._get_infeasible_trial_score(t) for t in study.trials
        ] == [1.0, 0.0, 1.0]
    else:
        assert constraints == [{}, {}, {}]


def test_a_diverged_trial_fails_with_the_epochs_it_finished() -> None:
    trainer = ScriptedTrainer(diverges_after=lambda params: 2 if params["dropout"] > 0.8 else None)
    study, tracker, _ = run([{"dropout": 0.95}, {"dropout": 0.5}], trainer)
    failed, complete = study.trials
    assert failed.state == TrialState.FAIL and complete.state == TrialState.COMPLETE
    assert len(failed.user_attrs["curves"][DEFAULT_OBJECTIVE.metric]) == 2
    assert (
        tracker.of_trial(0).state == TrialState.FAIL
        and tracker.of_trial(0).title == "scripted trial 0 (fail)"
    )
    assert trial_record.completed_trials(study.trials) == [complete]
    reason = "training diverged in epoch 3/8: loss=nan"
    assert trial_record.trial_failure(failed) == tracker.of_trial(0).failure == reason, (
        "stored, not only printed"
    )
    assert trial_record.trial_failure(complete) is None and tracker.of_trial(1).failure is None


def test_any_error_inside_a_trial_fails_that_trial_with_its_reason_and_the_study_goes_on() -> None:
    scripted = ScriptedTrainer()

    def crashes_on_high_dropout(
        params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
    ) -> TrainingResult:
        if params["dropout"] > 0.8:
            raise ValueError("a bug inside TensorFlow")
        return scripted(params, splits, settings, on_epoch)

    study, tracker, _ = run([{"dropout": 0.95}, {"dropout": 0.5}], crashes_on_high_dropout)
    failed, complete = study.trials
    assert (failed.state, complete.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert (
        trial_record.trial_failure(failed)
        == "ValueError: a bug inside TensorFlow"
        == tracker.of_trial(0).failure
    )
    assert tracker.of_trial(0).diagnosis.reason == NO_EPOCH


def test_a_trial_that_fails_before_its_first_epoch_has_no_curves() -> None:
    study, tracker, _ = run([{"dropout": 0.5}], ScriptedTrainer(diverges_after=lambda params: 0))
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial_record.trial_diagnosis(trial).reason == NO_EPOCH
    assert trial_record.trial_curves(trial) is None
    assert (
        tracker.of_trial(0).diagnosis.reason == NO_EPOCH
        and "best_epoch" not in tracker.of_trial(0).metrics
    )


def test_a_trial_without_a_record_reads_as_inconclusive() -> None:
    study = optuna.create_study()
    study.ask()
    (running,) = study.trials
    assert trial_record.trial_regime(running) == INCONCLUSIVE
    assert trial_record.trial_diagnosis(running).reason == trial_record.NOT_RECORDED
    assert (
        trial_record.diagnosis_numbers(running) == {} and trial_record.trial_curves(running) is None
    )


def test_tpe_finds_the_balanced_band_on_scripted_curves() -> None:
    """A whole search in milliseconds: the objective's U along dropout, its regimes in order."""
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=8)
    study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.NopPruner())
    tracker, trainer = RecordingTracker(), ScriptedTrainer()
    ctx = TrialContext(space(), SPLITS, "scripted", "parent-run", SEED)
    study.optimize(make_objective(ctx, tracker, trainer), n_trials=30)
    assert 0.3 < study.best_params["dropout"] < 0.7
    by_dropout = sorted(study.trials, key=lambda trial: trial.params["dropout"])
    regimes = [trial_record.trial_regime(trial) for trial in by_dropout]
    first_over = regimes.index(OVER_REGULARIZED)
    assert UNDER_REGULARIZED not in regimes[first_over:] and regimes[0] == UNDER_REGULARIZED
    assert len(tracker.runs) == 30 and {run.state for run in tracker.runs.values()} == {
        TrialState.COMPLETE
    }


def test_suggest_params_gives_every_hyperparameter_fixed_or_searched() -> None:
    params = suggest_params(optuna.trial.FixedTrial({"dropout": 0.25}), space())
    assert params == {**space().params(), "dropout": 0.25}


def test_sampler_and_pruner_follow_the_space() -> None:
    study = space(
        study={
            "sampler": {"type": "random", "seed": 1},
            "pruner": {"type": "hyperband", "min_resource": 2},
        }
    ).study
    assert isinstance(make_sampler(study.sampler, 1), optuna.samplers.RandomSampler)
    pruner = make_pruner(study.pruner, EPOCHS)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner(space().study.pruner, EPOCHS), optuna.pruners.MedianPruner)


def test_baseline_keeps_what_the_space_can_represent() -> None:
    assert baseline_params(space()) == {"dropout": 0.5}
    narrow = space(regularization={"dropout": {"type": "float", "low": 0.0, "high": 0.3}})
    assert baseline_params(narrow) == {}


def test_the_warm_start_moves_the_seeds_typical_values_into_the_space() -> None:
    assert warm_start_params(space()) == {"dropout": 0.3}
    regularization = {
        "l2_dense": {
            "type": "float",
            "low": 0.01,
            "high": 0.1,
            "log": True,
        },  # 1e-3 clipped up to 0.01
        "dropout": {
            "type": "float",
            "low": 0.0,
            "high": 0.7,
            "step": 0.25,
        },  # 0.3 onto the grid: 0.25
        "l1_dense": {
            "type": "categorical",
            "choices": [0.001, 0.0001],
        },  # 0 is not a choice: the nearest
        "flip": {
            "type": "categorical",
            "choices": [False],
        },  # True is not a choice, nothing is near it
        "early_stopping_patience": {"type": "int", "low": 8, "high": 12},  # 5 clipped up to 8
    }
    assert warm_start_params(space(regularization=regularization)) == {
        "l2_dense": 0.01, "dropout": 0.25, "l1_dense": 0.0001, "early_stopping_patience": 8,
    }


@pytest.fixture
def journal(tmp_path: Path) -> str:
    return f"journal:{tmp_path / 'journal.log'}"


def test_opening_twice_resumes_with_one_baseline_and_the_space_stored(journal: str) -> None:
    the_space = space(study={"enqueue": [{"dropout": 0.1}], "warm_start": True})
    first = open_study(the_space, "resumed", journal, "space.yaml")
    again = open_study(the_space, "resumed", journal, "space.yaml")
    waiting = again.get_trials(states=(TrialState.WAITING,))
    assert [trial.system_attrs["fixed_params"] for trial in waiting] == [
        {"dropout": 0.5},
        {"dropout": 0.3},
        {"dropout": 0.1},
    ]
    assert [trial.user_attrs.get("baseline") for trial in waiting] == [True, None, None]
    assert [trial.user_attrs.get("warm_start") for trial in waiting] == [None, True, None]
    cold = open_study(
        space(study={"warm_start": False, "baseline": False}), "cold", journal, "space.yaml"
    )
    assert not cold.get_trials(states=(TrialState.WAITING,))
    assert stored_space(first) == the_space == stored_space(load_existing_study("resumed", journal))


def test_a_resumed_study_proposes_new_parameters(journal: str) -> None:
    """Re-seeded the same way on every run, the sampler once repeated the first run's trials."""
    the_space = space(study={"sampler": {"type": "random", "seed": 7}, "baseline": False})
    proposed = []
    for _ in range(2):
        study = open_study(the_space, "reseeded", journal, "space.yaml")
        study.optimize(lambda trial: suggest_params(trial, the_space)["dropout"], n_trials=3)
        proposed.append([trial.params["dropout"] for trial in study.trials[-3:]])
    assert not set(proposed[0]) & set(proposed[1])


def test_reading_commands_never_create_a_study(journal: str, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study has been run"):
        load_existing_study("missing", journal)
    assert not (tmp_path / "journal.log").exists()
    open_study(space(), "present", journal, "space.yaml")
    with pytest.raises(StudyError, match=r"'missing' not found in .*studies there: present"):
        load_existing_study("missing", journal)


def test_a_study_not_made_by_tune_has_no_space(journal: str) -> None:
    study = optuna.create_study(study_name="foreign", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal.removeprefix("journal:"))))
    assert SPACE_ATTR not in study.user_attrs
    with pytest.raises(StudyError, match="'foreign' was not created by tune run"):
        stored_space(study)


def test_a_stored_space_that_no_longer_validates_is_one_clear_error() -> None:
    """A study from before the per-group lambdas stores ``l2``: reading it must not crash."""
    study = optuna.create_study(study_name="old")
    study.set_user_attr(SPACE_ATTR, {**space().to_dict(), "regularization": {"l2": 0.001}})
    with pytest.raises(
        SpaceError,
        match=r"^the search space stored in study 'old': regularization\.l2: unknown key$",
    ):
        stored_space(study)


class SignalledTracker(RecordingTracker):
    """Sends this process SIGTERM once, from inside a store write, then goes on writing: a real
    signal landing where SQLAlchemy would be mid-transaction."""

    def __init__(self, during: str, trial: int) -> None:
        super().__init__()
        self.during, self.trial, self.sent = during, trial, False

    def _signal(self, call: str, run_id: str) -> None:
        if call == self.during and self.runs[run_id].number == self.trial and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # Python runs the handler in here, mid-write

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        items = list(metrics.items())
        super().log_metrics(run_id, dict(items[:1]), step)
        self._signal("log_metrics", run_id)
        super().log_metrics(run_id, dict(items[1:]), step)

    def finish_trial(self, run_id: str, end: TrialEnd) -> None:
        self._signal("finish_trial", run_id)
        super().finish_trial(run_id, end)


def run_signalled(tracker: SignalledTracker, trials: int) -> optuna.Study:
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    ctx = TrialContext(space(), SPLITS, "scripted", "parent-run", SEED)
    with handling((signal.SIGTERM,), interrupt), pytest.raises(Interrupted) as stopped:
        study.optimize(
            make_objective(ctx, tracker, ScriptedTrainer()), n_trials=trials, catch=(Exception,)
        )
    assert stopped.value.signum == signal.SIGTERM
    return study


def test_a_stop_signal_during_an_epochs_write_waits_for_the_write_then_fails_the_trial() -> None:
    tracker = SignalledTracker("log_metrics", trial=0)
    (trial,) = run_signalled(tracker, trials=3).trials
    assert trial.state == TrialState.FAIL and trial_record.trial_failure(trial) == "interrupted"
    run = tracker.of_trial(0)
    assert run.state == TrialState.FAIL and run.failure == "interrupted"
    per_key = {key: [step for step, _ in values if step < 2] for key, values in run.metrics.items()}
    assert per_key and all(steps == [0] for steps in per_key.values()), (
        "epoch 0 written whole, nothing after"
    )


def test_a_stop_signal_while_a_finished_trial_is_recorded_keeps_it_complete_and_stops_the_next() -> None:  # noqa: E501 - the name says what it checks
    tracker = SignalledTracker("finish_trial", trial=0)
    done, interrupted = run_signalled(tracker, trials=3).trials
    assert done.state == TrialState.COMPLETE and tracker.of_trial(0).state == TrialState.COMPLETE
    assert interrupted.state == TrialState.FAIL and tracker.of_trial(1).failure == "interrupted"
    assert not tracker.of_trial(1).metrics.get(DEFAULT_OBJECTIVE.metric), (
        "stopped before its first epoch"
    )
