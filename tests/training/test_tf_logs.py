"""TensorFlow's start-up chatter is dropped by its log format and level, on both CPUs ``tune`` runs
on (an AMD EPYC and an Intel Xeon, both with AVX-512) and in both formats TensorFlow 2.18-2.21
write; its real warnings and errors, and anything else on stderr, pass in order. Then the same
with real TensorFlow on this machine. Through ``tune run`` and ``tune train``:
tests/end_to_end/test_run_and_export.py."""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tune.training.tf_logs import LogLine, copy_without_noise, is_noise, parse_log_line

ONEDNN = (
    "oneDNN custom operations are on. You may see slightly different numerical results due to "
    "floating-point round-off errors from different computation orders. To turn them off, set "
    "the environment variable `TF_ENABLE_ONEDNN_OPTS=0`."
)
OPTIMIZED = (
    "This TensorFlow binary is optimized to use available CPU instructions in "
    "performance-critical operations."
)
NO_DRIVERS = "Could not find cuda drivers on your machine, GPU will not be used."
CUINIT_303 = (
    "failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
)
PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def _instructions(names: str) -> str:
    return (
        f"To enable the following instructions: {names}, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags."
    )


# Collected on this machine, an AMD EPYC with AVX-512 (VNNI, BF16), CPU only, TensorFlow 2.21.0:
# stderr of `python -c "import tensorflow as tf; tf.zeros(1) + 1"` with TF_CPP_MIN_LOG_LEVEL=0.
# The first three lines came twice (once per shared library that logs them); the instruction
# list only at level 0; the cuInit error once, at the first op.
AMD_NOISE = (
    PREAMBLE,
    f"I0000 00:00:1796673221.924147   10305 port.cc:153] {ONEDNN}",
    f"I0000 00:00:1796673221.924884   10305 cudart_stub.cc:31] {NO_DRIVERS}",
    f"I0000 00:00:1796673221.975790   10305 cpu_feature_guard.cc:227] {OPTIMIZED}",
    _instructions("AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA"),
    f"E0000 00:00:1796673227.260692   10305 cuda_platform.cc:52] {CUINIT_303}",
)
# An Intel Xeon with AVX-512 FP16 and AMX (Sapphire Rapids), CPU only, TensorFlow 2.20-2.21 (the
# line numbers of 2.21 above): a public CI log, its wording checked against TensorFlow's
# tensorflow/core/util/port.cc and the strings of the 2.21 wheel. The first line is the one seen
# on the Xeon tune runs on.
SAPPHIRE_RAPIDS = (
    "AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX512_FP16 AVX_VNNI AMX_TILE AMX_INT8 AMX_BF16 FMA"
)
INTEL_NOISE = (
    f"I0000 00:00:1796538656.462278   10811 port.cc:153] {ONEDNN}",
    f"I0000 00:00:1791045162.762244    2815 cpu_feature_guard.cc:227] {OPTIMIZED}",
    _instructions(SAPPHIRE_RAPIDS),
    PREAMBLE,
    f"I0000 00:00:1791045164.697807    2815 port.cc:153] {ONEDNN}",
    f"I0000 00:00:1791045164.700487    2815 cudart_stub.cc:31] {NO_DRIVERS}",
)
# The same start-up lines as TensorFlow's own logger writes them in earlier wheels of the range
# (cpu_feature_guard.cc:210, cuda_platform.cc:51): the date first, then the level and the source
# path. Public logs: the first three from a Sapphire Rapids Xeon, the last two from a CPU-only
# machine.
INTEL_TSL_NOISE = (
    f"2025-09-26 16:08:31.177001: I tensorflow/core/util/port.cc:153] {ONEDNN}",
    f"2025-09-26 16:08:31.228971: I tensorflow/core/platform/cpu_feature_guard.cc:210] {OPTIMIZED}",
    _instructions(SAPPHIRE_RAPIDS),
    "2025-10-28 19:39:53.892312: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:31] "
    f"{NO_DRIVERS}",
    "2025-10-28 19:39:58.661078: E "
    f"external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] {CUINIT_303}",
)
NOISE = (*AMD_NOISE, *INTEL_NOISE, *INTEL_TSL_NOISE)

REAL_LINES = (
    # this machine, TensorFlow 2.21: an unreadable TF_ENABLE_ONEDNN_OPTS, a missing file
    "W0000 00:00:1796673184.610637    9317 port.cc:148] TF_ENABLE_ONEDNN_OPTS is not set to "
    "either '0', 'false', '1', or 'true'. Using the default setting: true",
    "W0000 00:00:1796673866.929291   19090 op_kernel.cc:1858] OP_REQUIRES failed at "
    "whole_file_read_ops.cc:117 : NOT_FOUND: /nonexistent/file; No such file or directory",
    # cpu_allocator_impl.cc's warning in both formats (the second from a public log)
    "W0000 00:00:1796673879.222562   19217 cpu_allocator_impl.cc:84] Allocation of 123456 "
    "exceeds 10% of free system memory.",
    "2025-10-28 19:39:59.060312: W external/local_xla/xla/tsl/framework/cpu_allocator_impl.cc:84] "
    "Allocation of 169344000 exceeds 10% of free system memory.",
    # errors: a GPU machine's (a seven-digit thread id), cuInit failing for another reason, fatal
    "E0000 00:00:1758870517.195873 3168446 ptx_compiler_helpers.cc:88] *** WARNING *** Invoking "
    "ptxas with version 12.1.105, which corresponds to a CUDA version <=12.6.2. CUDA versions "
    "12.x.y up to and including 12.6.2 miscompile certain edge cases around clamping.",
    "E0000 00:00:1796673227.260692   10305 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected",
    "E0000 00:00:1796154938.625586    8212 cuda_platform.cc:52] failed call to cuInit: "
    "CUDA_ERROR_OUT_OF_MEMORY (2)",
    f"F0000 00:00:1796673227.260692   10305 cuda_platform.cc:52] {CUINIT_303}",
    # not TensorFlow's C++ logging at all
    "Traceback (most recent call last):",
    '  File "/work/main/tune/training/fit.py", line 42, in train_model',
    "tensorflow.python.framework.errors_impl.NotFoundError: /nonexistent/file; No such file",
    "WARNING:tensorflow:From /venv/lib/python3.11/site-packages/tf_keras/src/losses.py:2976: "
    "The name tf.losses.sparse_softmax_cross_entropy is deprecated.",
    f"{PREAMBLE}, and more",
    "oneDNN custom operations are on",  # a line that mentions it is not TensorFlow's message
)


