"""Names ``tune`` accepts for models, optimizers and precisions.

Kept apart from the Keras modules so that the search-space schema and the CLI can validate these
names without loading TensorFlow.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("seed_cnn", "vgg_bn")
OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "sgd", "rmsprop", "adamw")
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")
