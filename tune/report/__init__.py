"""The study report, split by concept: what the trials say (``analysis``, typed rows), the
figures (``curves`` for one trial, ``figures`` for the study, ``interactive`` for the plotly page),
the HTML page (``page``), the terminal text (``text``) and attaching it all to MLflow
(``publish``). Everything is read back from the Optuna study, so no TensorFlow is needed."""
