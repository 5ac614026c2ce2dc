"""How often the early regime call (``pruner.early_regime``) agrees with the label the full run
earned, measured on a finished study's stored curves: each completed trial's first
``early_epochs`` epochs are judged again as the pruner would have judged them, no new training.
``tune report --early-calls`` writes it beside the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from optuna.trial import FrozenTrial

from tune.contract import Curves
from tune.engine.diagnosis import INCONCLUSIVE, Thresholds, early_call
from tune.engine.trial_record import completed_trials, trial_curves, trial_regime

JSON_FILE, TABLE_FILE = "early_calls.json", "early_calls.md"


@dataclass(frozen=True)
class Replay:
    """One completed trial: the early call its first epochs get (None: no call, it trains on)
    and the label of its full run."""

    trial: int
    epochs: int
    early: str | None
    final: str

    @property
    def agrees(self) -> bool | None:
        return None if self.early is None else self.early == self.final


def replay(trials: list[FrozenTrial], thresholds: Thresholds, num_classes: int) -> list[Replay]:
    """Only completed trials with a clear full-length label and more epochs than the call needs."""
    rows = []
    for trial in completed_trials(trials):
        curves, final = trial_curves(trial), trial_regime(trial)
        epochs = len(next(iter(curves.values()), [])) if curves else 0
        if final == INCONCLUSIVE or epochs <= thresholds.early_epochs:
            continue
        # a trial without curves has 0 epochs: skipped above
        first = {
            key: values[: thresholds.early_epochs] for key, values in cast(Curves, curves).items()
        }
        call = early_call(first, thresholds, num_classes=num_classes)
        rows.append(Replay(trial.number, epochs, None if call is None else call.regime, final))
    return rows


def summary(rows: list[Replay]) -> dict[str, int]:
    called = [row for row in rows if row.early is not None]
    return {
        "trials": len(rows),
        "called": len(called),
        "agreed": sum(bool(row.agrees) for row in called),
    }


def markdown(study: str, rows: list[Replay], thresholds: Thresholds) -> str:
    counts = summary(rows)
    lines = [
        f"# Early regime calls on study `{study}`, after {thresholds.early_epochs} epochs",
        "",
        f"{counts['called']} of {counts['trials']} completed trials would have been called early; "
        f"{counts['agreed']} of those calls match the full run's label.",
        "",
        "| trial | epochs run | early call | full-run label |",
        "| --- | --- | --- | --- |",
        *(
            f"| {row.trial} | {row.epochs} | {row.early or '(none: trains on)'} | {row.final} |"
            for row in rows
        ),
    ]
    return "\n".join(lines) + "\n"
