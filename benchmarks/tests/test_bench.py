"""Benchmarks on real CIFAR-10 (`make bench`): data loading, memory and a real quick study; training
throughput is `make bench-speed` (``benchmarks.speed``).

Every figure is measured side by side in one run and written to mlruns/bench/results.json;
assertions check the targets as ratios, never as absolute times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.paths import ROOT, SHARED_DATA
from tests.support.processes import tune_cli

ARCHIVE = SHARED_DATA / "cifar10-jpeg.tar.gz"
RESULTS = ROOT / "mlruns" / "bench" / "results.json"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        not ARCHIVE.exists(), reason=f"{ARCHIVE} not found (real CIFAR-10 for benchmarks)"
    ),
]


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, Any]]:
    collected: dict[str, Any] = {}
    yield collected
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(
        json.dumps(
            {**previous, **collected, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2
        )
    )
    print(f"\nbenchmark results: {RESULTS}\n{json.dumps(collected, indent=2)}")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tune.data.sources import load_dataset

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield load_dataset(str(ARCHIVE))


def test_decoded_cache_makes_the_second_load_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results: dict[str, Any]
) -> None:
    from tune.data.sources import load_dataset

    monkeypatch.setenv("TUNE_CACHE_DIR", str(tmp_path))
    started = time.perf_counter()
    first = load_dataset(str(ARCHIVE))
    decode = time.perf_counter() - started
    started = time.perf_counter()
    second = load_dataset(str(ARCHIVE))
    cached = time.perf_counter() - started
    assert np.array_equal(first.x_train, second.x_train) and first.x_train.shape == (
        50000,
        32,
        32,
        3,
    )
    results["data_load"] = {
        "decode_s": round(decode, 2),
        "cached_s": round(cached, 2),
        "speedup": round(decode / cached, 1),
    }
    assert decode / cached > 5


def _rss_per_trial(train: Callable[..., object], trials: int) -> list[float]:
    """MiB of resident memory (this process and its children) after each trial."""
    import psutil

    from tune.contract import ModelSource
    from tune.data.sources import load_dataset
    from tune.data.splits import split_for_tuning
    from tune.engine.config import BASELINE, default_train_settings

    splits = split_for_tuning(load_dataset("synthetic:2000"), 400, None, seed=0)
    me = psutil.Process()
    rss: list[float] = []
    for trial in range(trials):
        params = {
            **BASELINE,
            "l2_dense": 10 ** -(trial % 4 + 2),
            "dropconnect": 0.25 * (trial % 2),
            "flip": bool(trial % 3),
        }
        train(
            params,
            splits,
            default_train_settings(ModelSource(), 2, seed=trial, clean_train_size=400),
            lambda e, logs: None,
        )
        rss.append(sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20)
    return rss


def test_memory_stays_bounded_over_many_trials(results: dict[str, Any]) -> None:
    """What `tune run` does (a trial process retired after TRIALS_PER_PROCESS trials) against
    training every trial in one process: over three lifetimes of a trial process, the peak
    memory of the last lifetime is no higher than that of the first."""
    from tune.training.fit import train_model
    from tune.training.isolated import TRIALS_PER_PROCESS, train_isolated

    span = TRIALS_PER_PROCESS
    isolated, in_process = (
        _rss_per_trial(train_isolated, 3 * span),
        _rss_per_trial(train_model, 3 * span),
    )
    isolated_rise = max(isolated[2 * span:]) - max(isolated[:span])
    in_process_rise = max(in_process[2 * span:]) - max(in_process[:span])
    results["memory_rise_mib_over_two_process_lifetimes"] = {
        "trial_processes": round(isolated_rise, 1),
        "one_process": round(in_process_rise, 1),
        "trials_per_process": span,
    }
    assert isolated_rise < 20, (
        f"peak RSS rose {isolated_rise:.1f} MiB from the first trial process's lifetime "
        "to the third"
    )


def test_quick_study_on_real_data(tmp_path: Path, results: dict[str, Any]) -> None:
    """The README's first-look command, timed, with its diagnosis and report checked."""
    import optuna

    from tune.runtime.storage import open_storage

    env = {"TUNE_STORE_DIR": str(tmp_path / "mlruns"), "MLFLOW_TRACKING_URI": ""}
    started = time.perf_counter()
    run = tune_cli("run", "search_spaces/quick.yaml", "--data", str(ARCHIVE), env=env, timeout=1800)
    elapsed = time.perf_counter() - started
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(
        study_name="quick",
        storage=open_storage(f"journal:{tmp_path / 'mlruns/optuna/journal.log'}"),
    )
    regimes = [t.user_attrs["regime"] for t in study.trials]
    results["quick_study"] = {
        "seconds": round(elapsed),
        "trials": len(study.trials),
        "best_value": round(study.best_value, 4),
        "regimes": {r: regimes.count(r) for r in sorted(set(regimes))},
    }
    assert len(study.trials) == 8 and (tmp_path / "mlruns/reports/quick/report.html").exists()
