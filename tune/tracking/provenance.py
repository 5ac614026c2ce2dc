"""What produced a result: code version and package versions, stored with every study run so a
number in MLflow can be traced back and reproduced."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("tune", "tensorflow", "keras", "optuna", "mlflow", "scikit-learn", "numpy")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str:
    """The commit of the installed code, marked ``-dirty`` when it has uncommitted changes."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown"
    return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def provenance_tags() -> dict[str, str]:
    return {
        "tune.git_commit": git_commit(),
        **{f"tune.version.{k}": v for k, v in package_versions().items()},
    }
