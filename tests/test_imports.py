"""The orchestration must stay importable without TensorFlow: quick CLI start-up, and tests of
search, diagnosis, export and reporting that never pay for (or depend on) the framework."""

from __future__ import annotations

import subprocess
import sys

TF_FREE = [
    "tune.cli", "tune.search_space", "tune.study", "tune.storage", "tune.run", "tune.export", "tune.diagnosis",
    "tune.plots", "tune.report", "tune.study_plots", "tune.trial_record", "tune.tracking", "tune.datasets",
    "tune.objective", "tune.isolation", "tune.publish",
]


def test_orchestration_modules_do_not_load_tensorflow() -> None:
    code = f"import sys\nfor m in {TF_FREE!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