@pytest.mark.parametrize("line", NOISE)
def test_every_start_up_line_of_both_cpus_and_both_formats_is_noise(line: str) -> None:
    assert is_noise(line + "\n")


@pytest.mark.parametrize("line", REAL_LINES)
def test_real_warnings_errors_and_other_lines_are_not(line: str) -> None:
    assert not is_noise(line + "\n")


def test_the_level_and_source_come_from_either_prefix() -> None:
    assert parse_log_line(AMD_NOISE[1]) == LogLine("I", "port.cc", ONEDNN)
    assert parse_log_line(INTEL_TSL_NOISE[0]) == LogLine(
        "I", "tensorflow/core/util/port.cc", ONEDNN
    )
    assert parse_log_line(INTEL_TSL_NOISE[-1]) == LogLine(
        "E", "external/local_xla/xla/stream_executor/cuda/cuda_platform.cc", CUINIT_303
    )
    fatal = parse_log_line(REAL_LINES[7])
    assert fatal is not None and fatal.level == "F"
    # TensorFlow's own logger with TF_CPP_LOG_THREAD_ID=1 puts the thread id after the level
    with_thread = "2025-09-26 16:08:31.177001: W    1234 tensorflow/core/kernels/x.cc:7] careful"
    assert parse_log_line(with_thread) == LogLine("W", "tensorflow/core/kernels/x.cc", "careful")
    assert parse_log_line(PREAMBLE) is None
    assert parse_log_line(AMD_NOISE[4]) is None  # the instruction list: a second line, no prefix
    assert parse_log_line("Traceback (most recent call last):") is None


def test_the_filter_keeps_real_lines_in_order_and_drops_only_the_noise() -> None:
    mixed = [*NOISE[:6], *REAL_LINES[:5], *NOISE[6:], *REAL_LINES[5:], *NOISE, ""]
    sink = io.BytesIO()
    copy_without_noise(io.BytesIO("\r\n".join(mixed).encode()), sink)  # CRLF too
    assert sink.getvalue().decode().splitlines() == list(REAL_LINES)


@pytest.mark.integration
def test_a_filtered_process_and_its_children_write_only_the_real_lines(tmp_path: Path) -> None:
    """At the file-descriptor level, as TensorFlow's C++ logging writes, for the process that
    filters and for a child that inherits its stderr, as trial processes do."""
    written = tmp_path / "stderr.txt"
    lines = [*INTEL_NOISE, REAL_LINES[2], *INTEL_TSL_NOISE, REAL_LINES[3], ""]
    written.write_text("\n".join(lines))
    emit = f"import os; os.write(2, open({str(written)!r}, 'rb').read())"
    code = (
        "import subprocess, sys\nfrom tune.training.tf_logs import filter_stderr\n"
        f"filter_stderr()\n{emit}\n"
        f"subprocess.run([sys.executable, '-c', {emit!r}], check=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [REAL_LINES[2], REAL_LINES[3]] * 2


def _without_prefix(line: str) -> str:
    """A line as it reads whenever it is written: level, source and message."""
    parsed = parse_log_line(line)
    return line if parsed is None else " ".join(parsed)


@pytest.mark.integration
def test_real_tensorflow_here_prints_only_its_real_warnings_through_the_filter() -> None:
    """Everything TensorFlow prints at level 0 with oneDNN on, unfiltered and then filtered: the
    filter drops exactly what ``is_noise`` calls noise, and there is noise to drop."""
    work = (
        "import tensorflow as tf\ntf.zeros(1) + 1\ntry:\n"
        "    tf.io.read_file('/nonexistent/file')\n"
        "except tf.errors.NotFoundError:\n    pass\n"
    )
    filtered = "from tune.training.tf_logs import filter_stderr\nfilter_stderr()\n" + work
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"}
    env.pop("TUNE_TF_LOGS_UNFILTERED", None)
    raw, kept = (
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        for code in (work, filtered)
    )
    assert raw.returncode == 0 and kept.returncode == 0, raw.stderr + kept.stderr
    raw_lines, kept_lines = raw.stderr.splitlines(), kept.stderr.splitlines()
    assert [line for line in raw_lines if is_noise(line)], raw.stderr
    if platform.machine() in ("x86_64", "AMD64"):  # two libraries, one line each
        assert sum(ONEDNN in line for line in raw_lines) == 2, raw.stderr
    assert not [line for line in kept_lines if is_noise(line)], kept.stderr
    assert any("OP_REQUIRES failed" in line for line in kept_lines), kept.stderr
    assert sorted(map(_without_prefix, kept_lines)) == sorted(
        _without_prefix(line) for line in raw_lines if not is_noise(line)
    )
