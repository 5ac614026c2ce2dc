"""The study report, split by concept: how values are written (``formatting``), what the trials
say (``findings``, typed rows and effect bins; ``steering``, which way to move each knob), the
figures (``curves`` for one trial, ``figures`` for the study, ``interactive`` for the plotly page),
the HTML page (``page``), the terminal text (``text``) and ``build``, which writes them all.
Everything is read back from the Optuna study, so no TensorFlow or MLflow is needed."""
