"""The precision ``auto`` picks on given device details, and a fork server that has imported
TensorFlow without touching a device, so each trial process it forks can still open the GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tune.training import fit

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("capability", "expected"), [
    ((9, 0), "mixed_bfloat16"),  # H100
    ((8, 0), "mixed_bfloat16"),  # A100
    ((7, 5), "float32"),  # T4: no native bfloat16
    ((0, 0), "float32"),  # a GPU that reports no capability
])
def test_auto_precision_on_a_gpu_follows_its_compute_capability(
    capability: tuple[int, int], expected: str
) -> None:
    """The GPU decides, whatever the CPU has."""
    assert fit.resolve_precision("auto", frozenset({"avx512_bf16"}), capability) == expected
    assert fit.resolve_precision("float32", frozenset(), capability) == "float32"


def test_the_fork_server_imports_tensorflow_without_opening_a_device() -> None:
    """CUDA initialized before a fork is unusable in the child: the trial server's imports must
    neither list the devices (which initializes the driver) nor open TensorFlow's context. The
    check itself can see both: after listing the devices it reads them as listed."""
    code = (
        "import tune.training.trial_server\n"
        "import tensorflow as tf\n"
        "from tensorflow.python.eager import context\n"
        "ctx = context.context()\n"
        "print(ctx._physical_devices is None, ctx._initialized)\n"
        "tf.config.list_physical_devices('GPU')\n"
        "print(ctx._physical_devices is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-2:] == ["True False", "False"], out.stdout + out.stderr
