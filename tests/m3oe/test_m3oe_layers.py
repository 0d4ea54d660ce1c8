"""Each M3oE layer against a direct numpy computation, plus the generic layer checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers import (
    DomainRepresentation,
    DomainTaskTowers,
    ExpertBank,
    ExpertFusion,
    ExpertGates,
    LNDense,
)

D, T = 3, 2


def _np_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _relu(x):
    return np.maximum(x, 0.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _randomise(layer, rng):
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])


# --------------------------------------------------------------------------- #
# The LayerNorm with a written-out gradient


@pytest.mark.parametrize(
    "x_shape, gamma_shape", [((64, 32), (32,)), ((64, 5, 16), (5, 16)), ((64, 2, 8), (1, 8))]
)
def test_layer_norm_values_and_gradients_match_autodiff_of_the_formula(x_shape, gamma_shape):
    import tensorflow as tf

    from mlora_tf.layers.m3oe import _utils

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(3.0, 2.0, size=x_shape).astype("float32"))
    gamma = tf.constant(rng.normal(size=gamma_shape).astype("float32"))
    beta = tf.constant(rng.normal(size=gamma_shape).astype("float32"))
    weight = tf.constant(rng.normal(size=x_shape).astype("float32"))

    def formula(x, gamma, beta):  # differentiated op by op
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-5) * gamma + beta

    results = []
    for fn in (formula, lambda x, g, b: _utils.layer_norm(x, g, b, 1e-5)):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = fn(x, gamma, beta)
            loss = tf.reduce_sum(tf.nn.relu(y) * weight)
        results.append([y] + tape.gradient(loss, [x, gamma, beta]))
    np.testing.assert_allclose(results[1][0], _np_layer_norm(x.numpy(), gamma.numpy(), beta.numpy()), rtol=1e-5, atol=1e-5)
    for expected, got in zip(results[0], results[1]):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- #
# LNDense
# --------------------------------------------------------------------------- #


def test_ln_dense_matches_numpy_and_torch_defaults(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)).astype("float32")
    layer = LNDense(4)
    layer.build((None, 7))
    kernel, bias = layer.dense.get_weights()
    limit = 1 / np.sqrt(7)
    assert np.abs(kernel).max() <= limit and np.abs(bias).max() <= limit and np.abs(bias).max() > 0
    assert layer.layer_norm.epsilon == 1e-5
    _randomise(layer, rng)
    kernel, bias, gamma, beta = layer.get_weights()
    expected = _relu(_np_layer_norm(x @ kernel + bias, gamma, beta))
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-5)
    run_layer_checks(layer, x, tmp_path)


def test_ln_dense_refusals():
    with pytest.raises(ValueError, match="`units` must be a positive integer. Received: units=0"):
        LNDense(0)
    with pytest.raises(ValueError, match="Received: epsilon=-1"):
        LNDense(3, epsilon=-1)
    with pytest.raises(ValueError, match="input_shape"):
        LNDense(3).build((None, 2, 3))


# --------------------------------------------------------------------------- #
# DomainRepresentation
# --------------------------------------------------------------------------- #


def _np_domain_representation(layer, x, domain):
    w = {v.path.split("/", 1)[1]: np.asarray(v) for v in layer.weights}
    r = np.stack(
        [x[i] @ (w["shared_kernel"] * w["domain_kernel"][d]) + w["shared_bias"] + w["domain_bias"][d]
         for i, d in enumerate(domain)]
    )
    star = _relu(_np_layer_norm(r @ w["star_mlp/dense/kernel"] + w["star_mlp/dense/bias"],
                                w["star_mlp/layer_norm/gamma"], w["star_mlp/layer_norm/beta"]))
    skip = _relu(_np_layer_norm(x @ w["skip_conn/dense/kernel"] + w["skip_conn/dense/bias"],
                                w["skip_conn/layer_norm/gamma"], w["skip_conn/layer_norm/beta"]))
    return r, star + skip


def test_domain_representation_matches_numpy_per_row(tmp_path):
    rng = np.random.default_rng(1)
    layer = DomainRepresentation(D, star_units=6, units=5)
    layer.build([(None, 4), (None,)])
    _randomise(layer, rng)
    x = rng.normal(size=(7, 4)).astype("float32")
    domain = np.array([2, 0, 1, 1, 0, 2, 2])
    r, expected = _np_domain_representation(layer, x, domain)
    np.testing.assert_allclose(np.asarray(layer.domain_projection(x, domain)), r, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(layer([x, domain])), expected, rtol=1e-4, atol=1e-4)
    run_layer_checks(layer, [x, domain], tmp_path)


def test_domain_representation_initialisation():
    layer = DomainRepresentation(D, star_units=64, units=32)
    layer.build([(None, 40), (None,)])
    xavier = np.sqrt(6 / (40 + 64))
    w_sh, w_d = np.asarray(layer.shared_kernel), np.asarray(layer.domain_kernel)
    for kernel in (w_sh, w_d):
        assert np.abs(kernel).max() <= xavier and np.abs(kernel).max() > 0.9 * xavier
    assert not np.allclose(w_d[0], w_d[1]) and not np.allclose(w_sh, w_d[0])
    assert not np.asarray(layer.shared_bias).any() and not np.asarray(layer.domain_bias).any()
    torch_limit = 1 / np.sqrt(64)  # W_c: fan_in = star_units
    assert np.abs(np.asarray(layer.star_mlp.dense.kernel)).max() <= torch_limit
    assert layer.star_mlp.layer_norm.epsilon == layer.skip_conn.layer_norm.epsilon == 1e-5


def test_domain_representation_out_of_range_domain_has_no_projection():
    rng = np.random.default_rng(2)
    layer = DomainRepresentation(D, star_units=6, units=5)
    layer.build([(None, 4), (None,)])
    _randomise(layer, rng)
    x = rng.normal(size=(2, 4)).astype("float32")
    r = np.asarray(layer.domain_projection(x, np.array([D, -1])))
    np.testing.assert_allclose(r, np.tile(np.asarray(layer.shared_bias), (2, 1)), atol=1e-6)


# --------------------------------------------------------------------------- #
# ExpertBank
# --------------------------------------------------------------------------- #


def test_expert_bank_matches_numpy(tmp_path):
    rng = np.random.default_rng(3)
    layer = ExpertBank(4, units=5)
    layer.build((None, 6))
    limit = 1 / np.sqrt(6)
    assert np.abs(np.asarray(layer.kernel)).max() <= limit and np.abs(np.asarray(layer.bias)).max() <= limit
    assert np.asarray(layer.bias).any() and np.all(np.asarray(layer.gamma) == 1)
    _randomise(layer, rng)
    kernel, bias, gamma, beta = layer.get_weights()
    h = rng.normal(size=(3, 6)).astype("float32")
    expected = np.stack(
        [_relu(_np_layer_norm(h @ kernel[e] + bias[e], gamma[e], beta[e])) for e in range(4)], axis=1
    )
    np.testing.assert_allclose(np.asarray(layer(h)), expected, rtol=1e-4, atol=1e-4)
    assert [w.shape for w in layer.weights] == [(4, 6, 5), (4, 5), (4, 5), (4, 5)]
    run_layer_checks(layer, h, tmp_path)


# --------------------------------------------------------------------------- #
# ExpertGates
# --------------------------------------------------------------------------- #


def test_expert_gates_match_numpy_task_major(tmp_path):
    rng = np.random.default_rng(4)
    layer = ExpertGates(D, T)
    layer.build([(None, 6), (None, 4, 5)])
    _randomise(layer, rng)
    kernel, bias = layer.get_weights()
    h = rng.normal(size=(3, 6)).astype("float32")
    experts = rng.normal(size=(3, 4, 5)).astype("float32")
    out = np.asarray(layer([h, experts]))
    assert out.shape == (3, T, D, 5)
    for t in range(T):
        for d in range(D):
            k = t * D + d  # the original's objective index
            logits = h @ kernel[k] + bias[k]
            g = np.exp(logits - logits.max(-1, keepdims=True))
            g /= g.sum(-1, keepdims=True)
            np.testing.assert_allclose(out[:, t, d], np.einsum("be,beu->bu", g, experts), rtol=1e-4, atol=1e-5)
    run_layer_checks(layer, [h, experts], tmp_path)


@pytest.mark.parametrize("stop", [True, False])
def test_expert_gates_stop_gradient(stop):
    import tensorflow as tf

    rng = np.random.default_rng(5)
    layer = ExpertGates(D, T, stop_gradient=stop)
    h = tf.constant(rng.normal(size=(3, 6)).astype("float32"))
    experts = tf.constant(np.ones((3, 4, 5), dtype="float32") * np.arange(4)[None, :, None])
    layer([h, experts])
    with tf.GradientTape() as tape:
        tape.watch(h)
        loss = tf.reduce_sum(layer([h, experts]))
    grad = tape.gradient(loss, h)
    assert (grad is None) == stop


# --------------------------------------------------------------------------- #
# ExpertFusion
# --------------------------------------------------------------------------- #


def _fusion_inputs(rng, b=4, u=5):
    return (
        rng.normal(size=(b, T, D, u)).astype("float32"),
        rng.normal(size=(b, D, u)).astype("float32"),
        rng.normal(size=(b, T, u)).astype("float32"),
    )


def _np_fusion(s, de, te, a_d, a_t, b_d, b_t):
    out = np.zeros_like(s)
    for t in range(T):
        for d in range(D):
            dmix = b_d * de[:, d] + (1 - b_d) / (D - 1) * sum(de[:, j] for j in range(D) if j != d)
            tmix = b_t * te[:, t] + (1 - b_t) / (T - 1) * sum(te[:, k] for k in range(T) if k != t)
            out[:, t, d] = s[:, t, d] + a_d * dmix + a_t * tmix
    return out


def test_expert_fusion_matches_numpy(tmp_path):
    rng = np.random.default_rng(6)
    s, de, te = _fusion_inputs(rng)
    layer = ExpertFusion(alpha_domain_init=0.3, alpha_task_init=-1.2, beta_domain_init=2.0, beta_task_init=0.1)
    out = np.asarray(layer([s, de, te]))
    raw = dict(alpha_domain=0.3, alpha_task=-1.2, beta_domain=2.0, beta_task=0.1)
    w = {k: _sigmoid(v) for k, v in raw.items()}
    expected = _np_fusion(s, de, te, w["alpha_domain"], w["alpha_task"], w["beta_domain"], w["beta_task"])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert layer.fusion_weights() == pytest.approx(w, rel=1e-6)
    assert len(layer.fusion_variables) == 4 and all(v.trainable for v in layer.fusion_variables)
    assert [v.shape for v in layer.fusion_variables] == [(1,)] * 4
    run_layer_checks(layer, [s, de, te], tmp_path)


def test_expert_fusion_default_weights_are_sigmoid_of_one():
    rng = np.random.default_rng(7)
    layer = ExpertFusion()
    layer(list(_fusion_inputs(rng)))
    assert layer.fusion_weights() == pytest.approx({n: 0.7310586 for n in layer.scalar_names})


def test_expert_fusion_fixed_is_half_and_frozen(tmp_path):
    rng = np.random.default_rng(8)
    s, de, te = _fusion_inputs(rng)
    layer = ExpertFusion(fusion="fixed", alpha_domain_init=3.0)
    out = np.asarray(layer([s, de, te]))
    np.testing.assert_allclose(out, _np_fusion(s, de, te, 0.5, 0.5, 0.5, 0.5), rtol=1e-4, atol=1e-5)
    assert layer.fusion_variables == [] and layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 4
    assert set(layer.fusion_weights().values()) == {0.5}
    run_layer_checks(layer, [s, de, te], tmp_path)


def test_expert_fusion_single_domain_has_no_division():
    rng = np.random.default_rng(9)
    s = rng.normal(size=(2, T, 1, 3)).astype("float32")
    de = rng.normal(size=(2, 1, 3)).astype("float32")
    te = rng.normal(size=(2, T, 3)).astype("float32")
    out = np.asarray(ExpertFusion()([s, de, te]))
    w = _sigmoid(1.0)
    tmix = np.stack([w * te[:, t] + (1 - w) * te[:, 1 - t] for t in range(T)], axis=1)
    expected = s + w * (w * de)[:, None] + w * tmix[:, :, None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "use_domain, use_task, n_scalars",
    [(False, True, 2), (True, False, 2), (False, False, 0)],
)
def test_expert_fusion_without_modules(use_domain, use_task, n_scalars):
    rng = np.random.default_rng(10)
    s, de, te = _fusion_inputs(rng)
    layer = ExpertFusion(use_domain=use_domain, use_task=use_task)
    inputs = [s] + [de] * use_domain + [te] * use_task
    out = np.asarray(layer(inputs))
    w = _sigmoid(1.0)
    zeros_d, zeros_t = np.zeros_like(de), np.zeros_like(te)
    expected = _np_fusion(s, de if use_domain else zeros_d, te if use_task else zeros_t, w, w, w, w)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert len(layer.fusion_variables) == n_scalars


def test_expert_fusion_concat(tmp_path):
    rng = np.random.default_rng(11)
    s, de, te = _fusion_inputs(rng)
    layer = ExpertFusion(combine="concat")
    out = np.asarray(layer([s, de, te]))
    assert out.shape == (4, T, D, 15)
    assert layer.scalar_names == ("beta_domain", "beta_task")
    w = _sigmoid(1.0)
    np.testing.assert_allclose(out[..., :5], s, atol=1e-6)
    for d in range(D):
        dmix = w * de[:, d] + (1 - w) / 2 * (de.sum(1) - de[:, d])
        np.testing.assert_allclose(out[:, 1, d, 5:10], dmix, rtol=1e-4, atol=1e-5)
    for t in range(T):
        tmix = w * te[:, t] + (1 - w) * te[:, 1 - t]
        np.testing.assert_allclose(out[:, t, 2, 10:], tmix, rtol=1e-4, atol=1e-5)
    run_layer_checks(layer, [s, de, te], tmp_path)


def test_expert_fusion_refusals():
    with pytest.raises(ValueError, match="Received: fusion='auto'"):
        ExpertFusion(fusion="auto")
    with pytest.raises(ValueError, match="Received: combine='mean'"):
        ExpertFusion(combine="mean")
    with pytest.raises(ValueError, match="alpha_domain_init"):
        ExpertFusion(alpha_domain_init=float("nan"))
    rng = np.random.default_rng(12)
    s, de, te = _fusion_inputs(rng)
    with pytest.raises(ValueError, match="expects a list of 3 inputs"):
        ExpertFusion()([s, de])
    with pytest.raises(ValueError, match="Domain experts must be"):
        ExpertFusion()([s, te, te])
    with pytest.raises(ValueError, match="no scalar 'alpha_domain'"):
        layer = ExpertFusion(use_domain=False)
        layer([s, te])
        layer.weight_of("alpha_domain")


# --------------------------------------------------------------------------- #
# DomainTaskTowers
# --------------------------------------------------------------------------- #


def test_towers_match_numpy_and_route_by_row(tmp_path):
    rng = np.random.default_rng(13)
    layer = DomainTaskTowers(hidden_units=4)
    layer.build([(None, T, D, 5), (None,)])
    limit = 1 / np.sqrt(5)
    assert np.abs(np.asarray(layer.hidden_kernel)).max() <= limit
    assert np.abs(np.asarray(layer.output_kernel)).max() <= 1 / np.sqrt(4)
    _randomise(layer, rng)
    hk, hb, gamma, beta, ok, ob = layer.get_weights()
    z = rng.normal(size=(6, T, D, 5)).astype("float32")
    domain = np.array([0, 2, 1, 1, 0, 2])
    out = np.asarray(layer([z, domain]))
    assert out.shape == (6, T)
    for i, d in enumerate(domain):
        for t in range(T):
            k = t * D + d
            hidden = _relu(_np_layer_norm(z[i, t, d] @ hk[k] + hb[k], gamma[k], beta[k]))
            np.testing.assert_allclose(out[i, t], hidden @ ok[k] + ob[k], rtol=1e-4, atol=1e-4)
    run_layer_checks(layer, [z, domain], tmp_path)
    unknown = np.asarray(layer([z[:1], np.array([D])]))
    np.testing.assert_array_equal(unknown, np.zeros((1, T), dtype="float32"))


def test_layers_accept_column_domain_ids():
    rng = np.random.default_rng(14)
    layer = DomainTaskTowers(hidden_units=3)
    z = rng.normal(size=(4, T, D, 5)).astype("float32")
    domain = np.array([0, 1, 2, 1])
    np.testing.assert_allclose(
        np.asarray(layer([z, domain])), np.asarray(layer([z, domain[:, None]])), atol=1e-6
    )


def test_seeded_initializer_is_cloned_per_weight():
    layer = ExpertBank(2, units=3, kernel_initializer=keras.initializers.RandomNormal(seed=3),
                       bias_initializer=keras.initializers.RandomNormal(seed=3))
    layer.build((None, 3))
    kernel, bias = np.asarray(layer.kernel), np.asarray(layer.bias)
    assert not np.allclose(kernel[0, 0], bias[0])
