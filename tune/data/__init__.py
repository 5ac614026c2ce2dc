"""Image data as uint8 arrays: the sources users keep it in (``sources``, with ``synthetic`` for
runs without real data), the decoded-array cache (``cache``) and the split tuning sees
(``splits``). No TensorFlow: only the ``cifar10`` source asks Keras, for its download."""
