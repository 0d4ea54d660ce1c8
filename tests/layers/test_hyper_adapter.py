"""`HyperAdapter` (HAMUR's hyper-network adapter): a float64 numpy forward pass, rows that
mix domains, the low rank of the generated weights, refusals, and the generic layer
checks (config, `.keras` round trip)."""

import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers import HyperAdapter

RNG = np.random.default_rng(0)
H = RNG.normal(size=(7, 6)).astype("float32")
Z = RNG.normal(size=(7, 5)).astype("float32")
DOMAIN = np.array([0, 1, 2, 0, 2, 1, 1], "int64")


def _adapter(**kwargs):
    layer = HyperAdapter(3, bottleneck_units=4, hyper_rank=3, hyper_hidden_units=8, name="adapter", **kwargs)
    layer([H, Z, DOMAIN])
    rng = np.random.default_rng(1)  # every weight random (biases and norm included)
    for w in layer.weights:
        w.assign(rng.normal(0, 0.5, size=w.shape).astype("float32"))
    return layer


def _numpy(layer, h, z, domain):
    """The adapter row by row in float64, from the paper's formulas."""
    w = {v.name: keras.ops.convert_to_numpy(v).astype(np.float64) for v in layer.weights}
    k = layer.hyper_rank
    out = []
    for row in range(h.shape[0]):
        d = domain[row]
        hidden = np.maximum(z[row] @ w["hyper_kernel"] + w["hyper_bias"], 0.0)
        cores = (hidden @ w["core_kernel"] + w["core_bias"]).reshape(2, k, k)
        w_down = w["down_u"][d] @ cores[0] @ w["down_v"][d]
        w_up = w["up_u"][d] @ cores[1] @ w["up_v"][d]
        a = np.maximum(h[row] @ w_down + w["down_bias"][d], 0.0) @ w_up + w["up_bias"][d]
        normed = (a - a.mean()) / np.sqrt(a.var() + layer.epsilon)
        out.append(h[row] + normed * w["norm_gamma"][d] + w["norm_beta"][d])
    return np.stack(out)


def test_equals_a_numpy_forward_pass():
    layer = _adapter()
    out = keras.ops.convert_to_numpy(layer([H, Z, DOMAIN]))
    np.testing.assert_allclose(out, _numpy(layer, H, Z, DOMAIN), rtol=1e-4, atol=1e-5)


def test_weights_and_shapes():
    layer = _adapter()
    shapes = {v.name: tuple(v.shape) for v in layer.weights}
    assert shapes == {
        "hyper_kernel": (5, 8), "hyper_bias": (8,), "core_kernel": (8, 18), "core_bias": (18,),
        "down_u": (3, 6, 3), "down_v": (3, 3, 4), "down_bias": (3, 4),
        "up_u": (3, 4, 3), "up_v": (3, 3, 6), "up_bias": (3, 6),
        "norm_gamma": (3, 6), "norm_beta": (3, 6),
    }
    assert len(layer.trainable_weights) == 12


def test_rows_depend_on_their_own_domain_and_instance_only():
    layer = _adapter()
    mixed = keras.ops.convert_to_numpy(layer([H, Z, DOMAIN]))
    for d in range(3):
        rows = DOMAIN == d
        alone = keras.ops.convert_to_numpy(layer([H[rows], Z[rows], DOMAIN[rows]]))
        np.testing.assert_allclose(alone, mixed[rows], rtol=1e-5, atol=1e-6)
    # The domain and the instance both matter.
    shifted = keras.ops.convert_to_numpy(layer([H, Z, (DOMAIN + 1) % 3]))
    other_z = keras.ops.convert_to_numpy(layer([H, Z[::-1].copy(), DOMAIN]))
    assert np.abs(shifted - mixed).max() > 1e-3 and np.abs(other_z - mixed).max() > 1e-3


def test_generated_weights_have_the_hyper_rank():
    layer = HyperAdapter(2, bottleneck_units=5, hyper_rank=2, name="low")
    h = RNG.normal(size=(1, 6)).astype("float32")
    layer([h, Z[:1], DOMAIN[:1]])
    w = {v.name: keras.ops.convert_to_numpy(v).astype(np.float64) for v in layer.weights}
    hidden = np.maximum(Z[0] @ w["hyper_kernel"] + w["hyper_bias"], 0.0)
    core = (hidden @ w["core_kernel"] + w["core_bias"]).reshape(2, 2, 2)[0]
    assert np.linalg.matrix_rank(w["down_u"][0] @ core @ w["down_v"][0]) <= 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_domains": 0, "bottleneck_units": 4}, "`n_domains` must be a positive integer"),
        ({"n_domains": 2, "bottleneck_units": 2.5}, "`bottleneck_units` must be a positive integer"),
        ({"n_domains": 2, "bottleneck_units": 4, "hyper_rank": True}, "`hyper_rank` must be a positive integer"),
        ({"n_domains": 2, "bottleneck_units": 4, "hyper_hidden_units": 0}, "`hyper_hidden_units`"),
        ({"n_domains": 2, "bottleneck_units": 4, "epsilon": 0.0}, "`epsilon` must be a positive number"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HyperAdapter(**kwargs)


def test_two_inputs_are_refused():
    with pytest.raises(ValueError, match=r"`\[h, z, domain\]`"):
        HyperAdapter(2, 4)([H, Z])


def test_layer_checks(tmp_path):
    layer = HyperAdapter(3, 4, hyper_rank=2, kernel_initializer=keras.initializers.GlorotUniform(seed=3), name="h")
    out = run_layer_checks(layer, [H, Z, DOMAIN], tmp_path)
    assert out.shape == (7, 6)
    config = layer.get_config()
    assert (config["n_domains"], config["bottleneck_units"], config["hyper_rank"]) == (3, 4, 2)
