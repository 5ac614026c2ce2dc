"""The two models of this measurement, written as a user would and saved as .keras files:
the TensorFlow CNN tutorial's model (logits output, no regularization of its own) and a
keras.applications MobileNetV2 built with weights=None at 32x32. Run from this folder:
../../../.venv/bin/python make_models.py"""

import keras


def tutorial_cnn() -> keras.Model:
    """https://www.tensorflow.org/tutorials/images/cnn, layer for layer."""
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ], name="tf_tutorial_cnn")


if __name__ == "__main__":
    tutorial_cnn().save("tf_tutorial_cnn.keras")
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10).save("mobilenet_v2.keras")
