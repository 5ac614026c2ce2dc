"""TensorFlow's start-up chatter kept off the terminal, by the format and level of its log lines.

Importing TensorFlow prints INFO lines whatever ``TF_CPP_MIN_LOG_LEVEL`` says: absl's preamble,
"Could not find cuda drivers", "oneDNN custom operations are on" on a CPU with AVX-512 VNNI or
BF16, AVX-VNNI or AMX (recent Xeons and EPYCs), and at level 0 the instructions the wheel was not
built for, in two lines of which only the first has a log prefix. Each comes twice: two of the
wheel's shared libraries (``libtensorflow_framework.so.2`` and the profiler's
``_pywrap_profiler_plugin.so``) hold their own copy of absl logging and of the code that logs
them. The first op of a process on a machine without a GPU adds an E-level "failed call to cuInit
... (303)" that reads like a failure. TensorFlow writes all of it from C++ straight to file
descriptor 2, where no Python logging setting reaches, and ``TF_CPP_MIN_LOG_LEVEL=3`` would
silence real errors with it.

So INFO is turned off where TensorFlow honours the level (1: warnings and errors still print), and
each process that imports TensorFlow (the trials' fork server, ``tune.training.trial_server``, and
the process of ``tune train`` and ``tune compare``) writes its stderr, which its children inherit,
through a small filter process. The filter goes by a line's log format and level, not by a list of
messages: it drops every INFO line, the preamble, the instruction list's second line and the
CPU-only cuInit error, and keeps every other warning and error, every fatal error, and anything
that is not a TensorFlow log line (a Python traceback). ``tune run --verbose`` leaves TensorFlow's
logs as they are. This module never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from typing import BinaryIO, NamedTuple

from tune.runtime.processes import STOP_SIGNALS

STDERR_FD = 2  # where TensorFlow's C++ logging writes, whatever ``sys.stderr`` is
LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
# Set by the parent, read in the fork server it starts: leave TensorFlow's logs unfiltered.
UNFILTERED_VAR = "TUNE_TF_LOGS_UNFILTERED"

# The two prefixes of TensorFlow's C++ log lines, one per logger the wheel holds. absl's
# "[IWEF]MMDD hh:mm:ss.uuuuuu  thread file.cc:line] ", which TensorFlow 2.21 writes all of these
# lines with (before absl::InitializeLog, as at start-up, MMDD is 0000 and the time is "00:00:"
# and the seconds since 1970); and TensorFlow's own (tsl) "YYYY-MM-DD hh:mm:ss.uuuuuu: [IWEF]
# path/file.cc:line] " (a thread id after the level with TF_CPP_LOG_THREAD_ID), which earlier
# wheels write the same start-up lines with.
ABSL_PREFIX = r"(?P<absl_level>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ "
TSL_PREFIX = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tsl_level>[IWEF])(?: +\d+)? "
LOG_LINE = re.compile(rf"(?:{ABSL_PREFIX}|{TSL_PREFIX})(?P<source>\S+):\d+\] (?P<message>.*)")

# 303 is CUDA_ERROR_SHARED_OBJECT_INIT_FAILED: no driver library at all, the CPU-only case. Any
# other cuInit error is a real GPU problem and passes, as does any other warning or error.
HARMLESS_ERRORS: tuple[re.Pattern[str], ...] = (re.compile(r"failed call to cuInit: .*\(303\)"),)

# Start-up lines without a log prefix of their own. The instruction list is the second line of
# cpu_feature_guard.cc's INFO message; the others are these messages however they reach stderr.
UNPREFIXED_NOISE: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"WARNING: All log messages before absl::InitializeLog\(\) is called "
        r"are written to STDERR"
    ),
    re.compile(
        r"To enable the following instructions: [\w. ]+, in other operations, "
        r"rebuild TensorFlow with the appropriate compiler flags\."
    ),
    re.compile(
        r"This TensorFlow binary is optimized to use available CPU instructions "
        r"in performance-critical operations\."
    ),
    re.compile(r"(?:oneDNN|ZenDNN) custom operations are on\. .*"),
)


class LogLine(NamedTuple):
    """A TensorFlow C++ log line: its level (I, W, E or F), source file and message."""

    level: str
    source: str
    message: str


def parse_log_line(line: str) -> LogLine | None:
    """None for anything TensorFlow's C++ logging did not write, which the filter never drops
    unless it is one of the known unprefixed start-up lines."""
    match = LOG_LINE.fullmatch(line)
    if match is None:
        return None
    return LogLine(match["absl_level"] or match["tsl_level"], match["source"], match["message"])


def choose_tensorflow_logs(unfiltered: bool) -> None:
    """Called in the parent before any trial process starts, which all inherit its environment.
    A level the user exported is kept; an empty one counts as none."""
    if not os.environ.get(LEVEL_VAR):
        os.environ[LEVEL_VAR] = "0" if unfiltered else "1"
    if unfiltered:
        os.environ[UNFILTERED_VAR] = "1"
    else:
        os.environ.pop(UNFILTERED_VAR, None)


def is_noise(line: str) -> bool:
    """INFO never matters on the terminal; a fatal error always does; of warnings and errors only
    the CPU-only cuInit one is known to be harmless."""
    text = line.rstrip("\r\n")
    parsed = parse_log_line(text)
    if parsed is None:
        return any(pattern.fullmatch(text) for pattern in UNPREFIXED_NOISE)
    if parsed.level == "I":
        return True
    if parsed.level == "F":
        return False
    return any(pattern.fullmatch(parsed.message) for pattern in HARMLESS_ERRORS)


def copy_without_noise(source: BinaryIO, sink: BinaryIO) -> None:
    """Line by line, flushed at once, so real warnings and errors show when they happen."""
    for line in source:
        if not is_noise(line.decode(errors="replace")):
            sink.write(line)
            sink.flush()


def filter_stderr() -> subprocess.Popen[bytes] | None:
    """Route this process's file descriptor 2, and so its children's, through the filter process.
    The filter ends when the last writer closes its stderr; it ignores the stop signals, so a
    Ctrl-C to the process group cannot cut off the error messages of the processes it serves."""
    if os.environ.get(UNFILTERED_VAR):
        return None
    sys.stderr.flush()
    process = subprocess.Popen(
        [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=STDERR_FD
    )
    assert process.stdin is not None
    os.dup2(process.stdin.fileno(), STDERR_FD)
    process.stdin.close()
    return process


def _serve() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    copy_without_noise(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    _serve()
