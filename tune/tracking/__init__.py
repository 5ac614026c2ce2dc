"""MLflow: the experiment, parent and trial runs a study writes (``tracker``), and what produced
them (``provenance``)."""
