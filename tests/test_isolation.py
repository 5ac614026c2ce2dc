"""Trials in child processes: results, pruning and errors cross the process boundary intact."""

from __future__ import annotations

import multiprocessing

import pytest

from tune.datasets import load_dataset, split_for_tuning
from tune.errors import TrainingDiverged
from tune.isolation import train_isolated
from tune.search_space import DEFAULTS

SPLITS = split_for_tuning(load_dataset("synthetic:200"), 60, None, seed=0)
SETTINGS = {"model_name": "seed_cnn", "epochs": 2, "seed": 0, "clean_train_size": 50}


class Pruned(Exception):
    pass


def test_epochs_reach_the_parent_and_the_result_comes_back() -> None:
    seen: list[tuple[int, dict[str, float]]] = []
    result = train_isolated(DEFAULTS, SPLITS, on_epoch=lambda e, logs: seen.append((e, logs)), **SETTINGS)
    assert [e for e, _ in seen] == [0, 1] and result.epochs_run == 2
    assert [logs["val_data_loss"] for _, logs in seen] == result.history["val_data_loss"]
    assert not multiprocessing.active_children()


def test_pruning_in_the_parent_stops_the_child() -> None:
    def prune(epoch: int, logs: dict[str, float]) -> None:
        raise Pruned(f"epoch {epoch}")

    with pytest.raises(Pruned, match="epoch 0"):
        train_isolated(DEFAULTS, SPLITS, on_epoch=prune, **{**SETTINGS, "epochs": 50})
    assert not multiprocessing.active_children()


def test_training_errors_reach_the_parent() -> None:
    with pytest.raises(TrainingDiverged, match="diverged"):
        train_isolated({**DEFAULTS, "learning_rate": 1e9}, SPLITS, on_epoch=lambda e, logs: None, **SETTINGS)
    with pytest.raises(RuntimeError, match="unknown model"):
        train_isolated(DEFAULTS, SPLITS, on_epoch=lambda e, logs: None, **{**SETTINGS, "model_name": "nope"})
