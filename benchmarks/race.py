"""What a race between tuners measured, from the events its arms wrote: best validation accuracy
so far over time, the time each arm took to reach a target, and the table that reports it.

Pure functions over events, without TensorFlow or matplotlib, so the numbers a comparison rests
on are unit tested on scripted events in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from tune.contract import VAL_ACCURACY

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
    lines = [header, ["---"] * len(header), *rows]
    return "".join(f"| {' | '.join(cells)} |\n" for cells in lines)
