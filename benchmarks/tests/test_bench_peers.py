"""`make bench-peers`: the race's arithmetic on scripted events, KerasTuner's copy of the search
space, and a short race of all four arms on synthetic data."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from PIL import Image
from pydantic import BaseModel
from typer.testing import CliRunner

from benchmarks.peers import (
    ARMS,
    ARMS_DIR,
    DEFAULT_SPACE,
    EVENTS_FILE,
    PLOT_FILE,
    RESULTS_FILE,
    SPACE_FILE,
    TABLE_FILE,
    TARGET_ARM,
    app,
)
from benchmarks.race import (
    Event,
    best_so_far,
    markdown_table,
    race_results,
    read_events,
    time_to,
)
from tests.support.paths import ROOT
from tests.support.spaces import tiny_space, write_space
from tune.contract import VAL_ACCURACY
from tune.engine.config import CategoricalSpec, load_space
from tune.paths import STORE_ENV

BUDGET = 100.0


def scripted(*rows: tuple[float, int, int, float]) -> list[Event]:
    return [Event(t, trial, epoch, accuracy) for t, trial, epoch, accuracy in rows]


# Hyperband's 0.9 comes after the budget, so its best within the race is 0.61.
EVENTS = {
    "tune": scripted(
        (5, 0, 0, 0.30), (9, 0, 1, 0.25), (12, 1, 0, 0.45), (30, 1, 1, 0.61), (50, 2, 0, 0.70)
    ),
    TARGET_ARM: scripted(
        (4, 0, 0, 0.35), (20, 1, 0, 0.50), (40, 1, 1, 0.61), (60, 2, 0, 0.55), (101, 3, 0, 0.90)
    ),
    "random_search": scripted((8, 0, 0, 0.20), (16, 1, 0, 0.40)),
}
ENDED = {"tune": "budget", TARGET_ARM: "finished", "random_search": "budget"}


def test_best_so_far_steps_up_at_each_improvement_within_the_budget() -> None:
    assert best_so_far(EVENTS["tune"], BUDGET) == [(5, 0.30), (12, 0.45), (30, 0.61), (50, 0.70)]
    assert best_so_far(EVENTS[TARGET_ARM], BUDGET) == [(4, 0.35), (20, 0.50), (40, 0.61)]
    assert best_so_far(list(reversed(EVENTS["tune"])), BUDGET) == best_so_far(
        EVENTS["tune"], BUDGET
    )
    assert best_so_far([], BUDGET) == []
    for events in EVENTS.values():
        times, values = zip(*best_so_far(events, BUDGET))
        assert list(times) == sorted(times) and all(a < b for a, b in itertools.pairwise(values))


def test_time_to_target_is_the_first_epoch_that_reaches_it() -> None:
    assert time_to(EVENTS["tune"], 0.61, BUDGET) == 30
    assert time_to(EVENTS["tune"], 0.44, BUDGET) == 12
    assert time_to(EVENTS["random_search"], 0.61, BUDGET) is None
    assert time_to(EVENTS[TARGET_ARM], 0.9, BUDGET) is None, (
        "an epoch after the budget does not count"
    )


def test_results_time_every_arm_to_hyperbands_best() -> None:
    results = race_results(EVENTS, ENDED, BUDGET, TARGET_ARM)
    assert results["target"] == {"arm": TARGET_ARM, VAL_ACCURACY: 0.61}
    arms = results["arms"]
    assert list(arms) == list(EVENTS)
    assert [arms[name]["time_to_target_s"] for name in EVENTS] == [30, 40, None]
    assert [arms[name]["best_val_accuracy"] for name in EVENTS] == [0.70, 0.61, 0.40]
    assert [arms[name]["time_to_best_s"] for name in EVENTS] == [50, 40, 16]
    assert [arms[name]["first_epoch_s"] for name in EVENTS] == [5, 4, 8]
    assert (arms[TARGET_ARM]["trials"], arms[TARGET_ARM]["epochs"], arms[TARGET_ARM]["ended"]) == (
        3,
        4,
        "finished",
    )
    assert json.loads(json.dumps(results)) == results


def test_the_table_has_one_row_per_arm_and_says_never() -> None:
    lines = markdown_table(race_results(EVENTS, ENDED, BUDGET, TARGET_ARM)).splitlines()
    assert len(lines) == 2 + len(EVENTS)
    assert f"time to {TARGET_ARM}'s best (0.6100)" in lines[0]
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert list(rows) == list(EVENTS)
    assert rows["tune"] == "| tune | 0.7000 | 50 s | 30 s | 5 s | 3 | 5 | budget |"
    assert (
        rows["random_search"] == "| random_search | 0.4000 | 16 s | never | 8 s | 2 | 2 | budget |"
    )


def test_without_a_target_no_arm_is_timed_to_one() -> None:
    events = {"tune": EVENTS["tune"], TARGET_ARM: []}
    results = race_results(
        events, {"tune": "budget", TARGET_ARM: "failed (exit 1)"}, BUDGET, TARGET_ARM
    )
    assert results["target"][VAL_ACCURACY] is None
    assert [arm["time_to_target_s"] for arm in results["arms"].values()] == [None, None]
    rows = markdown_table(results).splitlines()[2:]
    assert rows[1] == f"| {TARGET_ARM} | – | – | – | – | 0 | 0 | failed (exit 1) |"
    assert "never" not in rows[0]


def test_events_round_trip_and_a_line_cut_by_the_kill_is_left_out() -> None:
    lines = "".join(event.to_line() for event in EVENTS["tune"])
    assert read_events(lines) == EVENTS["tune"]
    assert read_events(lines + '{"t": 60, "trial": 3, "ep') == EVENTS["tune"]
    assert json.loads(EVENTS["tune"][0].to_line()) == {
        "t": 5,
        "trial": 0,
        "epoch": 0,
        VAL_ACCURACY: 0.30,
    }


def test_keras_tuner_declares_exactly_the_space_optuna_samples() -> None:
    keras_tuner = pytest.importorskip("keras_tuner")
    from benchmarks.peer_arms import hp_params

    space = load_space(ROOT / DEFAULT_SPACE)
    hp = keras_tuner.HyperParameters()
    params = hp_params(hp, space)
    declared = {entry.name: entry for entry in hp.space}
    assert set(declared) == set(space.searched())
    for name, spec in space.searched().items():
        if isinstance(spec, CategoricalSpec):
            assert list(declared[name].values) == spec.choices
        else:
            entry = declared[name]
            assert (entry.min_value, entry.max_value) == (spec.low, spec.high), name
            assert entry.sampling == ("log" if spec.log else "linear"), name
    assert {
        name: params[name]
        for name, spec in space.params().items()
        if not isinstance(spec, BaseModel)
    } == {name: spec for name, spec in space.params().items() if not isinstance(spec, BaseModel)}
    assert hp_params(hp, space) == params, "declaring again reads the same trial"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arms", "tune,nope"], "error: unknown arm 'nope'; known: " + ", ".join(ARMS)),
        (
            ["--data", "/nonexistent/cifar.npz"],
            "error: data source '/nonexistent/cifar.npz': no such file or directory",
        ),
    ],
)
def test_mistakes_give_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    space = str(ROOT / DEFAULT_SPACE)
    result = CliRunner().invoke(
        app, ["race", "--budget", "5", "--space", space, "--out", str(tmp_path), *args]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / RESULTS_FILE).exists()


# Generous, as a loaded 2-core machine can take half a minute to a first epoch (imports, MLflow's
# database, the fork server); two trials end the tune and Optuna arms sooner, Hyperband runs to the
# end.
RACE_BUDGET = 40
TRIALS = 2
GRACE = 1.0


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One short race of every arm, run as `make bench-peers` runs it: the bench task on
    synthetic data, two epochs per trial."""
    root = tmp_path_factory.mktemp("peers")
    task = yaml.safe_load((ROOT / DEFAULT_SPACE).read_text())
    task["data"] = tiny_space()["data"]
    task["study"]["trials"] = TRIALS
    space = write_space(root / "bench.yaml", task)
    out = root / "out"
    env = {**os.environ, STORE_ENV: str(root / "mlruns"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable,
        "-m",
        "benchmarks.peers",
        "race",
        "--space",
        str(space),
        "--budget",
        str(RACE_BUDGET),
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    yield out


@pytest.mark.integration
def test_every_arm_records_epochs_within_its_budget(race: Path) -> None:
    for name in ARMS:
        events = read_events((race / ARMS_DIR / name / EVENTS_FILE).read_text())
        assert events, f"{name} finished no epoch in {RACE_BUDGET} s"
        assert all(0 <= event.val_accuracy <= 1 for event in events), name
        assert all(0 < event.t <= RACE_BUDGET + GRACE for event in events), name
        assert all(0 <= event.epoch < 2 for event in events), name


@pytest.mark.integration
def test_the_race_writes_results_table_and_plot(race: Path) -> None:
    results = json.loads((race / RESULTS_FILE).read_text())
    assert list(results["arms"]) == list(ARMS) and results["budget_s"] == RACE_BUDGET
    assert results["task"]["epochs"] == 2 and results["task"]["training_images"] == 400
    for name, arm in results["arms"].items():
        assert arm["ended"] in ("budget", "finished"), f"{name}: {arm['ended']}"
        assert arm["trials"] <= TRIALS or name == TARGET_ARM, name
        assert arm["epochs"] >= 1 and 0 <= arm["best_val_accuracy"] <= 1
    hyperband = read_events((race / ARMS_DIR / TARGET_ARM / EVENTS_FILE).read_text())
    assert results["target"][VAL_ACCURACY] == max(event.val_accuracy for event in hyperband)
    assert (
        results["arms"][TARGET_ARM]["time_to_target_s"]
        == results["arms"][TARGET_ARM]["time_to_best_s"]
    )
    table = (race / TABLE_FILE).read_text()
    assert [
        line.split(" | ")[0].removeprefix("| ")
        for line in table.splitlines()
        if line.startswith("| ")
    ][2:] == list(ARMS)
    with Image.open(race / PLOT_FILE) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
    task = load_space(race / SPACE_FILE)
    assert (task.training.epochs, task.study.timeout) == (2, RACE_BUDGET)


@pytest.mark.integration
def test_no_process_of_the_race_outlives_it(race: Path) -> None:
    """The tune arm's fork server and trial processes are killed with their arm."""
    leftovers = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(STORE_ENV, "").startswith(str(race)):
                leftovers.append(process.cmdline())
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    assert leftovers == []
