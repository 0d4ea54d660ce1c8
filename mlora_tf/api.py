"""Public-API registration.

`mlora_export("mlora_tf.layers.LoRADense")` registers a Keras class as serializable
under the package name ``mlora_tf`` (so a saved ``.keras`` file loads without a
``custom_objects`` dict) and records it as part of the public API.
"""

from __future__ import annotations

import keras

PUBLIC_API: dict[str, object] = {}


def mlora_export(path: str):
    """Class decorator: register `cls` with Keras under package ``mlora_tf``.

    Args:
        path: dotted public name, e.g. ``"mlora_tf.layers.LoRADense"``.
    """

    def decorator(obj):
        registered = keras.saving.register_keras_serializable(package="mlora_tf")(obj)
        PUBLIC_API[path] = registered
        return registered

    return decorator
