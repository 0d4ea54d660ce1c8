"""`FusedAdam`: the fused kernel gives Keras Adam's update (epsilon 1e-8), step by step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.training.optimizers import FusedAdam


def _variables(rng):
    return [
        keras.Variable(rng.normal(size=(4, 3)).astype("float32"), name="kernel"),
        keras.Variable(rng.normal(size=(6, 2)).astype("float32"), name="table"),
        keras.Variable(rng.normal(size=(3,)).astype("float64"), dtype="float64", name="double"),
    ]


def _gradients(rng, step):
    rows = np.array([1, 4, 1]) if step % 2 else np.array([0, 5, 2])
    return [
        tf.constant(rng.normal(size=(4, 3)).astype("float32")),
        # A sparse (embedding) gradient with a repeated row: made dense, rows summed.
        tf.IndexedSlices(tf.constant(rng.normal(size=(3, 2)).astype("float32")), tf.constant(rows), tf.constant([6, 2])),
        tf.constant(rng.normal(size=(3,))),
    ]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_fused_adam_equals_keras_adam_over_steps(graph):
    fused_vars, keras_vars = _variables(np.random.default_rng(0)), _variables(np.random.default_rng(0))
    fused = FusedAdam(learning_rate=0.01)
    reference = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8)
    fused.build(fused_vars)
    reference.build(keras_vars)
    def apply_fused(gradients):
        fused.apply(gradients, fused_vars)

    apply_fused = tf.function(apply_fused) if graph else apply_fused
    rng = np.random.default_rng(1)
    for step in range(5):
        gradients = _gradients(rng, step)
        apply_fused(gradients)
        reference.apply([tf.convert_to_tensor(g) for g in gradients], keras_vars)
        for a, b in zip(fused_vars, keras_vars):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{a.name}, step {step}")
    assert int(fused.iterations.numpy()) == 5
    # The float64 variable really moved (its dtype's step constants were used).
    assert not np.allclose(fused_vars[2].numpy(), _variables(np.random.default_rng(0))[2].numpy())


def test_fused_adam_update_step_alone_matches_apply():
    # `update_step` (Keras' per-variable hook) computes the same step constants itself.
    v1, v2 = (keras.Variable(np.ones((2, 2), "float32")) for _ in range(2))
    a, b = FusedAdam(learning_rate=0.1), FusedAdam(learning_rate=0.1)
    a.build([v1])
    b.build([v2])
    g = tf.constant([[1.0, -2.0], [0.5, 0.0]])
    a.apply([g], [v1])
    b.update_step(g, v2, b.learning_rate)
    np.testing.assert_allclose(v1.numpy(), v2.numpy(), rtol=1e-6)


def test_fused_adam_refuses_amsgrad():
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(amsgrad=True)
