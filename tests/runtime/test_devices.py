"""What each worker process is given before TensorFlow loads: its threads, its own GPU when there
are enough, and GPU memory that grows rather than being taken whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tune.runtime.devices import (
    GPU_ENV,
    GROWTH_ENV,
    visible_gpus,
    worker_environment,
)


def test_with_as_many_gpus_as_workers_each_worker_has_its_own() -> None:
    envs = [worker_environment(i, 4, cores=16, gpus=["0", "1", "2", "3"]) for i in range(4)]
    assert [env[GPU_ENV] for env in envs] == ["0", "1", "2", "3"]
    assert {env["TF_NUM_INTRAOP_THREADS"] for env in envs} == {"4"}
    assert {env[GROWTH_ENV] for env in envs} == {"true"}


def test_more_workers_than_gpus_share_them_round_robin() -> None:
    gpus = [worker_environment(i, 5, cores=2, gpus=["3", "5"])[GPU_ENV] for i in range(5)]
    assert gpus == ["3", "5", "3", "5", "3"]


def test_without_a_gpu_a_worker_only_gets_its_share_of_the_cores() -> None:
    env = worker_environment(1, 2, cores=2, gpus=[])
    assert GPU_ENV not in env
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "1"
    assert worker_environment(0, 4, cores=2, gpus=[])["TF_NUM_INTRAOP_THREADS"] == "1"
    assert worker_environment(0, 2, cores=2, gpus=[], threads=3)["TF_NUM_INTRAOP_THREADS"] == "3"


def test_a_worker_index_outside_the_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="index=2, workers=2"):
        worker_environment(2, 2, cores=2, gpus=[])


def test_the_gpus_to_hand_out_are_those_the_environment_allows() -> None:
    assert visible_gpus({GPU_ENV: "2,7"}) == ["2", "7"]
    assert visible_gpus({GPU_ENV: ""}) == []
    assert visible_gpus({GPU_ENV: "-1"}) == []


def test_make_workers_reads_the_environment_as_export_lines() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tune.runtime.devices", "1", "2"],
        capture_output=True, text=True, check=True, env={"PATH": "", GPU_ENV: "4,6"},
    ).stdout.splitlines()
    assert f"export {GPU_ENV}=6" in out and f"export {GROWTH_ENV}=true" in out
