"""Shared checks for the interaction-layer tests."""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

import keras
import numpy as np


def _as_list(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(x) for x in inputs]
    return [np.asarray(inputs)]


def run_layer_checks(
    layer: keras.layers.Layer,
    inputs: Any,
    tmp_path: Any = None,
    atol: float = 1e-5,
) -> np.ndarray:
    """Runs the generic checks every layer must pass; returns its output.

    1. The output shape equals `compute_output_shape` of the input shapes.
    2. `serialize_keras_object` -> `deserialize_keras_object` restores a layer
       of the same class with an equal config, registered under `mlora_tf`.
    3. A functional model wrapping the layer, saved to a `.keras` file and
       reloaded without `custom_objects`, gives the same outputs.

    Args:
        layer: the layer under test (built or not).
        inputs: a numpy array, or a list of arrays for multi-input layers.
        tmp_path: directory for the `.keras` file; a temporary one if `None`.
        atol: absolute tolerance of the output comparison.
    """
    arrays = _as_list(inputs)
    multi = isinstance(inputs, (list, tuple))
    call_inputs = arrays if multi else arrays[0]

    outputs = keras.ops.convert_to_numpy(layer(call_inputs))
    shapes = [tuple(a.shape) for a in arrays]
    expected_shape = layer.compute_output_shape(shapes if multi else shapes[0])
    assert tuple(outputs.shape) == tuple(expected_shape), (outputs.shape, expected_shape)

    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"mlora_tf>{type(layer).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()

    symbolic = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in arrays]
    model_inputs = symbolic if multi else symbolic[0]
    model = keras.Model(model_inputs, layer(model_inputs))
    expected = keras.ops.convert_to_numpy(model(call_inputs, training=False))
    np.testing.assert_allclose(expected, outputs, atol=atol)

    with tempfile.TemporaryDirectory() as fallback:
        directory = fallback if tmp_path is None else str(tmp_path)
        path = os.path.join(directory, f"{layer.name}.keras")
        with warnings.catch_warnings():
            # Keras's own saving code trips a NumPy 2 `__array__` deprecation.
            warnings.simplefilter("ignore", DeprecationWarning)
            model.save(path)
        reloaded = keras.saving.load_model(path)
    actual = keras.ops.convert_to_numpy(reloaded(call_inputs, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol)
    reloaded_layer = reloaded.layers[-1]
    assert type(reloaded_layer) is type(layer)
    assert reloaded_layer.get_config() == layer.get_config()
    return outputs
