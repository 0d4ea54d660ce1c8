"""SAR-Net's layers: `ScenarioAttention`, `ScenarioLinear`, `ScenarioExperts` against
numpy, mixed-scenario batches row by row, refusals, and the generic layer checks."""

import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers import ScenarioAttention, ScenarioExperts, ScenarioLinear

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(5, 4)).astype("float32")
VALUES = RNG.normal(size=(5, 3, 6)).astype("float32")
X = RNG.normal(size=(5, 6)).astype("float32")
DOMAIN = np.array([0, 2, 1, 2, 0], "int64")
GATE_IN = RNG.normal(size=(5, 4)).astype("float32")


def _np(v):
    return keras.ops.convert_to_numpy(v).astype(np.float64)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- ScenarioAttention
def test_attention_equals_numpy():
    layer = ScenarioAttention(attention_dim=5, kernel_initializer=keras.initializers.RandomNormal(seed=2))
    out = keras.ops.convert_to_numpy(layer([QUERY, VALUES]))
    q, k = QUERY @ _np(layer.query_kernel), VALUES @ _np(layer.key_kernel)  # (5, 5), (5, 3, 5)
    weights = _softmax(np.einsum("ba,bja->bj", q, k) / np.sqrt(5.0))
    np.testing.assert_allclose(out, np.einsum("bj,bjd->bd", weights, VALUES), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.attention_weights(QUERY, VALUES)).sum(axis=1), np.ones(5), rtol=1e-6
    )
    assert [tuple(w.shape) for w in layer.weights] == [(4, 5), (6, 5)]


def test_attention_with_zero_kernels_is_the_mean():
    layer = ScenarioAttention(kernel_initializer="zeros")
    out = keras.ops.convert_to_numpy(layer([QUERY, VALUES]))
    np.testing.assert_allclose(out, VALUES.mean(axis=1), rtol=1e-5, atol=1e-7)
    assert layer.query_kernel.shape == (4, 6)  # attention_dim defaults to the value width


def test_attention_refusals():
    with pytest.raises(ValueError, match="`attention_dim` must be a positive integer or None"):
        ScenarioAttention(attention_dim=0)
    with pytest.raises(ValueError, match=r"`\[query, values\]`"):
        ScenarioAttention()(QUERY)
    with pytest.raises(ValueError, match="num_values, value_dim"):
        ScenarioAttention()([QUERY, X])


def test_attention_layer_checks(tmp_path):
    layer = ScenarioAttention(attention_dim=3, kernel_initializer=keras.initializers.GlorotUniform(seed=1), name="att")
    assert run_layer_checks(layer, [QUERY, VALUES], tmp_path).shape == (5, 6)
    assert layer.get_config()["attention_dim"] == 3


# ------------------------------------------------------------------- ScenarioLinear
def test_scenario_linear_uses_each_rows_own_parameters():
    layer = ScenarioLinear(3)
    assert np.array_equal(keras.ops.convert_to_numpy(layer([X, DOMAIN])), X)  # identity at the start
    scale = RNG.normal(size=(3, 6)).astype("float32")
    shift = RNG.normal(size=(3, 6)).astype("float32")
    layer.scale.assign(scale)
    layer.shift.assign(shift)
    out = keras.ops.convert_to_numpy(layer([X, DOMAIN]))
    np.testing.assert_allclose(out, X * scale[DOMAIN] + shift[DOMAIN], rtol=1e-6, atol=1e-6)
    for d in range(3):
        rows = DOMAIN == d
        alone = keras.ops.convert_to_numpy(layer([X[rows], DOMAIN[rows]]))
        np.testing.assert_allclose(alone, out[rows], rtol=1e-6, atol=1e-7)


def test_scenario_linear_checks(tmp_path):
    with pytest.raises(ValueError, match="`n_domains` must be a positive integer. Received: n_domains=0"):
        ScenarioLinear(0)
    layer = ScenarioLinear(3, name="lin")
    layer.build([X.shape, DOMAIN.shape])
    layer.scale.assign(RNG.normal(size=(3, 6)).astype("float32"))
    assert run_layer_checks(layer, [X, DOMAIN], tmp_path).shape == (5, 6)


# ------------------------------------------------------------------ ScenarioExperts
def _experts_numpy(layer, x, domain, gate_input):
    sk, sb, dk, db, gk, gb = (_np(v) for v in (
        layer.shared_kernel, layer.shared_bias, layer.specific_kernel, layer.specific_bias,
        layer.gate_kernel, layer.gate_bias,
    ))
    gate = _softmax(gate_input @ gk + gb)
    out = np.zeros((x.shape[0], layer.units))
    for row, d in enumerate(domain):
        experts = [np.maximum(x[row] @ sk[s] + sb[s], 0.0) for s in range(layer.num_shared)]
        experts.append(np.maximum(x[row] @ dk[d] + db[d], 0.0))
        out[row] = sum(g * e for g, e in zip(gate[row], experts))
    return out


def test_experts_equal_numpy_and_mix_only_the_rows_own_expert():
    layer = ScenarioExperts(7, 3, num_shared=2, kernel_initializer=keras.initializers.RandomNormal(seed=4))
    layer.build([X.shape, DOMAIN.shape, GATE_IN.shape])
    for v in (layer.shared_bias, layer.specific_bias, layer.gate_bias):
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    out = keras.ops.convert_to_numpy(layer([X, DOMAIN, GATE_IN]))
    np.testing.assert_allclose(out, _experts_numpy(layer, X, DOMAIN, GATE_IN), rtol=1e-5, atol=1e-6)
    assert [tuple(w.shape) for w in layer.weights] == [(2, 6, 7), (2, 7), (3, 6, 7), (3, 7), (4, 3), (3,)]
    # Another domain's expert changes nothing for a row: zero domain 1's expert.
    before = out.copy()
    kernel = layer.specific_kernel.numpy()
    kernel[1] = 0.0
    layer.specific_kernel.assign(kernel)
    out = keras.ops.convert_to_numpy(layer([X, DOMAIN, GATE_IN]))
    np.testing.assert_array_equal(out[DOMAIN != 1], before[DOMAIN != 1])
    assert np.abs(out[DOMAIN == 1] - before[DOMAIN == 1]).max() > 1e-4
    gate = keras.ops.convert_to_numpy(layer.gate(GATE_IN))
    assert gate.shape == (5, 3)
    np.testing.assert_allclose(gate.sum(axis=1), np.ones(5), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0, "n_domains": 3}, "`units` must be a positive integer"),
        ({"units": 4, "n_domains": 0}, "`n_domains` must be a positive integer"),
        ({"units": 4, "n_domains": 3, "num_shared": 0}, "`num_shared` must be a positive integer. Received: num_shared=0"),
    ],
)
def test_experts_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScenarioExperts(**kwargs)


def test_experts_layer_checks(tmp_path):
    with pytest.raises(ValueError, match=r"`\[x, domain, gate_input\]`"):
        ScenarioExperts(4, 3)([X, DOMAIN])
    layer = ScenarioExperts(4, 3, num_shared=1, kernel_initializer=keras.initializers.GlorotUniform(seed=5), name="ex")
    assert run_layer_checks(layer, [X, DOMAIN, GATE_IN], tmp_path).shape == (5, 4)
    config = layer.get_config()
    assert (config["units"], config["n_domains"], config["num_shared"]) == (4, 3, 1)
