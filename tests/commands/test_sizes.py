"""``tune run --data-sizes``: one study per training-set size through the real ``run_study``
(journal, MLflow, report) with a scripted trainer for which more data acts as more
regularization."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.support.processes import tune_cli
from tests.support.scripted import EPOCHS, ScriptedTrainer, describe_scripted, regularized_curves
from tests.support.spaces import tiny_space, write_space
from tune.commands.run import RunOverrides, run_study
from tune.commands.sizes import parse_sizes, run_data_sizes
from tune.contract import EpochHook, Params, Splits, TrainingResult, TrainSettings
from tune.errors import SpaceError
from tune.paths import report_dir
from tune.report.data_sizes import FIGURE_FILE, TABLE_FILE
from tune.runtime.storage import default_storage_url, open_storage

DROPOUTS = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]


def space_file(root: Path) -> Path:
    return write_space(
        root / "sizes.yaml",
        tiny_space(
            study={
                "name": "sizes",
                "trials": len(DROPOUTS),
                "baseline": False,
                "enqueue": [{"dropout": d} for d in DROPOUTS],
                "pruner": {"type": "none"},
            },
            training={"epochs": EPOCHS},
            regularization={
                "l2_conv": 0.0,
                "l2_dense": 0.0,
                "dropout": {"type": "float", "low": 0.0, "high": 0.99},
            },
        ),
    )


def test_each_size_is_its_own_study_and_the_band_moves_down_as_data_grows(
    stores: Path, tmp_path: Path
) -> None:
    seen: list[int] = []

    def more_data_regularizes(
        params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
    ) -> TrainingResult:
        seen.append(len(splits.y_train))
        extra = 0.2 if len(splits.y_train) > 200 else 0.0
        return ScriptedTrainer(script=lambda p: regularized_curves(float(p["dropout"]) + extra))(
            params, splits, settings, on_epoch
        )

    def run(path: Path, overrides: RunOverrides) -> optuna.Study:
        return run_study(path, overrides, storage=None, tracking_uri=None, echo=lambda line: None,
                         trainer=more_data_regularizes, describer=describe_scripted)

    lines: list[str] = []
    files = run_data_sizes(space_file(tmp_path), RunOverrides(), [400, 100], run, lines.append)
    assert sorted(set(seen)) == [100, 400] and len(seen) == 2 * len(DROPOUTS)
    storage = open_storage(default_storage_url())
    assert sorted(s.study_name for s in storage.get_all_studies()) == ["sizes-n100", "sizes-n400"]
    for name in ("sizes-n100", "sizes-n400"):
        assert len(optuna.load_study(study_name=name, storage=storage).trials) == len(DROPOUTS)
    assert files == [report_dir("sizes") / TABLE_FILE, report_dir("sizes") / FIGURE_FILE]
    table = (report_dir("sizes") / TABLE_FILE).read_text()
    assert "| dropout | 100 | 0.35 .. 0.65 | 0.45 | balanced | 10 |" in table
    assert "| dropout | 400 | 0.15 .. 0.45 | 0.25 | balanced | 10 |" in table
    assert table in lines[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("5000,abc", "whole numbers"), ("100,100", "distinct"), ("0,10", "at least 1")],
)
def test_bad_sizes_are_one_clear_error(text: str, problem: str) -> None:
    with pytest.raises(SpaceError, match=problem):
        parse_sizes(text)


@pytest.mark.integration
def test_a_bad_size_list_exits_2_before_anything_is_stored(stores: Path, tmp_path: Path) -> None:
    result = tune_cli(
        "run",
        str(space_file(tmp_path)),
        "--data-sizes",
        "500,x",
        env={"TUNE_STORE_DIR": str(stores)},
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: command-line option: --data-sizes: "
        "expected whole numbers separated by commas, got '500,x'"
    ]
    assert not stores.exists()
