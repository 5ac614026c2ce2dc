"""What the fork server of ``tune.training.isolated`` imports once, before it forks a process per
trial: first TensorFlow's no-GPU log lines are filtered out of the server's stderr, which every
trial process inherits (see ``tune.training.tf_logs``), then the trainer's module loads, and
TensorFlow with it, once for all trials. Only the fork server imports this module: importing it
elsewhere would reroute that process's stderr."""

from __future__ import annotations

import importlib

from tune.training.isolated import FIT_MODULE
from tune.training.tf_logs import filter_stderr

STDERR_FILTER = filter_stderr()  # kept referenced for as long as the server lives
importlib.import_module(FIT_MODULE)
