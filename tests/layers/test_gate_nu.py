"""`GateNU` (PEPNet's Gate Neural Unit): outputs worked out by hand, the stop-gradient on
the general input, refusals, and the generic layer checks (config, `.keras` round trip)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import run_layer_checks
from mlora_tf.layers import GateNU

PRIOR = np.array([[0.1, 0.2], [0.5, -1.0], [0.0, 0.0]], "float32")
GENERAL = np.array([[0.3], [0.2], [0.4]], "float32")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_outputs_by_hand_with_ones_kernels():
    gate = GateNU(2, kernel_initializer="ones")
    out = keras.ops.convert_to_numpy(gate([PRIOR, GENERAL]))
    # x = [prior, general] (width 3) -> hidden width 3, every unit sum(x):
    #   row 0: sum 0.6 -> ReLU 0.6, each gate unit 3 * 0.6 = 1.8 -> 2 * sigmoid(1.8)
    #   row 1: sum -0.3 -> ReLU 0 -> 2 * sigmoid(0) = 1 exactly
    #   row 2: sum 0.4 -> each gate unit 1.2 -> 2 * sigmoid(1.2)
    expected = np.array([[1.7162978] * 2, [1.0, 1.0], [1.5370496] * 2], "float32")
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert [tuple(w.shape) for w in gate.weights] == [(3, 3), (3,), (3, 2), (2,)]


def test_hidden_width_gamma_and_biases():
    gate = GateNU(3, hidden_units=2, gamma=3.0, kernel_initializer="ones", bias_initializer="ones")
    out = keras.ops.convert_to_numpy(gate(PRIOR))  # the prior alone, width 2
    hidden = np.maximum(PRIOR.sum(axis=1, keepdims=True) + 1.0, 0.0)  # (3, 1), both hidden units alike
    expected = 3.0 * _sigmoid(2.0 * hidden + 1.0) * np.ones((1, 3))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # row 0: hidden 1.3 -> 3 * sigmoid(3.6)
    np.testing.assert_allclose(out[0, 0], 3.0 / (1.0 + np.exp(-3.6)), rtol=1e-6)
    assert [tuple(w.shape) for w in gate.weights] == [(2, 2), (2,), (2, 3), (3,)]
    assert len(gate.trainable_weights) == 4


def test_zero_pre_activation_scales_by_one_and_output_is_bounded():
    gate = GateNU(4, kernel_initializer="zeros")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(gate([PRIOR, GENERAL])), np.ones((3, 4), "float32"))
    wild = GateNU(4, gamma=2.0, kernel_initializer=keras.initializers.RandomNormal(stddev=30.0, seed=1))
    out = keras.ops.convert_to_numpy(wild([PRIOR * 10, GENERAL * 10]))
    assert np.all(out >= 0.0) and np.all(out <= 2.0)


def test_general_input_gets_no_gradient_the_prior_does():
    gate = GateNU(2, kernel_initializer=keras.initializers.RandomNormal(seed=3))
    prior, general = tf.constant(PRIOR), tf.constant(GENERAL)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([prior, general])
        total = tf.reduce_sum(gate([prior, general]))
    d_prior, d_general = tape.gradient(total, [prior, general])
    assert d_general is None or not np.any(d_general.numpy())
    assert np.any(d_prior.numpy())
    assert all(g is not None for g in tape.gradient(total, gate.trainable_weights))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "`units` must be a positive integer"),
        ({"units": 2.5}, "`units` must be a positive integer"),
        ({"units": 2, "hidden_units": 0}, "`hidden_units` must be a positive integer or None"),
        ({"units": 2, "gamma": 0.0}, "`gamma` must be a positive number"),
        ({"units": 2, "gamma": -1}, "`gamma` must be a positive number. Received: gamma=-1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GateNU(**kwargs)


def test_three_inputs_are_refused():
    with pytest.raises(ValueError, match=r"`prior` or `\[prior, general\]`"):
        GateNU(2)([PRIOR, GENERAL, GENERAL])


@pytest.mark.parametrize("two_inputs", [False, True])
def test_layer_checks(two_inputs, tmp_path):
    gate = GateNU(5, hidden_units=4, gamma=2.0, kernel_initializer=keras.initializers.GlorotUniform(seed=7), name="g")
    inputs = [PRIOR, GENERAL] if two_inputs else PRIOR
    out = run_layer_checks(gate, inputs, tmp_path)
    assert out.shape == (3, 5)
    config = gate.get_config()
    assert (config["units"], config["hidden_units"], config["gamma"]) == (5, 4, 2.0)
    clone = GateNU.from_config(config)
    clone.build([PRIOR.shape, GENERAL.shape] if two_inputs else PRIOR.shape)
    clone.set_weights(gate.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(inputs)), out)
