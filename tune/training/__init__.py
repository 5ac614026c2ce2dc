"""The Keras side: the tf.data input pipeline (``pipeline``), the models (``models``) and the
layers Keras lacks (``layers``), training one configuration (``fit``), and the final retrain that
alone reads the test set (``final``). These are the only modules that import TensorFlow.
``isolated`` runs ``fit`` in a child process and is itself TensorFlow-free, so the engine can call
it; this file imports nothing, so importing it is free."""
