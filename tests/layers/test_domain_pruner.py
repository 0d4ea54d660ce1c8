"""`DomainPruner` (AdaSparse's domain-aware pruner): the three weighting-factor forms
against numpy, exact zeros under fusion's soft threshold, binarization's
straight-through gradient, refusals, and the generic layer checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import run_layer_checks
from mlora_tf.layers import DomainPruner

H = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2], [1.5, 1.0, 0.1], [-2.0, 0.4, 0.0]], "float32")
CONTEXT = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [0.5, -0.5]], "float32")


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy(layer, h, context):
    kernel, bias = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in (layer.kernel, layer.bias))
    z = np.concatenate([h, context], axis=1) @ kernel + bias
    if layer.form == "binarization":
        factor = (z > 0).astype(np.float64)
    elif layer.form == "scaling":
        factor = layer.beta * _sigmoid(z)
    else:
        factor = np.maximum(layer.beta * _sigmoid(z) - layer.epsilon, 0.0)
    return h * factor, factor


@pytest.mark.parametrize("form", ["binarization", "scaling", "fusion"])
def test_forms_equal_numpy(form):
    init = keras.initializers.RandomNormal(stddev=2.0, seed=1)
    pruner = DomainPruner(form=form, beta=2.0, epsilon=0.5, kernel_initializer=init)
    out = keras.ops.convert_to_numpy(pruner([H, CONTEXT]))
    expected, factor = _numpy(pruner, H, CONTEXT)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pruner.weighting_factors([H, CONTEXT])), factor, rtol=1e-5, atol=1e-6
    )
    assert [tuple(w.shape) for w in pruner.weights] == [(5, 3), (3,)]
    if form == "binarization":
        assert set(np.unique(factor)) == {0.0, 1.0}
    if form == "fusion":  # some neurons pruned exactly, the others kept and scaled
        assert np.any(factor == 0.0) and np.any(factor > 0.0) and factor.max() < 2.0 - 0.5


def test_by_hand_with_ones_kernel():
    # z = sum(h) + sum(context) per row, the same for every unit.
    pruner = DomainPruner(form="fusion", beta=2.0, epsilon=0.25, kernel_initializer="ones")
    pruner.build([H.shape, CONTEXT.shape])
    out = keras.ops.convert_to_numpy(pruner.weighting_factors([H, CONTEXT]))
    z = H.sum(axis=1) + CONTEXT.sum(axis=1)  # [2.5, 1.1, 3.6, -1.6]
    np.testing.assert_allclose(z, [2.5, 1.1, 3.6, -1.6], rtol=1e-6)
    # row 3: 2 * sigmoid(-1.6) = 0.3360 -> 0.0860 after the threshold.
    np.testing.assert_allclose(out[3], [2.0 / (1.0 + np.exp(1.6)) - 0.25] * 3, rtol=1e-5)
    zeros = DomainPruner(form="scaling", kernel_initializer="zeros")  # z = 0: factor exactly 1
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(zeros([H, CONTEXT])), H)


def test_threshold_prunes_rows_of_a_domain_exactly():
    pruner = DomainPruner(form="fusion", epsilon=0.25, kernel_initializer="zeros", bias_initializer="zeros")
    pruner.build([H.shape, CONTEXT.shape])
    kernel = np.zeros((5, 3), "float32")
    kernel[3, 1] = -10.0  # context column 0 drives unit 1 far below the threshold
    pruner.kernel.assign(kernel)
    out = keras.ops.convert_to_numpy(pruner([H, CONTEXT]))
    assert out[0, 1] == 0.0 and out[1, 1] != 0.0  # row 0 has context 1, row 1 context 0


def test_binarization_trains_through_the_surrogate_gradient():
    pruner = DomainPruner(form="binarization", alpha=2.0, kernel_initializer=keras.initializers.RandomNormal(seed=3))
    pruner.build([H.shape, CONTEXT.shape])
    h, context = tf.constant(H), tf.constant(CONTEXT)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(pruner.weighting_factors([h, context]))
    kernel_grad, bias_grad = tape.gradient(total, [pruner.kernel, pruner.bias])
    z = np.concatenate([H, CONTEXT], 1) @ pruner.kernel.numpy() + pruner.bias.numpy()
    slope = 2.0 * _sigmoid(2.0 * z) * (1.0 - _sigmoid(2.0 * z))  # d sigmoid(alpha z) / dz
    np.testing.assert_allclose(bias_grad.numpy(), slope.sum(axis=0), rtol=1e-5)
    assert np.any(kernel_grad.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"form": "mask"}, "`form` must be one of"),
        ({"beta": 0.0}, "`beta` must be a positive number"),
        ({"alpha": -1.0}, "`alpha` must be a positive number. Received: alpha=-1.0"),
        ({"epsilon": 2.0}, r"`epsilon` must be in \[0, beta=2.0\)"),
        ({"epsilon": -0.1}, "`epsilon` must be in"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DomainPruner(**kwargs)


def test_one_input_is_refused():
    with pytest.raises(ValueError, match=r"`\[h, context\]`"):
        DomainPruner()(H)


@pytest.mark.parametrize("form", ["binarization", "fusion"])
def test_layer_checks(form, tmp_path):
    pruner = DomainPruner(form=form, epsilon=0.3, kernel_initializer=keras.initializers.GlorotUniform(seed=7), name="p")
    out = run_layer_checks(pruner, [H, CONTEXT], tmp_path)
    assert out.shape == (4, 3)
    config = pruner.get_config()
    assert (config["form"], config["beta"], config["epsilon"], config["alpha"]) == (form, 2.0, 0.3, 1.0)
