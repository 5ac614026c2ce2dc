"""The TensorFlow-free engine: the study configuration read from a search-space file
(``config``), the Optuna study (``study``), one trial from suggestion to record (``objective``),
the regime diagnosis (``diagnosis``) and what each trial stores (``trial_record``). Nothing here
imports TensorFlow, MLflow or matplotlib; trials reach the Keras side through ``tune.contract``."""
