"""The trial's terms: one best epoch, one objective, gaps and summaries on scripted curves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.scripted import curves_from
from tune import contract
from tune.contract import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    Objective,
    TrainingResult,
    at_best_epoch,
    best_epoch,
    generalization_gaps,
)

LOSS_OBJECTIVE, ACCURACY_OBJECTIVE = (
    OBJECTIVES[contract.VAL_DATA_LOSS],
    OBJECTIVES[contract.VAL_ACCURACY],
)


def test_the_default_objective_is_the_penalty_free_validation_loss() -> None:
    assert DEFAULT_OBJECTIVE == Objective(contract.VAL_DATA_LOSS, "minimize")
    assert ACCURACY_OBJECTIVE == Objective(contract.VAL_ACCURACY, "maximize")
    assert set(contract.HONEST_CURVES) < set(contract.METRICS)
    assert {objective.metric for objective in OBJECTIVES.values()} <= set(contract.HONEST_CURVES)


def test_best_epoch_is_the_first_best_objective_as_a_0_based_index() -> None:
    curves = {
        contract.VAL_DATA_LOSS: [1.0, 0.7, 0.7, 0.9],
        contract.VAL_ACCURACY: [0.5, 0.6, 0.7, 0.7],
    }
    assert best_epoch(curves, LOSS_OBJECTIVE) == 1
    assert best_epoch(curves, ACCURACY_OBJECTIVE) == 2
    with pytest.raises(ValueError, match=contract.VAL_DATA_LOSS):
        best_epoch({"val_loss": [1.0]}, LOSS_OBJECTIVE)
    with pytest.raises(ValueError, match=contract.VAL_ACCURACY):
        best_epoch({contract.VAL_ACCURACY: []}, ACCURACY_OBJECTIVE)


def test_sorting_by_the_objective_key_puts_the_best_first() -> None:
    assert sorted([0.9, 0.5, 0.7], key=LOSS_OBJECTIVE.key) == [0.5, 0.7, 0.9]
    assert sorted([0.5, 0.9, 0.7], key=ACCURACY_OBJECTIVE.key) == [0.9, 0.7, 0.5]


@pytest.mark.parametrize(
    ("objective", "best", "value"), [(LOSS_OBJECTIVE, 1, 0.9), (ACCURACY_OBJECTIVE, 2, 0.5)]
)
def test_training_result_reads_its_numbers_at_the_best_epoch_of_its_objective(
    objective: Objective,
    best: int,
    value: float,
) -> None:
    curves = curves_from([1.0, 0.8, 0.6], [1.2, 0.9, 1.1], [0.5, 0.6, 0.7], [0.4, 0.45, 0.5])
    result = TrainingResult(curves, True, objective)
    assert (result.best_epoch, result.epochs_run, result.value) == (best, 3, value)


def test_summary_at_the_best_epoch_counts_epochs_from_one() -> None:
    curves = curves_from([1.0, 0.8, 0.6], [1.2, 0.9, 1.1], [0.5, 0.6, 0.7], [0.4, 0.55, 0.5])
    summary = at_best_epoch(curves, DEFAULT_OBJECTIVE)
    assert summary["best_epoch"] == 2 and summary["epochs_run"] == 3
    assert (
        summary[f"best_{DEFAULT_OBJECTIVE.metric}"] == 0.9
        and summary["best_clean_train_loss"] == 0.8
    )
    assert set(summary) == {f"best_{key}" for key in contract.METRICS} | {
        "best_epoch",
        "epochs_run",
    }
    assert at_best_epoch(curves, ACCURACY_OBJECTIVE)["best_epoch"] == 2


def test_generalization_gaps_per_epoch() -> None:
    curves = {"clean_train_loss": [1.0, 0.5], "val_data_loss": [1.25, 1.0],
              "clean_train_accuracy": [0.5, 0.75], "val_accuracy": [0.5, 0.5]}
    assert generalization_gaps(curves) == {"gap_loss": [0.25, 0.5], "gap_accuracy": [0.0, 0.25]}


@pytest.mark.integration
def test_import_loads_no_framework() -> None:
    code = (
        "import sys, tune.contract; print(sorted(m for m in ('tensorflow', 'keras', 'optuna', "
        "'mlflow', 'matplotlib', 'pydantic') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
