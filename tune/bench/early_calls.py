"""How often the early regime call (``pruner.early_regime``) agrees with the label the full run
earned, measured on a finished study's stored curves: each completed trial's first
``early_epochs`` epochs are judged again as the pruner would have judged them, no new training.

``python -m tune.bench.early_calls STUDY [--storage URL] [--out DIR]`` writes
``early_calls.json`` and ``early_calls.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from optuna.trial import FrozenTrial

from tune.bench.output import OutOption, results_folder
from tune.cli import user_errors
from tune.engine.diagnosis import INCONCLUSIVE, Thresholds, early_call
from tune.engine.study import load_existing_study, stored_space
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
        first = {key: values[: thresholds.early_epochs] for key, values in curves.items()}
        call = early_call(first, thresholds, num_classes=num_classes)
        rows.append(Replay(trial.number, epochs, None if call is None else call.regime, final))
    return rows


def summary(rows: list[Replay]) -> dict[str, int]:
    called = [row for row in rows if row.early is not None]
    return {"trials": len(rows), "called": len(called), "agreed": sum(bool(row.agrees) for row in called)}


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
        *(f"| {row.trial} | {row.epochs} | {row.early or '(none: trains on)'} | {row.final} |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


app = typer.Typer(add_completion=False)


@app.command()
@user_errors
def main(
    study: Annotated[str, typer.Argument(help="the study to replay")],
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL [default: the journal in mlruns/]")] = None,
    classes: Annotated[int, typer.Option(min=2, help="number of classes: sets chance accuracy")] = 10,
    out: OutOption = None,
) -> None:
    loaded = load_existing_study(study, storage)
    thresholds = stored_space(loaded).diagnosis
    rows = replay(loaded.trials, thresholds, classes)
    folder = results_folder(out, "early_calls")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / JSON_FILE).write_text(json.dumps(
        {"study": study, "early_epochs": thresholds.early_epochs, **summary(rows), "trials": [asdict(r) for r in rows]},
        indent=2))
    table = markdown(study, rows, thresholds)
    (folder / TABLE_FILE).write_text(table)
    typer.echo(table + f"written to {folder}")

if __name__ == "__main__":
    app()
