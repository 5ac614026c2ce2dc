"""`make bench-peers`: the race's arithmetic on scripted events, the summary over sampler seeds
(with scripted arms in place of the real ones), KerasTuner's copy of the search space, and a short
race of all four arms on synthetic data."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image
from pydantic import BaseModel
from typer.testing import CliRunner

from benchmarks import peers
from benchmarks.peers import (
    ARMS,
    ARMS_DIR,
    DEFAULT_SPACE,
    EVENTS_FILE,
    PLOT_FILE,
    RESULTS_FILE,
    SEED_DIR,
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
    seed_spread,
    seeds_results,
    seeds_table,
    time_to,
)
from tests.support.paths import ROOT
from tests.support.processes import processes_in
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


NEVER = None  # how results write a time to target that never came


def test_a_seed_that_never_got_there_makes_the_worst_never_and_the_median_the_next() -> None:
    assert seed_spread([30, NEVER, 10]) == (30, NEVER)
    assert seed_spread([30, NEVER, NEVER]) == (NEVER, NEVER)
    assert seed_spread([30, 10]) == (20, 30)
    assert seed_spread([30, NEVER]) == (NEVER, NEVER), "the median of two with one never is never"
    assert seed_spread([]) == (None, None)


# Per sampler seed, each arm's events (t, val accuracy), one trial each. Hyperband reaches its
# best at 40, 30 and 50 s (median 40); in seed 4 it finishes no epoch, so there is nothing to reach.
SEED_EVENTS = {
    1: {TARGET_ARM: [(10, 0.5), (40, 0.6)], "tune": [(20, 0.62)], "random_search": [(50, 0.55)]},
    2: {TARGET_ARM: [(30, 0.7)], "tune": [(60, 0.7)], "random_search": [(90, 0.71)]},
    3: {TARGET_ARM: [(50, 0.65)], "tune": [(10, 0.5)], "random_search": [(70, 0.66)]},
    4: {TARGET_ARM: [], "tune": [(5, 0.9)], "random_search": [(5, 0.9)]},
}


def seed_events(seed: int) -> dict[str, list[Event]]:
    return {
        name: [Event(t, trial, 0, accuracy) for trial, (t, accuracy) in enumerate(rows)]
        for name, rows in SEED_EVENTS[seed].items()
    }


def seed_races(*seeds: int) -> dict[int, dict[str, object]]:
    return {
        seed: race_results(
            seed_events(seed), dict.fromkeys(SEED_EVENTS[seed], "budget"), BUDGET, TARGET_ARM
        )
        for seed in seeds
    }


def test_each_arm_is_timed_to_its_own_seeds_target_and_divided_by_hyperbands_median() -> None:
    summary = seeds_results(seed_races(1, 2, 3, 4))
    assert summary["seeds"] == [1, 2, 3, 4] and summary["seeds_with_target"] == 3
    assert summary["targets"] == {"1": 0.6, "2": 0.7, "3": 0.65, "4": None}
    assert summary["target_arm_median_s"] == 40
    arms = summary["arms"]
    assert list(arms) == list(SEED_EVENTS[1])
    assert arms["tune"] == {
        "time_to_target_s": {"1": 20, "2": 60, "3": NEVER, "4": None},
        "seeds_reaching": 2,
        "median_s": 60,
        "worst_s": NEVER,
        "median_ratio": 1.5,
        "worst_ratio": NEVER,
    }
    assert (arms[TARGET_ARM]["median_ratio"], arms[TARGET_ARM]["worst_ratio"]) == (1.0, 1.25)
    assert arms["random_search"]["time_to_target_s"] == {"1": NEVER, "2": 90, "3": 70, "4": None}
    assert (arms["random_search"]["median_s"], arms["random_search"]["seeds_reaching"]) == (90, 2)
    assert json.loads(json.dumps(summary)) == summary


def test_the_seeds_table_says_never_and_a_dash_where_a_seed_had_no_target() -> None:
    lines = seeds_table(seeds_results(seed_races(1, 2, 3, 4))).splitlines()
    assert lines[0] == (
        "| arm | seed 1 (0.6000) | seed 2 (0.7000) | seed 3 (0.6500) | seed 4 | median | worst | "
        f"median ÷ {TARGET_ARM}'s median | worst ÷ {TARGET_ARM}'s median | seeds reaching it |"
    )
    assert lines[2] == (
        f"| {TARGET_ARM} | 40 s | 30 s | 50 s | – | 40 s | 50 s | 1.00× | 1.25× | 3 of 3 |"
    )
    assert lines[3] == "| tune | 20 s | 60 s | never | – | 60 s | never | 1.50× | never | 2 of 3 |"
    no_target = seeds_table(seeds_results(seed_races(4))).splitlines()
    assert no_target[3] == "| tune | – | – | – | – | – | 0 of 0 |"


def scripted_arm(folders: list[Path]):  # noqa: ANN201
    """Stands in for ``run_arm``: writes the events SEED_EVENTS gives the arm for the sampler seed
    in the space file it was handed, the file the real arm would read its seed from."""

    def run_arm(name: str, space_file: Path, budget: float, folder: Path) -> str:
        assert budget == BUDGET
        folders.append(folder)
        events = seed_events(load_space(space_file).study.sampler.seed)[name]
        folder.mkdir(parents=True)
        (folder / EVENTS_FILE).write_text("".join(event.to_line() for event in events))
        return "budget"

    return run_arm


def test_seeds_race_once_per_seed_into_their_folders_and_summarize_at_the_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders: list[Path] = []
    monkeypatch.setattr(peers, "run_arm", scripted_arm(folders))
    space = write_space(
        tmp_path / "space.yaml", tiny_space(training={"precision": "mixed_bfloat16"})
    )
    out = tmp_path / "out"
    arms = list(SEED_EVENTS[1])
    result = CliRunner().invoke(
        app,
        ["race", "--budget", str(BUDGET), "--space", str(space), "--out", str(out),
         "--arms", ",".join(arms), "--seeds", "3,1,2", "--epochs", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert folders == [
        out / SEED_DIR.format(seed) / ARMS_DIR / name for seed in (3, 1, 2) for name in arms
    ]
    summary = json.loads((out / RESULTS_FILE).read_text())
    assert summary == {**summary, **seeds_results(seed_races(3, 1, 2))}
    assert (summary["precision"], summary["budget_s"], summary["task"]["epochs"]) == (
        "mixed_bfloat16",
        BUDGET,
        2,
    )
    assert "| tune | never | 20 s | 60 s | 60 s | never |" in (out / TABLE_FILE).read_text()
    for seed in (3, 1, 2):
        folder = out / summary["races"][str(seed)]
        race = json.loads((folder / RESULTS_FILE).read_text())
        assert (race["sampler_seed"], race["precision"]) == (seed, "mixed_bfloat16")
        assert race["arms"]["tune"] == race_results(
            seed_events(seed), dict.fromkeys(arms, "budget"), BUDGET, TARGET_ARM
        )["arms"]["tune"]
        task = load_space(folder / SPACE_FILE)
        assert (task.study.sampler.seed, task.training.precision) == (seed, "mixed_bfloat16")
        assert (folder / TABLE_FILE).exists()
    for plot in [out / PLOT_FILE, *(out / SEED_DIR.format(seed) / PLOT_FILE for seed in (1, 2, 3))]:
        with Image.open(plot) as image:
            assert image.format == "PNG", plot


def test_an_explicit_precision_is_taken_as_it_is() -> None:
    assert peers.resolved_precision("float32") == "float32"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arms", "tune,nope"], "error: unknown arm 'nope'; known: " + ", ".join(ARMS)),
        (
            ["--seeds", "1,x"],
            "error: --seeds: '1,x' is not a comma-separated list of integers",
        ),
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
    assert results["precision"] in ("float32", "mixed_bfloat16"), "auto, resolved for every arm"
    assert task.training.precision == results["precision"]
    seed = load_space(ROOT / DEFAULT_SPACE).study.sampler.seed
    assert task.study.sampler.seed == results["sampler_seed"] == seed, "the space's seed"
    assert not list(race.glob(SEED_DIR.format("*")))


@pytest.mark.integration
def test_no_process_of_the_race_outlives_it(race: Path) -> None:
    """The tune arm's fork server and trial processes are killed with their arm."""
    assert processes_in(race) == []
