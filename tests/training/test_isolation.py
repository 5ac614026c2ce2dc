"""Trials in a child process: results, pruning and errors cross the process boundary intact, the
process serves the next trial after a finished, pruned or diverged one, and is replaced after a
bug, a death, or ``TRIALS_PER_PROCESS`` trials."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator

import pytest

from tune.contract import BUILTIN, DEFAULT_OBJECTIVE, ModelSource
from tune.data.sources import load_dataset
from tune.data.splits import split_for_tuning
from tune.engine.config import DEFAULTS, default_train_settings
from tune.errors import TrainingDiverged, TrialProcessDied
from tune.training.fit import train_model
from tune.training.isolated import (
    FIT_MODULE,
    TRIALS_PER_PROCESS,
    close_trial_process,
    train_isolated,
)

pytestmark = pytest.mark.integration

SPLITS = split_for_tuning(load_dataset("synthetic:200"), 60, None, seed=0)
SETTINGS = default_train_settings(ModelSource(), epochs=2, seed=0, clean_train_size=50)


class Pruned(Exception):
    pass


def trial_process_pid() -> int:
    (child,) = multiprocessing.active_children()
    return child.pid


@pytest.fixture(autouse=True)
def fresh_trial_process() -> Iterator[None]:
    close_trial_process()
    yield
    close_trial_process()
    assert not multiprocessing.active_children()


def test_the_fork_server_preloads_where_trials_train() -> None:
    assert train_model.__module__ == FIT_MODULE


def test_epochs_reach_the_parent_and_the_result_comes_back() -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    result = train_isolated(DEFAULTS, SPLITS, SETTINGS, lambda e, logs: seen.append((e, logs)))
    assert [e for e, _ in seen] == [0, 1] and result.epochs_run == 2
    assert [logs[DEFAULT_OBJECTIVE.metric] for _, logs in seen] == result.history[
        DEFAULT_OBJECTIVE.metric
    ]
    first = trial_process_pid()
    again = train_isolated(DEFAULTS, SPLITS, SETTINGS, lambda e, logs: None)
    assert trial_process_pid() == first, "the next trial trains in the same process"
    assert again.history == result.history, (
        "a trial does not depend on the trials before it in its process"
    )


def test_the_trial_process_is_replaced_after_its_quota_of_trials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tune.training.isolated.TRIALS_PER_PROCESS", 2)
    quick = default_train_settings(ModelSource(), epochs=1, seed=0, clean_train_size=50)
    train_isolated(DEFAULTS, SPLITS, quick, lambda e, logs: None)
    first = trial_process_pid()
    train_isolated(DEFAULTS, SPLITS, quick, lambda e, logs: None)
    assert not multiprocessing.active_children(), "retired after its second trial"
    train_isolated(DEFAULTS, SPLITS, quick, lambda e, logs: None)
    assert trial_process_pid() != first
    assert TRIALS_PER_PROCESS >= 2


def test_pruning_in_the_parent_stops_the_child() -> None:
    def prune(epoch: int, logs: dict[str, float]) -> None:
        raise Pruned(f"epoch {epoch}")

    with pytest.raises(Pruned, match="epoch 0"):
        train_isolated(
            DEFAULTS,
            SPLITS,
            default_train_settings(ModelSource(), epochs=50, seed=0, clean_train_size=50),
            prune,
        )
    pruned = trial_process_pid()
    assert train_isolated(DEFAULTS, SPLITS, SETTINGS, lambda e, logs: None).epochs_run == 2
    assert trial_process_pid() == pruned, "a pruned trial's process unwinds and serves the next"


def test_training_errors_reach_the_parent() -> None:
    with pytest.raises(TrainingDiverged, match="diverged"):
        train_isolated({**DEFAULTS, "learning_rate": 1e9}, SPLITS, SETTINGS, lambda e, logs: None)
    diverged = trial_process_pid()
    with pytest.raises(RuntimeError, match="KeyError: 'nope'"):
        train_isolated(
            DEFAULTS,
            SPLITS,
            default_train_settings(ModelSource(BUILTIN, "nope"), epochs=2, seed=0),
            lambda e, logs: None,
        )
    assert not multiprocessing.active_children(), "a process that hit a bug is not reused"
    train_isolated(DEFAULTS, SPLITS, SETTINGS, lambda e, logs: None)
    assert trial_process_pid() != diverged


def test_a_killed_training_process_fails_the_trial_with_the_signal_named() -> None:
    """What the out-of-memory killer does: SIGKILL to the trial's process mid-training."""

    def kill_the_child(epoch: int, logs: dict[str, float]) -> None:
        (child,) = multiprocessing.active_children()
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)

    with pytest.raises(
        TrialProcessDied, match="killed by SIGKILL \\(the out-of-memory killer sends SIGKILL\\)"
    ):
        train_isolated(
            DEFAULTS,
            SPLITS,
            default_train_settings(ModelSource(), epochs=5, seed=0, clean_train_size=50),
            kill_the_child,
        )
    assert not multiprocessing.active_children()
    assert train_isolated(DEFAULTS, SPLITS, SETTINGS, lambda e, logs: None).epochs_run == 2, (
        "the next trial gets a new process"
    )
