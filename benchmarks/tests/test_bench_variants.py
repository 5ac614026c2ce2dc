"""`make bench-variants`: each variant's space, the median and range over seeds, and the whole
command with a scripted arm in place of the real tune arm (which the peers race test runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmarks.output import RESULTS_FILE
from benchmarks.peers import ARMS_DIR, EVENTS_FILE, TARGET_ARM
from benchmarks.race import Event
from benchmarks.variants import (
    DEFAULT_TARGET,
    PLOT_FILE,
    SPACES_DIR,
    TABLE_FILE,
    VARIANTS,
    app,
    markdown_table,
    run_variants,
    variant_results,
)
from tests.support.paths import ROOT
from tests.support.spaces import tiny_space, write_space
from tune.contract import VAL_ACCURACY
from tune.engine.config import load_space

TARGET = {
    "arm": TARGET_ARM,
    VAL_ACCURACY: 0.6,
    "time_to_target_s": 400.0,
    "from": "race/results.json",
}
BUDGET = 300.0


def events(*rows: tuple[float, float]) -> list[Event]:
    return [Event(t, trial, 0, accuracy) for trial, (t, accuracy) in enumerate(rows)]


def test_a_run_that_never_reached_the_target_is_the_latest_and_says_never() -> None:
    runs = {
        "plain seed 1": events((50, 0.5), (100, 0.61)),
        "plain seed 2": events((80, 0.55), (200, 0.62)),
        "plain seed 3": events((90, 0.58), (310, 0.9)),  # after the budget: never, best 0.58
    }
    results = variant_results(runs, dict.fromkeys(runs, "budget"), budget=BUDGET, target=TARGET,
                              variants=["plain"], seeds=[1, 2, 3])
    plain = results["summary"]["plain"]
    assert plain["reached_target"] == 2 and plain["runs"] == 3
    assert plain["time_to_target_s"] == {"median": 200, "min": 100, "max": None}
    assert plain[f"time_to_target_over_{TARGET_ARM}"] == {"median": 0.5, "min": 0.25, "max": None}
    assert plain["best_val_accuracy"] == {"median": 0.61, "min": 0.58, "max": 0.62}
    row = markdown_table(results).splitlines()[2]
    assert (
        row
        == "| plain | 2 of 3 | 200 s (100 s–never) | 0.50x (0.25x–never) | "
        "0.6100 (0.5800–0.6200) | 2 (1–2) |"
    )
    assert "Infinity" not in json.dumps(results)


def scripted_arm(outcomes: dict[tuple[bool, bool, int], list[Event]]):  # noqa: ANN201
    """Stands in for the real tune arm: the events it writes depend on the space it was given."""
    calls: list[Path] = []

    def run_arm(name: str, space_file: Path, budget: float, folder: Path) -> str:
        assert name == "tune" and budget == BUDGET
        calls.append(space_file)
        study = load_space(space_file).study
        folder.mkdir(parents=True)
        key = (study.sampler.regime_aware, study.pruner.early_regime, study.sampler.seed)
        (folder / EVENTS_FILE).write_text("".join(event.to_line() for event in outcomes[key]))
        return "budget"

    return run_arm, calls


def test_every_variant_runs_with_every_seed_seeds_outermost(tmp_path: Path) -> None:
    target = tmp_path / "race.json"
    target.write_text(json.dumps({"target": {"arm": TARGET_ARM, VAL_ACCURACY: 0.6},
                                  "arms": {TARGET_ARM: {"time_to_target_s": 400.0}}}))
    space = write_space(tmp_path / "space.yaml", tiny_space())
    outcomes = {
        (False, False, 4): events((100, 0.62)),
        (True, False, 4): events((50, 0.7)),
        (False, True, 4): events((10, 0.3)),
        (False, False, 5): events((300, 0.6)),
        (True, False, 5): events((60, 0.65)),
        (False, True, 5): events((20, 0.4)),
    }
    run_arm, calls = scripted_arm(outcomes)
    out = tmp_path / "out"
    results = run_variants(
        space,
        budget=BUDGET,
        data=None,
        epochs=2,
        seeds=[4, 5],
        variants=list(VARIANTS),
        target_file=target,
        out=out,
        echo=lambda _: None,
        run_arm=run_arm,
    )
    assert [path.name for path in calls] == [
        f"{variant}-seed{seed}.yaml" for seed in (4, 5) for variant in VARIANTS
    ]
    for path in calls:
        written = load_space(path)
        assert (written.training.epochs, written.study.timeout, written.data.source) == (
            2,
            BUDGET,
            "synthetic:600",
        )
        assert (
            written.study.sampler.n_startup_trials
            == load_space(space).study.sampler.n_startup_trials
        )
    summary = results["summary"]
    assert summary["plain"]["time_to_target_s"] == {"median": 200, "min": 100, "max": 300}
    assert summary["regime_aware"]["time_to_target_s"] == {"median": 55, "min": 50, "max": 60}
    assert summary["early_regime"]["reached_target"] == 0
    assert summary["early_regime"]["best_val_accuracy"]["median"] == pytest.approx(0.35)
    stored = json.loads((out / RESULTS_FILE).read_text())
    assert stored["summary"] == json.loads(json.dumps(summary)) and stored["target"]["from"] == str(
        target
    )
    assert set(stored["arms"]) == {
        f"{variant} seed {seed}" for variant in VARIANTS for seed in (4, 5)
    }
    assert (out / ARMS_DIR / "plain seed 4" / EVENTS_FILE).exists() and len(
        list((out / SPACES_DIR).iterdir())
    ) == 6
    table = (out / TABLE_FILE).read_text()
    assert [
        line.split(" | ")[0].removeprefix("| ")
        for line in table.splitlines()
        if line.startswith("| ")
    ][2:] == list(VARIANTS)
    with Image.open(out / PLOT_FILE) as image:
        assert image.format == "PNG" and image.width > 300


def test_the_committed_race_is_a_target() -> None:
    """The default target file is committed, and has a Hyperband best to time the runs to."""
    stored = json.loads((ROOT / DEFAULT_TARGET).read_text())
    assert stored["target"]["arm"] == TARGET_ARM and 0 < stored["target"][VAL_ACCURACY] < 1


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "plain,nope"], "error: unknown variant 'nope'; known: " + ", ".join(VARIANTS)),
    (["--seeds", "1,x"], "error: --seeds: '1,x' is not a comma-separated list of integers"),
    (["--seeds", "1,1"], "error: --seeds: '1,1' must be distinct integers"),
    (["--target", "/nonexistent.json"], "error: /nonexistent.json: not a race's results file"),
])
def test_mistakes_give_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--budget", "5", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert list(tmp_path.iterdir()) == []
