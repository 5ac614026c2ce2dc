"""The speed, overhead and precision benchmarks: their arithmetic on scripted numbers, and each
one's real code path once on synthetic data with tiny budgets (the figures come from `make
bench-speed` and friends on real CIFAR-10, committed under docs/results/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks import overhead, precision, speed
from benchmarks.output import RESULTS_FILE
from benchmarks.overhead import _Call, overhead_summary
from benchmarks.speed import ARMS, Arm, Task, markdown_table, summarize
from tests.support.paths import ROOT
from tests.support.spaces import tiny_space, write_space

TASK = Task(
    "synthetic:400", train_images=200, validation_images=100, clean_train_images=50, epochs=2
)
MACHINE = {
    "matmul_gflops": {"float32": 100.0, "bfloat16": 400.0},
    "forward_flops_per_image": 10_000_000,
    "auto_precision": "mixed_bfloat16",
}


def test_throughput_skips_the_first_epoch_and_compares_with_the_seed_script_of_the_same_augmentation() -> None:  # noqa: E501 - the name says what it checks
    arms = [
        Arm("seed_script", False),
        Arm("tune", False, "auto", 256),
        Arm("seed_script", True),
        Arm("tune", True, "float32", 64),
    ]
    seconds = [[9.0, 2.0, 2.0, 4.0], [5.0, 0.5, 0.5], [9.0, 4.0], [9.0, 1.0, 1.0]]
    rows = summarize(arms, seconds, TASK, MACHINE)
    assert [row["images_per_s"] for row in rows] == [100.0, 400.0, 50.0, 200.0]
    assert [row["vs_seed_script"] for row in rows] == [1.0, 4.0, 1.0, 4.0]
    assert [row["computes_in"] for row in rows] == [
        "float32",
        "mixed_bfloat16",
        "float32",
        "float32",
    ]
    # tune evaluates the validation and clean-train images; the seed script only the validation
    # images
    assert rows[1]["gflops"] == pytest.approx((3 * 10e6 * 200 + 10e6 * 150) / 0.5 / 1e9)
    assert rows[1]["share_of_peak"] == pytest.approx(rows[1]["gflops"] / 400.0)
    assert rows[0]["gflops"] == pytest.approx((3 * 10e6 * 200 + 10e6 * 100) / 2.0 / 1e9)
    table = markdown_table(rows)
    assert "| tune auto batch 256, no augmentation | mixed_bfloat16 | 400 | 4.00 |" in table


def test_every_augmentation_setting_has_a_seed_script_to_compare_with() -> None:
    for augment in (False, True):
        ways = [arm.way for arm in ARMS if arm.augment == augment]
        assert ways.count("seed_script") == 1 and ways.count("tune") >= 3


@pytest.mark.integration
def test_the_speed_benchmark_runs_both_ways_on_synthetic_data(tmp_path: Path) -> None:
    arms = [Arm("seed_script", True), Arm("tune", True, "auto", 64)]
    results = speed.run_speed(TASK, tmp_path, arms=arms, echo=lambda line: None)
    stored = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert stored["arms"] == json.loads(json.dumps(results["arms"]))
    assert [len(row["epoch_seconds"]) for row in stored["arms"]] == [2, 2]
    assert all(row["images_per_s"] > 0 for row in stored["arms"])
    assert stored["machine"]["matmul_gflops"]["float32"] > 0 and stored["machine"][
        "auto_precision"
    ] in ("float32", "mixed_bfloat16")
    # Conv 3x3 32, 64, 64 and Dense 64 of the seed CNN on 32x32x3 images: about 9.1 million
    assert 9.0e6 < stored["machine"]["forward_flops_per_image"] < 9.3e6
    assert "seed script, augmented" in (tmp_path / speed.TABLE_FILE).read_text()


def test_overhead_charges_the_gaps_between_fits_to_the_trials() -> None:
    calls = [_Call(0.0, 9.0, 8.0), _Call(10.0, 19.5, 9.0)]
    summary = overhead_summary(calls, trials_ended=20.0, ended=26.0)
    assert summary["wall_s"] == 20.0 and summary["fit_s"] == 17.0 and summary["report_s"] == 6.0
    assert summary["overhead_share"] == pytest.approx(0.15)
    assert summary["trial_process_share"] == pytest.approx(1.5 / 20)
    assert summary["study_process_share"] == pytest.approx(1.5 / 20)
    assert summary["outside_s"] == pytest.approx([2.0, 1.0]) and summary[
        "after_first_overhead_share"
    ] == pytest.approx(0.1)


@pytest.fixture
def bench_space(tmp_path: Path) -> Path:
    """The race's space on tiny synthetic data: what the benchmarks read, shrunk."""
    space = yaml.safe_load((ROOT / "search_spaces" / "bench_peers.yaml").read_text())
    tiny = tiny_space()
    space["data"].update(tiny["data"])
    space["training"]["batch_size"] = 64
    return write_space(tmp_path / "space.yaml", space)


@pytest.mark.integration
def test_the_overhead_study_times_every_trial_of_a_real_run(
    bench_space: Path, stores: Path
) -> None:
    summary = overhead.measure_overhead(bench_space, data=None, trials=2, epochs=2)
    assert summary["trials"] == 2 and 0 < summary["fit_s"] < summary["wall_s"]
    assert 0 < summary["overhead_share"] < 1
    assert summary["overhead_share"] == pytest.approx(
        summary["trial_process_share"] + summary["study_process_share"]
    )
    assert summary["report_s"] > 0
    assert not stores.exists()  # the study ran in a scratch store


@pytest.mark.integration
def test_workers_share_one_journal_and_their_epochs_are_counted(bench_space: Path) -> None:
    layout = overhead.measure_workers(
        bench_space, data=None, epochs=1, seconds=20, workers=2, threads=1
    )
    assert layout["epochs_finished"] >= 2 and layout["trials_per_hour"] == layout["epochs_per_hour"]


@pytest.mark.integration
def test_both_precisions_train_the_same_hyperparameters_trial_for_trial(
    bench_space: Path, stores: Path
) -> None:
    results = precision.compare_precisions(bench_space, data=None, trials=2, epochs=1)
    assert [row["same_params"] for row in results["trials"]] == [True, True]
    assert results["trials"][0]["params"]["dropout"] == 0.3  # the warm start comes first
    for row in results["trials"]:
        assert all(
            row[p]["state"] == "COMPLETE" and 0 <= row[p]["val_accuracy"] <= 1
            for p in precision.PRECISIONS
        )
    assert set(results["wall_s"]) == set(precision.PRECISIONS)


@pytest.mark.integration
def test_the_rewrite_benchmark_races_both_builders_on_synthetic_data(tmp_path: Path) -> None:
    from benchmarks import rewrite_speed

    rewrite_speed.run(data="synthetic:1200", images=200, blocks=2, steps=3, out=tmp_path)
    stored = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert [row["config"] for row in stored["rows"]] == list(rewrite_speed.CONFIGS)
    for row in stored["rows"]:
        assert row["rewrite path img/cpu-s"] > 0 and row["built-in builder (before) img/wall-s"] > 0
        assert (
            row["wall ratio"] > 0
            and row["cpu ratio"] > 0
            and len(row["block_cpu_seconds"]["rewrite path"]) == 2
        )
    assert "| seed 000 (baseline) |" in (tmp_path / rewrite_speed.TABLE_FILE).read_text()
