"""What ``tune run`` shows while it works.

On a terminal: a live bar over this run's trials with the elapsed time, the study's best value and
how many trials completed, were pruned or failed, and under it the running trial's epochs and its
objective so far; each finished trial's line prints above the bar. Anywhere else (CI, ``make
workers`` writing into files) the output stays plain lines, one per finished trial, with no
control characters, so logs read and parse as before. ``--quiet`` keeps only the final summary;
``--verbose`` adds a line per epoch of every trial.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tune.contract import (
    EpochHook,
    Params,
    Splits,
    Trainer,
    TrainingResult,
    TrainSettings,
)
from tune.engine.study import study_objective
from tune.engine.trial_record import best_completed

Echo = Callable[[str], None]
TrialFunction = Callable[[optuna.Trial], float]  # what study.optimize calls
# The states a finished trial can end in, in the order the bar counts them.
COUNTED = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


class Verbosity(enum.Enum):
    QUIET = "quiet"
    NORMAL = "normal"
    VERBOSE = "verbose"


def counts_text(counts: Counter[TrialState]) -> str:
    return " · ".join(f"{counts[state]} {name}" for state, name in COUNTED.items())


def best_text(study: optuna.Study, metric: str) -> str:
    """The study's best so far, this run's trials or not, as the trial lines mark ``*best*``; by the
    objective alone, as the report ranks (Optuna's ``best_trial`` skips a regime-aware study's
    under- and over-regularized trials)."""
    best = best_completed(study.get_trials(deepcopy=False), study_objective(study))
    if best is None:
        return f"best {metric} -"
    return f"best {metric}={best.value:.4f} (trial {best.number})"


def epoch_line(number: int, epoch: int, epochs: int, metric: str, value: float) -> str:
    """Indented, so that only finished trials' lines start with ``trial``."""
    return f"  trial {number:>3}  epoch {epoch:>3}/{epochs:<3} {metric}={value:.4f}"


@dataclass(frozen=True)
class _Bar:
    """The live display: a row over the run's trials and a row over the running trial's epochs."""

    progress: Progress
    trials: TaskID
    epochs: TaskID

    @classmethod
    def start(cls, console: Console, trials: int, status: str) -> _Bar:
        progress = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
        )
        bar = cls(
            progress,
            progress.add_task("trials", total=trials, status=status),
            progress.add_task("", total=None, status="", visible=False),
        )
        progress.start()
        return bar

    def stop(self) -> None:
        """The trials row stays on the screen as the run's last word; the epoch row goes."""
        self.progress.remove_task(self.epochs)
        self.progress.stop()


class RunProgress:
    """The run's output: plain lines through ``echo``, or, given a terminal ``console``, lines
    printed above a live bar."""

    def __init__(
        self,
        echo: Echo = print,
        verbosity: Verbosity = Verbosity.NORMAL,
        console: Console | None = None,
    ) -> None:
        self.echo, self.verbosity, self.console = echo, verbosity, console
        self.counts: Counter[TrialState] = Counter()
        self.metric = ""
        self.trial = -1
        self._bar: _Bar | None = None

    def line(self, text: str) -> None:
        """What the run tells as it goes; ``--quiet`` drops it."""
        if self.verbosity is not Verbosity.QUIET:
            self.summary(text)

    def summary(self, text: str) -> None:
        """What every run prints, ``--quiet`` or not."""
        if self.console is not None:  # above the bar while it runs
            self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            self.echo(text)

    @contextmanager
    def running(self, study: optuna.Study, trials: int) -> Iterator[None]:
        """The trials run inside: with the live bar on a terminal, unless ``--quiet``."""
        self.metric = study_objective(study).metric
        if self.console is None or self.verbosity is Verbosity.QUIET:
            yield
            return
        self._bar = _Bar.start(self.console, trials, self._status(study))
        try:
            yield
        finally:
            self._bar.stop()
            self._bar = None

    def watch(self, objective: TrialFunction) -> TrialFunction:
        """The objective, noting which trial runs, for the epoch lines."""

        def watched(trial: optuna.Trial) -> float:
            self.trial = trial.number
            if self._bar is not None:
                self._bar.progress.reset(
                    self._bar.epochs,
                    total=None,
                    description=f"trial {trial.number}",
                    status="",
                    visible=True,
                )
            return objective(trial)

        return watched

    def watch_epochs(self, trainer: Trainer) -> Trainer:
        """The trainer, showing each epoch before the objective's hook may prune the trial."""

        def train(
            params: Params, splits: Splits, settings: TrainSettings, on_epoch: EpochHook
        ) -> TrainingResult:
            def hook(epoch: int, logs: dict[str, float]) -> None:
                self.epoch(epoch + 1, settings.epochs, logs[self.metric])
                on_epoch(epoch, logs)

            return trainer(params, splits, settings, hook)

        return train

    def epoch(self, epoch: int, epochs: int, value: float) -> None:
        if self._bar is not None:
            self._bar.progress.update(
                self._bar.epochs, total=epochs, completed=epoch, status=f"{self.metric}={value:.4f}"
            )
        if self.verbosity is Verbosity.VERBOSE:
            self.line(epoch_line(self.trial, epoch, epochs, self.metric, value))

    def finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, text: str) -> None:
        """A trial ended: count it, update the best, print its line."""
        self.counts[trial.state] += 1
        if self._bar is not None:
            self._bar.progress.update(self._bar.trials, advance=1, status=self._status(study))
        self.line(text)

    def _status(self, study: optuna.Study) -> str:
        return f"{best_text(study, self.metric)} · {counts_text(self.counts)}"
