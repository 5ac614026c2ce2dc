"""The TensorFlow-free engine: search spaces (``space``), the Optuna study (``study``, with its
storage URLs in ``storage``), one trial from suggestion to record (``objective``), the regime
diagnosis (``diagnosis``) and what each trial stores (``trial_record``). Nothing here imports
TensorFlow or MLflow; trials reach the Keras side through ``tune.contract``."""
