"""The trial's terms: one best epoch, one objective, gaps and summaries on scripted curves."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import curves_from

from tune import contract
from tune.contract import OBJECTIVE, TrainingResult, at_best_epoch, best_epoch, generalization_gaps


def test_the_objective_is_the_penalty_free_validation_loss() -> None:
    assert OBJECTIVE == contract.VAL_DATA_LOSS and contract.DIRECTION == "minimize"
    assert set(contract.HONEST_CURVES) < set(contract.METRICS)
    assert OBJECTIVE in contract.HONEST_CURVES


def test_best_epoch_is_the_first_lowest_objective_as_a_0_based_index() -> None:
    assert best_epoch({OBJECTIVE: [1.0, 0.7, 0.7, 0.9], "val_loss": [0.1, 0.2, 0.3, 0.4]}) == 1
    with pytest.raises(ValueError, match=OBJECTIVE):
        best_epoch({"val_loss": [1.0]})
    with pytest.raises(ValueError, match=OBJECTIVE):
        best_epoch({OBJECTIVE: []})


def test_training_result_reads_its_numbers_at_the_best_epoch() -> None:
    curves = curves_from([1.0, 0.8, 0.6], [1.2, 0.9, 1.1], [0.5, 0.6, 0.7], [0.4, 0.55, 0.5])
    result = TrainingResult(curves, stopped_early=True)
    assert (result.best_epoch, result.epochs_run, result.objective) == (1, 3, 0.9)


def test_summary_at_the_best_epoch_counts_epochs_from_one() -> None:
    curves = curves_from([1.0, 0.8, 0.6], [1.2, 0.9, 1.1], [0.5, 0.6, 0.7], [0.4, 0.55, 0.5])
    summary = at_best_epoch(curves)
    assert summary["best_epoch"] == 2 and summary["epochs_run"] == 3
    assert summary[f"best_{OBJECTIVE}"] == 0.9 and summary["best_clean_train_loss"] == 0.8
    assert set(summary) == {f"best_{key}" for key in contract.METRICS} | {"best_epoch", "epochs_run"}


def test_generalization_gaps_per_epoch() -> None:
    curves = {"clean_train_loss": [1.0, 0.5], "val_data_loss": [1.25, 1.0],
              "clean_train_accuracy": [0.5, 0.75], "val_accuracy": [0.5, 0.5]}
    assert generalization_gaps(curves) == {"gap_loss": [0.25, 0.5], "gap_accuracy": [0.0, 0.25]}


def test_import_loads_no_framework() -> None:
    code = ("import sys, tune.contract; print(sorted(m for m in "
            "('tensorflow', 'keras', 'optuna', 'mlflow', 'matplotlib', 'pydantic') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
