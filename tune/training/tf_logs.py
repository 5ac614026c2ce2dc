"""TensorFlow's C++ log lines that mean nothing on a machine without a GPU, kept off the terminal.

On a CPU-only machine, importing TensorFlow prints absl's preamble and "Could not find cuda
drivers", and the first op of every trial process prints an E-level "failed call to cuInit ...
(303)" that reads like a failure. TensorFlow writes them from C++ straight to file descriptor 2,
where no Python logging setting reaches, and ``TF_CPP_MIN_LOG_LEVEL=3`` would silence real errors
with them. So INFO is turned off (level 1: warnings and errors still print) and the process that
imports TensorFlow for the trials (``tune.training.trial_server``) writes its stderr, which every
trial inherits, through a small filter process that drops exactly these lines and nothing else.
``tune run --verbose`` leaves TensorFlow's logs as they are. This module never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from typing import BinaryIO

STDERR_FD = 2  # where TensorFlow's C++ logging writes, whatever ``sys.stderr`` is
LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
# Set by the parent, read in the fork server it starts: leave TensorFlow's logs unfiltered.
UNFILTERED_VAR = "TUNE_TF_LOGS_UNFILTERED"

# 303 is CUDA_ERROR_SHARED_OBJECT_INIT_FAILED: no driver library at all, the CPU-only case. Any
# other cuInit error is a real GPU problem and passes.
# INFO lines (absl's "I" level: "Could not find cuda drivers", an Intel CPU's "oneDNN custom
# operations are on") print before TensorFlow applies TF_CPP_MIN_LOG_LEVEL, which asks for none.
NO_GPU_LINES: tuple[re.Pattern[str], ...] = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:.]+ +\d+ [\w.]+\.cc:\d+\] .*"),
    re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*\(303\)"),
)


def choose_tensorflow_logs(unfiltered: bool) -> None:
    """Called in the parent before any trial process starts, which all inherit its environment.
    A level the user exported is kept; an empty one counts as none."""
    if not os.environ.get(LEVEL_VAR):
        os.environ[LEVEL_VAR] = "0" if unfiltered else "1"
    if unfiltered:
        os.environ[UNFILTERED_VAR] = "1"
    else:
        os.environ.pop(UNFILTERED_VAR, None)


def is_no_gpu_noise(line: str) -> bool:
    return any(pattern.fullmatch(line.rstrip("\r\n")) for pattern in NO_GPU_LINES)


def copy_without_noise(source: BinaryIO, sink: BinaryIO) -> None:
    """Line by line, flushed at once, so real warnings and errors show when they happen."""
    for line in source:
        if not is_no_gpu_noise(line.decode(errors="replace")):
            sink.write(line)
            sink.flush()


def filter_stderr() -> subprocess.Popen[bytes] | None:
    """Route this process's file descriptor 2, and so its children's, through the filter process.
    The filter ends when the last writer closes its stderr; it ignores the stop signals, so a
    Ctrl-C to the process group cannot cut off the error messages of the processes it serves."""
    if os.environ.get(UNFILTERED_VAR):
        return None
    sys.stderr.flush()
    process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=STDERR_FD)
    assert process.stdin is not None
    os.dup2(process.stdin.fileno(), STDERR_FD)
    process.stdin.close()
    return process


def _serve() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    copy_without_noise(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    _serve()
