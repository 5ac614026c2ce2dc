"""Do the regime-steered search options pay? ``tune`` with its plain defaults, with regime-aware
sampling (``sampler.regime_aware``) and with early regime pruning (``pruner.early_regime``), each
with several sampler seeds, on the race's task and budget (``make bench-peers``), run one after the
other in one invocation with seeds in the outer loop, so a drift of the machine's speed falls on
every variant alike.

Every run is timed to the best validation accuracy KerasTuner Hyperband reached in a race's
results file; the table gives, per variant, the median and range over seeds of that time and of
the best accuracy reached within the budget.
``python -m benchmarks.variants --budget S --seeds 1,2,3``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from benchmarks import peers
from benchmarks.output import (
    RESULTS_FILE,
    DataOption,
    EpochsOption,
    OutOption,
    SpaceOption,
    bench_app,
    results_folder,
    write_results,
)
from benchmarks.race import ArmResult, Event, arm_result
from benchmarks.studies import DEFAULT_SPACE
from tune.cli import quiet_libraries, user_errors
from tune.contract import VAL_ACCURACY
from tune.engine.config import MAX_SEED, SearchSpace, dump_space
from tune.errors import TuneError

if TYPE_CHECKING:
    from tune.report.curves import LineStyle

TABLE_FILE, PLOT_FILE = "variants.md", "variants.png"
SPACES_DIR = "spaces"
# The race whose Hyperband arm sets the target: the committed full run on this machine.
DEFAULT_TARGET = Path("docs/results/cpu_speed/peers") / RESULTS_FILE
# Each variant's changes to the space's sampler and pruner; "plain" is tune as shipped.
VARIANTS: dict[str, dict[str, dict[str, object]]] = {
    "plain": {},
    "regime_aware": {"sampler": {"regime_aware": True}},
    "early_regime": {"pruner": {"early_regime": True}},
}
COLOURS = dict(zip(VARIANTS, ("#1f77b4", "#d62728", "#2ca02c")))
DASHES = ("-", "--", ":", "-.")

RunArm = Callable[[str, Path, float, Path], str]


def known_variants(names: Sequence[str]) -> list[str]:
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise TuneError(
            f"unknown variant {', '.join(map(repr, unknown)) or '(none given)'}; known: "
            f"{', '.join(VARIANTS)}"
        )
    return list(names)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise TuneError(f"--seeds: {text!r} is not a comma-separated list of integers") from None
    if any(not 0 <= seed <= MAX_SEED for seed in seeds) or len(set(seeds)) != len(seeds):
        raise TuneError(f"--seeds: {text!r} must be distinct integers in 0..{MAX_SEED}")
    return seeds


def read_target(path: Path) -> dict[str, Any]:
    """Hyperband's best and when it got there, from a race's results file."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        target_arm = results["target"]["arm"]
        accuracy = results["target"][VAL_ACCURACY]
        seconds = results["arms"][target_arm]["time_to_target_s"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TuneError(
            f"{path}: not a race's results file with a target ({type(exc).__name__}: {exc})"
        ) from None
    if accuracy is None:
        raise TuneError(
            f"{path}: the race's {target_arm} arm finished no epoch, so there is no target"
        )
    return {
        "arm": target_arm,
        VAL_ACCURACY: accuracy,
        "time_to_target_s": seconds,
        "from": str(path),
    }


def variant_space(space: SearchSpace, variant: str, seed: int) -> SearchSpace:
    changes = VARIANTS[variant]
    study = space.study
    return space.with_overrides(
        study={
            "sampler": {**study.sampler.model_dump(), "seed": seed, **changes.get("sampler", {})},
            "pruner": {**study.pruner.model_dump(), **changes.get("pruner", {})},
        }
    )


def run_name(variant: str, seed: int) -> str:
    return f"{variant} seed {seed}"


def _spread(values: list[float]) -> dict[str, float | None]:
    """Median and range. A run that never reached the target counts as infinitely late, written
    as None (JSON has no infinity)."""
    spread = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return {key: None if math.isinf(value) else value for key, value in spread.items()}


def summarize(
    runs: Mapping[str, ArmResult],
    variants: Sequence[str],
    seeds: Sequence[int],
    target: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    summary = {}
    for variant in variants:
        mine = [runs[run_name(variant, seed)] for seed in seeds]
        late = [
            math.inf if run["time_to_target_s"] is None else run["time_to_target_s"] for run in mine
        ]
        reference = target["time_to_target_s"]
        summary[variant] = {
            "runs": len(mine),
            "reached_target": sum(map(math.isfinite, late)),
            "time_to_target_s": _spread(late),
            f"time_to_target_over_{target['arm']}": _spread(
                [seconds / reference for seconds in late]
            )
            if reference
            else None,
            "best_val_accuracy": _spread([run["best_val_accuracy"] or 0.0 for run in mine]),
            "trials": _spread([run["trials"] for run in mine]),
        }
    return summary


def variant_results(
    events: Mapping[str, Sequence[Event]],
    ended: Mapping[str, str],
    *,
    budget: float,
    target: Mapping[str, Any],
    variants: Sequence[str],
    seeds: Sequence[int],
) -> dict[str, Any]:
    runs = {
        name: arm_result(run, budget, target[VAL_ACCURACY], ended[name])
        for name, run in events.items()
    }
    return {
        "budget_s": budget,
        "target": dict(target),
        "seeds": list(seeds),
        "variants": {name: VARIANTS[name] for name in variants},
        "summary": summarize(runs, variants, seeds, target),
        "arms": runs,
    }


def _cell(spread: Mapping[str, float | None] | None, fmt: Callable[[float], str]) -> str:
    if spread is None:
        return "–"

    def show(value: float | None) -> str:
        return "never" if value is None else fmt(value)

    return f"{show(spread['median'])} ({show(spread['min'])}–{show(spread['max'])})"


def markdown_table(results: Mapping[str, Any]) -> str:
    """One row per variant: median (range) over seeds."""
    target = results["target"]
    reach = f"time to {target['arm']}'s best ({target[VAL_ACCURACY]:.4f})"
    header = [
        "variant",
        "runs reaching it",
        reach,
        f"÷ {target['arm']}'s time",
        "best val accuracy",
        "trials",
    ]
    rows = [
        [
            name,
            f"{row['reached_target']} of {row['runs']}",
            _cell(row["time_to_target_s"], lambda v: f"{v:.0f} s"),
            _cell(row[f"time_to_target_over_{target['arm']}"], lambda v: f"{v:.2f}x"),
            _cell(row["best_val_accuracy"], lambda v: f"{v:.4f}"),
            _cell(row["trials"], lambda v: f"{v:.0f}"),
        ]
        for name, row in results["summary"].items()
    ]
    lines = [header, ["---"] * len(header), *rows]
    return "".join(f"| {' | '.join(cells)} |\n" for cells in lines)


def _title(results: Mapping[str, Any], task: peers.RaceTask) -> str:
    seconds = results["target"]["time_to_target_s"]
    return (
        f"tune's variants, {results['budget_s']:g} s per run, sampler seeds "
        f"{', '.join(map(str, results['seeds']))}, on {task['training_images']} images of "
        f"{task['data']}; median (min–max) over seeds. Target: {results['target']['arm']}'s best "
        f"in {results['target']['from']}"
        + ("" if seconds is None else f", reached there at {seconds:.0f} s")
        + "."
    )


def _style(name: str) -> LineStyle:
    variant, seed = name.split(" seed ")
    return {
        "color": COLOURS[variant],
        "linestyle": DASHES[int(seed) % len(DASHES)],
        "linewidth": 1.2,
    }


def run_variants(
    space_path: Path,
    *,
    budget: float,
    data: str | None,
    epochs: int | None,
    seeds: Sequence[int],
    variants: Sequence[str],
    target_file: Path,
    out: Path,
    echo: Callable[[str], None] = print,
    run_arm: RunArm = peers.run_arm,
) -> dict[str, Any]:
    """Every variant with every seed, each as the race's tune arm with a space file of its own."""
    variants = known_variants(variants)
    target = read_target(target_file)
    space, task = peers.race_task(space_path, budget=budget, data=data, epochs=epochs, echo=echo)
    (out / SPACES_DIR).mkdir(parents=True, exist_ok=True)
    ended: dict[str, str] = {}
    for seed in seeds:
        for variant in variants:
            name = run_name(variant, seed)
            space_file = out / SPACES_DIR / f"{variant}-seed{seed}.yaml"
            space_file.write_text(
                dump_space(variant_space(space, variant, seed), f"{name}, from {space_path}"),
                encoding="utf-8",
            )
            echo(f"{name}: running, output in {out / peers.ARMS_DIR / name / peers.LOG_FILE}")
            ended[name] = run_arm("tune", space_file, budget, out / peers.ARMS_DIR / name)
    events = {name: peers.arm_events(out, name) for name in ended}
    results = {
        "task": task,
        **variant_results(
            events, ended, budget=budget, target=target, variants=variants, seeds=seeds
        ),
    }
    write_results(
        out, results, TABLE_FILE, f"{_title(results, task)}\n\n{markdown_table(results)}", echo
    )
    peers.plot_race(
        results, out / PLOT_FILE, f"tune's variants, {budget:g} s each, on {task['data']}", _style
    )
    return results


app = bench_app(__doc__)


@app.command()
@user_errors
def main(
    budget: Annotated[float, typer.Option(min=1, help="seconds per run")],
    seeds: Annotated[str, typer.Option(help="comma-separated sampler seeds")] = "1,2,3",
    variants: Annotated[
        str, typer.Option(help="comma-separated variants, in running order")
    ] = ",".join(VARIANTS),
    target: Annotated[
        Path, typer.Option(help="a race's results.json: its Hyperband best is the target")
    ] = DEFAULT_TARGET,
    space: SpaceOption = DEFAULT_SPACE,
    data: DataOption = None,
    epochs: EpochsOption = None,
    out: OutOption = None,
) -> None:
    quiet_libraries()
    run_variants(
        space,
        budget=budget,
        data=data,
        epochs=epochs,
        seeds=parse_seeds(seeds),
        variants=[name.strip() for name in variants.split(",")],
        target_file=target,
        out=results_folder(out, "variants"),
        echo=typer.echo,
    )


if __name__ == "__main__":
    app(prog_name="python -m benchmarks.variants")
