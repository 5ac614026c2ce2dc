"""Errors a user can act on.

Every problem caused by input (a search-space file, a data source, a storage URL) is raised as a
``TuneError``; the CLI prints its message on one line and exits with status 2, so a traceback
always means a bug in ``tune`` itself.
"""

from __future__ import annotations


class TuneError(Exception):
    """Base of all errors caused by the user's input or environment."""


class SpaceError(TuneError):
    """A search-space file is missing, unreadable or invalid."""


class DataError(TuneError):
    """A data source cannot be found, read or understood."""


class StudyError(TuneError):
    """A study or its storage cannot be opened, or holds nothing to use."""


class StudyNotFound(StudyError):
    """The storage answers but holds no study of that name (yet)."""


class Interrupted(KeyboardInterrupt):
    """A stop signal that ``tune run`` handles itself (Ctrl-C, TERM, HUP), raised the way Ctrl-C
    raises KeyboardInterrupt, so that every cleanup Ctrl-C runs (the trial failed as interrupted,
    its process gone, MLflow runs closed) runs for each of them."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class TrialProcessDied(TuneError):
    """A trial's training process ended without a result (killed, out of memory, a crash inside
    TensorFlow); the trial is failed, the study goes on."""


class TrainingDiverged(TuneError):
    """Training produced a non-finite loss; the trial is failed, the study goes on."""


class ModelError(TuneError):
    """A model source cannot be loaded, built or rewritten, or a knob cannot act on the model."""
