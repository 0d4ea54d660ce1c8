import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import StarFCN

D = 3


def _numpy(x, domains, w_sh, w_dom, b_sh, b_dom):
    y = np.stack([x[r] @ (w_sh * w_dom[k]) + b_sh + b_dom[k] for r, k in enumerate(domains)])
    return np.maximum(y, 0.0)


def _layer(rng, in_dim=6, units=4, **kwargs):
    layer = StarFCN(units, **kwargs)
    layer.build([(None, in_dim), (None, D)])
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    return layer


def test_matches_numpy_per_row():
    rng = np.random.default_rng(0)
    layer = _layer(rng)
    x = rng.normal(size=(7, 6)).astype("float32")
    domains = np.array([2, 0, 1, 1, 0, 2, 2])
    y = np.asarray(layer([x, np.eye(D, dtype="float32")[domains]]))
    expected = _numpy(x, domains, *layer.get_weights())
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
    layer = StarFCN(units)
    x = np.random.default_rng(2).normal(size=(4, in_dim)).astype("float32")
    mixture = np.eye(D, dtype="float32")[[0, 1, 2, 1]]
    run_layer_checks(layer, [x, mixture], tmp_path)
    w_sh, w_dom, b_sh, b_dom = layer.get_weights()
    assert w_sh.shape == (in_dim, units) and w_dom.shape == (D, in_dim, units)
    assert b_sh.shape == (units,) and b_dom.shape == (D, units)
    assert not b_sh.any() and not b_dom.any()
    limit_3d = np.sqrt(6.0 / (D * (in_dim + units)))
    assert np.abs(w_dom).max() <= limit_3d and np.abs(w_dom).max() > 0.9 * limit_3d
    limit_2d = np.sqrt(6.0 / (in_dim + units))
    assert np.abs(w_sh).max() <= limit_2d and np.abs(w_sh).max() > 0.9 * limit_2d


def test_seeded_initializer_gives_uncorrelated_kernels():
    layer = StarFCN(4, kernel_initializer=keras.initializers.GlorotUniform(seed=7))
    layer.build([(None, 5), (None, D)])
    w_sh, w_dom = layer.get_weights()[:2]
    assert not np.allclose(w_sh, w_dom[0])


def test_activation_argument():
    rng = np.random.default_rng(3)
    layer = _layer(rng, activation="linear")
    x = rng.normal(size=(5, 6)).astype("float32")
    domains = np.array([0, 1, 2, 2, 0])
    y = np.asarray(layer([x, np.eye(D, dtype="float32")[domains]]))
    w_sh, w_dom, b_sh, b_dom = layer.get_weights()
    expected = np.stack(
        [x[r] @ (w_sh * w_dom[k]) + b_sh + b_dom[k] for r, k in enumerate(domains)]
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("units", [0, -4, 2.5, None])
def test_rejects_bad_units(units):
    with pytest.raises(ValueError, match=r"Received: units="):
        StarFCN(units)


def test_rejects_single_input():
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        StarFCN(4)(np.zeros((2, 4), "float32"))
