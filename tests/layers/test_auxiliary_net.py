import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import AuxiliaryNet

D = 3


def _layer(rng, in_dim=6, units=4):
    layer = AuxiliaryNet(units)
    layer.build([(None, in_dim), (None, D)])
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    return layer


def test_matches_numpy_per_row():
    rng = np.random.default_rng(0)
    layer = _layer(rng)
    x = rng.normal(size=(7, 6)).astype("float32")
    domains = np.array([2, 0, 1, 1, 0, 2, 2])
    kernel, bias = layer.get_weights()
    expected = np.maximum(np.stack([x[r] @ kernel[k] + bias[k] for r, k in enumerate(domains)]), 0)
    y = np.asarray(layer([x, np.eye(D, dtype="float32")[domains]]))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_mixed_batch_equals_per_domain_batches():
    rng = np.random.default_rng(1)
    layer = _layer(rng)
    x = rng.normal(size=(8, 6)).astype("float32")
    domains = np.array([0, 1, 2, 0, 2, 1, 1, 0])
    mixture = np.eye(D, dtype="float32")[domains]
    y = np.asarray(layer([x, mixture]))
    for k in range(D):
        rows = domains == k
        np.testing.assert_allclose(y[rows], np.asarray(layer([x[rows], mixture[rows]])), atol=1e-5)


def test_initialisation_and_layer_checks(tmp_path):
    in_dim, units = 40, 20
    layer = AuxiliaryNet(units)
    x = np.random.default_rng(2).normal(size=(4, in_dim)).astype("float32")
    mixture = np.eye(D, dtype="float32")[[0, 1, 2, 1]]
    assert run_layer_checks(layer, [x, mixture], tmp_path).shape == (4, units)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (D, in_dim, units) and bias.shape == (D, units)
    assert not bias.any()
    limit = np.sqrt(6.0 / (D * (in_dim + units)))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


@pytest.mark.parametrize("units", [0, -1, "64"])
def test_rejects_bad_units(units):
    with pytest.raises(ValueError, match=r"Received: units="):
        AuxiliaryNet(units)


def test_rejects_single_input():
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        AuxiliaryNet(4)(np.zeros((2, 4), "float32"))
