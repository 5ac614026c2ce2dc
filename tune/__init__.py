"""tune: find how much regularization a Keras image model needs.

Importing the package loads neither TensorFlow nor MLflow; the modules that need them import
them themselves.
"""

from __future__ import annotations

__version__ = "0.1.0"
