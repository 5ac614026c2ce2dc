"""What a race between tuners measured, from the events its arms wrote: best validation accuracy
so far over time, the time each arm took to reach a target, and the table that reports it; and,
over races with different sampler seeds, each arm's median and worst time to its seed's target.

Pure functions over events, without TensorFlow or matplotlib, so the numbers a comparison rests
on are unit tested on scripted events in milliseconds.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from tune.contract import VAL_ACCURACY
from tune.report.formatting import markdown_table as markdown_rows

# How an arm reports a finished epoch: trial number, Keras's 0-based epoch index, validation
# accuracy.
Record = Callable[[int, int, float], None]
# A point of a best-so-far curve: seconds since the arm started, best validation accuracy until
# then.
Point = tuple[float, float]


class ArmResult(TypedDict):
    """What one arm did within the budget, as the results file holds it."""

    ended: str
    trials: int
    epochs: int
    first_epoch_s: float | None
    best_val_accuracy: float | None
    time_to_best_s: float | None
    time_to_target_s: float | None
    best_so_far: list[list[float]]


@dataclass(frozen=True)
class Event:
    """One finished epoch of one arm; ``t`` is seconds since the arm's process was started."""

    t: float
    trial: int
    epoch: int
    val_accuracy: float

    def to_line(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Event:
        return cls(**json.loads(line))


def read_events(text: str) -> list[Event]:
    """A line without its newline was cut short when the race killed the arm: it is left out."""
    return [Event.from_line(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def within(events: Iterable[Event], budget: float) -> list[Event]:
    """Events inside the budget, in time order: an epoch logged as the arm was being killed does
    not count."""
    return sorted((event for event in events if event.t <= budget), key=lambda event: event.t)


def best_so_far(events: Sequence[Event], budget: float) -> list[Point]:
    """The curve's steps: one point each time the best validation accuracy improved."""
    points: list[Point] = []
    for event in within(events, budget):
        if not points or event.val_accuracy > points[-1][1]:
            points.append((event.t, event.val_accuracy))
    return points


def time_to(events: Sequence[Event], target: float, budget: float) -> float | None:
    """When an epoch first reached ``target``; None if none did within the budget."""
    return next((event.t for event in within(events, budget) if event.val_accuracy >= target), None)


def arm_result(
    events: Sequence[Event], budget: float, target: float | None, ended: str
) -> ArmResult:
    counted = within(events, budget)
    curve = best_so_far(events, budget)
    best_t, best = curve[-1] if curve else (None, None)
    return {
        "ended": ended,
        "trials": len({event.trial for event in counted}),
        "epochs": len(counted),
        # Start-up as the arm pays it: imports, data, stores, the first trial's tracing and epoch.
        "first_epoch_s": counted[0].t if counted else None,
        "best_val_accuracy": best,
        "time_to_best_s": best_t,
        "time_to_target_s": None if target is None else time_to(events, target, budget),
        "best_so_far": [list(point) for point in curve],
    }


def race_results(
    events: Mapping[str, Sequence[Event]],
    ended: Mapping[str, str],
    budget: float,
    target_arm: str,
) -> dict[str, Any]:
    """Every arm's curve and its time to the best validation accuracy ``target_arm`` reached
    within the budget (no target if that arm did not run or finished no epoch)."""
    curve = best_so_far(events.get(target_arm, ()), budget)
    target = curve[-1][1] if curve else None
    return {
        "budget_s": budget,
        "target": {"arm": target_arm, VAL_ACCURACY: target},
        "arms": {
            name: arm_result(arm_events, budget, target, ended[name])
            for name, arm_events in events.items()
        },
    }


def _seconds(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.0f} s"


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    return "".join(f"{line}\n" for line in markdown_rows([header, *rows]))


def markdown_table(results: Mapping[str, Any]) -> str:
    """One row per arm, in the order the arms ran."""
    target_arm, target = results["target"]["arm"], results["target"][VAL_ACCURACY]
    reach = f"time to {target_arm}'s best" + ("" if target is None else f" ({target:.4f})")
    header = [
        "arm",
        "best val accuracy",
        "reached at",
        reach,
        "first epoch at",
        "trials",
        "epochs",
        "ended",
    ]
    rows = [
        [
            name,
            "–" if arm["best_val_accuracy"] is None else f"{arm['best_val_accuracy']:.4f}",
            _seconds(arm["time_to_best_s"], "–"),
            _seconds(arm["time_to_target_s"], "–" if target is None else "never"),
            _seconds(arm["first_epoch_s"], "–"),
            str(arm["trials"]),
            str(arm["epochs"]),
            arm["ended"],
        ]
        for name, arm in results["arms"].items()
    ]
    return _markdown(header, rows)


class SeedsArm(TypedDict):
    """One arm over the races of several sampler seeds, as the summary file holds it. Per seed
    (keyed by its text, as JSON keys are), None is "never" where that seed had a target; the
    spread and ratios cover the seeds with a target only, None there meaning "never"."""

    time_to_target_s: dict[str, float | None]
    seeds_reaching: int
    median_s: float | None
    worst_s: float | None
    median_ratio: float | None
    worst_ratio: float | None


def _finite(seconds: float) -> float | None:
    """JSON has no infinity: a time that is "never" is written as None."""
    return None if math.isinf(seconds) else seconds


def seed_spread(times: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Median and worst of times to target, None for never. A seed that never reached the target
    counts as infinitely late: it is the worst, and moves the median as a late seed would, so
    one never among three leaves the median finite and two make it never."""
    late = [math.inf if seconds is None else seconds for seconds in times]
    if not late:
        return None, None
    return _finite(statistics.median(late)), _finite(max(late))


def _ratio(seconds: float | None, reference: float | None) -> float | None:
    return None if seconds is None or not reference else seconds / reference


def seeds_results(races: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Each arm's time to its own seed's target (that seed's target arm's best), over the seeds
    whose target arm reached one. Median and worst are both divided by the target arm's median
    time to its own best, so one lucky or unlucky seed of either side does not make the ratio."""
    first = next(iter(races.values()))
    target_arm = first["target"]["arm"]
    targets = {seed: race["target"][VAL_ACCURACY] for seed, race in races.items()}
    timed = [seed for seed, target in targets.items() if target is not None]
    times = {
        name: [races[seed]["arms"][name]["time_to_target_s"] for seed in timed]
        for name in first["arms"]
    }
    spreads = {name: seed_spread(arm_times) for name, arm_times in times.items()}
    reference = spreads.get(target_arm, (None, None))[0]
    arms: dict[str, SeedsArm] = {
        name: {
            "time_to_target_s": {
                str(seed): race["arms"][name]["time_to_target_s"] for seed, race in races.items()
            },
            "seeds_reaching": sum(seconds is not None for seconds in times[name]),
            "median_s": median,
            "worst_s": worst,
            "median_ratio": _ratio(median, reference),
            "worst_ratio": _ratio(worst, reference),
        }
        for name, (median, worst) in spreads.items()
    }
    return {
        "seeds": list(races),
        "target_arm": target_arm,
        "targets": {str(seed): target for seed, target in targets.items()},
        "seeds_with_target": len(timed),
        "target_arm_median_s": reference,
        "arms": arms,
    }


def seeds_table(summary: Mapping[str, Any]) -> str:
    """One row per arm: its time to each seed's target, then the spread over seeds; a dash where
    there was no target to reach."""
    target_arm, targets = summary["target_arm"], summary["targets"]
    timed = summary["seeds_with_target"] > 0
    header = [
        "arm",
        *(
            f"seed {seed}" + ("" if target is None else f" ({target:.4f})")
            for seed, target in targets.items()
        ),
        "median",
        "worst",
        f"median ÷ {target_arm}'s median",
        f"worst ÷ {target_arm}'s median",
        "seeds reaching it",
    ]

    def ratio(value: float | None, seconds: float | None) -> str:
        if value is not None:
            return f"{value:.2f}×"
        return "never" if seconds is None and timed else "–"

    rows = [
        [
            name,
            *(
                _seconds(seconds, "–" if targets[seed] is None else "never")
                for seed, seconds in arm["time_to_target_s"].items()
            ),
            _seconds(arm["median_s"], "never" if timed else "–"),
            _seconds(arm["worst_s"], "never" if timed else "–"),
            ratio(arm["median_ratio"], arm["median_s"]),
            ratio(arm["worst_ratio"], arm["worst_s"]),
            f"{arm['seeds_reaching']} of {summary['seeds_with_target']}",
        ]
        for name, arm in summary["arms"].items()
    ]
    return _markdown(header, rows)
