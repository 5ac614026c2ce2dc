"""A study's budget as a total: ``study.trials`` and ``study.timeout`` of the space are what the
whole study may spend, however many times ``tune prove`` is stopped and run again, so a rerun
carries on where the last one stopped instead of starting the budget over. (``tune run`` keeps
its own meaning: each run adds ``study.trials`` more.)

Trials count when they ended on their own: completed, pruned, or failed for a reason of their
own (training diverged, the process crashed). A trial failed because the user stopped the run
(``interrupted``) is not a result, and neither is one whose worker died and that is queued again
(another trial is its ``retry_of``); both are run again in the budget's place.

Seconds count as the wall time of ``tune prove``'s study phases, data loading and report
included, added to the study's ``SPENT_SECONDS_ATTR`` user attribute when each phase ends,
however it ends (a Ctrl-C, TERM or HUP included). The wall time rather than the trials' own
durations, because the timeout is wall time: trials of parallel workers overlap, and a
trial's duration leaves out what a run spends between trials. A process killed outright
(SIGKILL, a power cut) records nothing for that run, and trials that ``tune run`` or other
workers ran take no seconds from the budget (their trials count all the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from tune.contract import TrialAttr
from tune.engine.config import StudySettings
from tune.engine.objective import INTERRUPTED
from tune.engine.trial_record import trial_failure

SPENT_SECONDS_ATTR = "spent_seconds"
_ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class Budget:
    """What a study has spent of its budget and what is left; ``timeout`` None: no time limit."""

    trials: int
    timeout: float | None
    spent_trials: int
    spent_seconds: float

    @property
    def trials_left(self) -> int:
        return max(self.trials - self.spent_trials, 0)

    @property
    def seconds_left(self) -> float | None:
        return None if self.timeout is None else max(self.timeout - self.spent_seconds, 0.0)

    @property
    def exhausted(self) -> bool:
        return self.trials_left == 0 or self.seconds_left == 0.0


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials the budget has paid for (see the module's docstring)."""
    retried = {trial.user_attrs.get(TrialAttr.RETRY_OF) for trial in trials}
    return [
        trial
        for trial in trials
        if trial.state in _ENDED
        and trial_failure(trial) != INTERRUPTED
        and trial.number not in retried
    ]


def study_budget(settings: StudySettings, study: optuna.Study | None) -> Budget:
    """The budget of ``settings`` against what ``study`` (None: not created yet) has spent."""
    if study is None:
        return Budget(settings.trials, settings.timeout, 0, 0.0)
    return Budget(
        settings.trials,
        settings.timeout,
        len(counted(study.get_trials(deepcopy=False))),
        float(study.user_attrs.get(SPENT_SECONDS_ATTR, 0.0)),
    )


def add_spent_seconds(study: optuna.Study, seconds: float) -> float:
    """Adds one study phase's wall time; returns the study's total."""
    total = float(study.user_attrs.get(SPENT_SECONDS_ATTR, 0.0)) + seconds
    study.set_user_attr(SPENT_SECONDS_ATTR, total)
    return total
