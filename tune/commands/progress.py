"""What ``tune run``, ``tune train`` and ``tune compare`` show while they work.

On a terminal: a live bar over this run's trials with the elapsed time, the study's best value and
how many trials completed, were pruned or failed, and under it the running trial's epochs and its
objective so far; each finished trial's line prints above the bar. A retrain shows the same bar
over a config's seeds, with the running seed's epochs under it. Anywhere else (CI, ``make
workers`` writing into files) the output stays plain lines, one per finished trial or seed, with
no control characters, so logs read and parse as before. ``--quiet`` keeps only the final
summary; ``--verbose`` adds a line per epoch of every trial.
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
    """The live display: a row over the run's trials (or a config's seeds) and a row over the
    running trial's (or seed's) epochs."""

    progress: Progress
    outer: TaskID
    epochs: TaskID

    @classmethod
    def start(cls, console: Console, label: str, total: int, status: str) -> _Bar:
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
            progress.add_task(label, total=total, status=status),
            progress.add_task("", total=None, status="", visible=False),
        )
        progress.start()
        return bar

    def follow(self, description: str) -> None:
        """The epoch row, from nothing, for the trial or seed that starts now."""
        self.progress.reset(
            self.epochs, total=None, description=description, status="", visible=True
        )
        self.progress.refresh()

    def epoch(self, epoch: int, epochs: int, status: str) -> None:
        self.progress.update(self.epochs, total=epochs, completed=epoch, status=status)
        self.progress.refresh()  # at once, not at the next tick: a line printed now shows it

    def advance(self, status: str | None = None) -> None:
        """One more trial or seed done; the outer row's status changes only when given."""
        if status is None:
            self.progress.advance(self.outer)
        else:
            self.progress.update(self.outer, advance=1, status=status)
        self.progress.refresh()

    def stop(self) -> None:
        """The outer row stays on the screen as the run's last word; the epoch row goes."""
        self.progress.remove_task(self.epochs)
        self.progress.stop()


class _Lines:
    """Plain lines through ``echo``, or, given a terminal ``console``, lines printed above a live
    bar while one runs: what ``tune run``, ``tune train`` and ``tune compare`` share."""

    def __init__(self, echo: Echo = print, console: Console | None = None) -> None:
        self.echo, self.console = echo, console
        self._bar: _Bar | None = None

    def summary(self, text: str) -> None:
        """What every run prints, ``--quiet`` or not."""
        if self.console is not None:  # above the bar while it runs
            self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            self.echo(text)

    @contextmanager
    def _live(self, label: str, total: int, status: str) -> Iterator[None]:
        """The bar while the block runs, on a terminal only."""
        if self.console is None:
            yield
            return
        self._bar = _Bar.start(self.console, label, total, status)
        try:
            yield
        finally:
            self._bar.stop()
            self._bar = None

    def _follow(self, description: str) -> None:
        if self._bar is not None:
            self._bar.follow(description)

    def _epoch(self, epoch: int, epochs: int, metric: str, value: float) -> None:
        if self._bar is not None:
            self._bar.epoch(epoch, epochs, f"{metric}={value:.4f}")

    def _advance(self, status: str | None = None) -> None:
        if self._bar is not None:
            self._bar.advance(status)


class RunProgress(_Lines):
    """The run's output: plain lines through ``echo``, or, given a terminal ``console``, lines
    printed above a live bar."""

    def __init__(
        self,
        echo: Echo = print,
        verbosity: Verbosity = Verbosity.NORMAL,
        console: Console | None = None,
    ) -> None:
        super().__init__(echo, console)
        self.verbosity = verbosity
        self.counts: Counter[TrialState] = Counter()
        self.metric = ""
        self.trial = -1

    def line(self, text: str) -> None:
        """What the run tells as it goes; ``--quiet`` drops it."""
        if self.verbosity is not Verbosity.QUIET:
            self.summary(text)

    @contextmanager
    def running(self, study: optuna.Study, trials: int) -> Iterator[None]:
        """The trials run inside: with the live bar on a terminal, unless ``--quiet``."""
        self.metric = study_objective(study).metric
        if self.verbosity is Verbosity.QUIET:
            yield
            return
        with self._live("trials", trials, self._status(study)):
            yield

    def watch(self, objective: TrialFunction) -> TrialFunction:
        """The objective, noting which trial runs, for the epoch lines."""

        def watched(trial: optuna.Trial) -> float:
            self.trial = trial.number
            self._follow(f"trial {trial.number}")
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
        self._epoch(epoch, epochs, self.metric, value)
        if self.verbosity is Verbosity.VERBOSE:
            self.line(epoch_line(self.trial, epoch, epochs, self.metric, value))

    def finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, text: str) -> None:
        """A trial ended: count it, update the best, print its line."""
        self.counts[trial.state] += 1
        self._advance(self._status(study))
        self.line(text)

    def _status(self, study: optuna.Study) -> str:
        return f"{best_text(study, self.metric)} · {counts_text(self.counts)}"


class RetrainProgress(_Lines):
    """What ``tune train`` and ``tune compare`` (and ``tune prove``'s retrains) show: on a
    terminal, a bar over one config's seeds and, under it, the running seed's epochs and its
    objective so far; anywhere else the plain lines they always printed, and nothing per epoch."""

    def line(self, text: str) -> None:
        self.summary(text)

    @contextmanager
    def seeds(self, config: str, seeds: int) -> Iterator[None]:
        with self._live("seeds", seeds, config):
            yield

    def seed(self, seed: int) -> None:
        """A seed starts training."""
        self._follow(f"seed {seed}")

    def epoch(self, epoch: int, epochs: int, metric: str, value: float) -> None:
        self._epoch(epoch, epochs, metric, value)

    def seed_done(self, text: str) -> None:
        """A seed trained or was found finished: count it and print its line."""
        self._advance()
        self.line(text)
