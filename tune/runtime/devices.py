"""Which accelerator and how many threads each worker process gets, decided before TensorFlow loads
anywhere: a worker sees only its own GPU (``CUDA_VISIBLE_DEVICES``), and TensorFlow on a GPU that
others share takes memory as it needs it instead of all of it at start-up.

``python -m tune.runtime.devices INDEX WORKERS`` prints the environment of worker ``INDEX`` of
``WORKERS`` as ``export`` lines, for ``make workers``. Importing this module loads no TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

GPU_ENV = "CUDA_VISIBLE_DEVICES"
# TensorFlow reads this when it first touches a GPU: grow the allocation instead of mapping the
# whole card, so two processes (a study and a retrain, two workers) can share one.
GROWTH_ENV, GROWTH_ON = "TF_FORCE_GPU_ALLOW_GROWTH", "true"
THREAD_ENVS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def visible_gpus(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs this process may hand out: those ``CUDA_VISIBLE_DEVICES`` names, else every one
    ``nvidia-smi`` lists (none without the driver), numbered as CUDA numbers them."""
    if GPU_ENV in environ:
        return [gpu for gpu in environ[GPU_ENV].split(",") if gpu.strip() and gpu.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    lines = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    return [str(number) for number in range(len(lines))] if listed.returncode == 0 else []


def worker_environment(
    index: int, workers: int, *, cores: int, gpus: Sequence[str], threads: int | None = None
) -> dict[str, str]:
    """Worker ``index`` of ``workers``: the cores split evenly (oversubscribed thread pools cost
    more than they give), GPUs dealt round-robin, so with as many GPUs as workers each has its own,
    and memory growth on wherever a GPU may be shared."""
    if not 0 <= index < workers:
        raise ValueError(f"0 <= index < workers must hold, got index={index}, workers={workers}")
    count = threads or max(1, cores // workers)
    env = dict.fromkeys(THREAD_ENVS, str(count))
    if gpus:
        env[GPU_ENV] = gpus[index % len(gpus)]
    env[GROWTH_ENV] = GROWTH_ON
    return env


def share_gpu_memory() -> None:
    """Called before TensorFlow loads in a process (and so in the trial processes it starts); a
    value the user exported wins."""
    os.environ.setdefault(GROWTH_ENV, GROWTH_ON)


def main(argv: Sequence[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m tune.runtime.devices INDEX WORKERS [THREADS]", file=sys.stderr)
        return 2
    index, workers, *threads = (int(value) for value in argv)
    env = worker_environment(
        index,
        workers,
        cores=os.cpu_count() or 1,
        gpus=visible_gpus(),
        threads=next(iter(threads), None),
    )
    print("\n".join(f"export {key}={value}" for key, value in env.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
