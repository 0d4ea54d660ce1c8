import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import PartitionedNorm

EPS = 1e-3
M = 0.99
D, N = 3, 5


def _one_hot(domains):
    return np.eye(D, dtype="float32")[np.asarray(domains)]


def _randomize_affine(layer, rng):
    for var in (layer.gamma_shared, layer.beta_shared, layer.gamma_domain, layer.beta_domain):
        var.assign(rng.normal(size=var.shape).astype("float32"))


def _affine(layer, k):
    g = layer.gamma_shared.numpy() * layer.gamma_domain.numpy()[k]
    b = layer.beta_shared.numpy() + layer.beta_domain.numpy()[k]
    return g, b


def _numpy_train(layer, x, domains):
    y = np.zeros_like(x)
    for k in np.unique(domains):
        rows = domains == k
        mu, var = x[rows].mean(0), x[rows].var(0)  # biased variance
        g, b = _affine(layer, k)
        y[rows] = g * (x[rows] - mu) / np.sqrt(var + EPS) + b
    return y


def _numpy_infer(layer, x, domains):
    mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    y = np.zeros_like(x)
    for row, k in enumerate(domains):
        g, b = _affine(layer, k)
        y[row] = g * (x[row] - mean[k]) / np.sqrt(var[k] + EPS) + b
    return y


class _NumpyEMA:
    """Reference zero-debiased EMA (TF 1 assign_moving_average, zero_debias)."""

    def __init__(self):
        self.biased = {"mean": np.zeros((D, N)), "var": np.zeros((D, N))}
        self.stored = {"mean": np.zeros((D, N)), "var": np.ones((D, N))}
        self.steps = np.zeros(D)

    def update(self, x, domains):
        for k in np.unique(domains):
            rows = domains == k
            self.steps[k] += 1
            for key, value in (("mean", x[rows].mean(0)), ("var", x[rows].var(0))):
                self.biased[key][k] = M * self.biased[key][k] + (1 - M) * value
                self.stored[key][k] = self.biased[key][k] / (1 - M ** self.steps[k])


def _batch(rng, domains, shift=0.0):
    domains = np.asarray(domains)
    x = (rng.normal(size=(len(domains), N)) * (1 + domains[:, None]) + shift).astype("float32")
    return x, domains


def test_training_uses_per_domain_statistics_on_mixed_batch():
    rng = np.random.default_rng(0)
    x, domains = _batch(rng, [0, 2, 0, 2, 2, 0, 0])
    layer = PartitionedNorm()
    layer.build([x.shape, (None, D)])
    _randomize_affine(layer, rng)
    y = np.asarray(layer([x, _one_hot(domains)], training=True))
    np.testing.assert_allclose(y, _numpy_train(layer, x, domains), rtol=1e-4, atol=1e-4)


def test_single_domain_batch_equals_plain_batch_statistics():
    rng = np.random.default_rng(1)
    x, domains = _batch(rng, [1] * 6, shift=3.0)
    y = np.asarray(PartitionedNorm()([x, _one_hot(domains)], training=True))
    plain = (x - x.mean(0)) / np.sqrt(x.var(0) + EPS)
    np.testing.assert_allclose(y, plain, rtol=1e-4, atol=1e-4)


def _assert_state(layer, ref):
    close = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.num_updates.numpy(), ref.steps)
    np.testing.assert_allclose(layer.moving_mean.numpy(), ref.stored["mean"], **close)
    np.testing.assert_allclose(layer.moving_variance.numpy(), ref.stored["var"], **close)
    np.testing.assert_allclose(layer.moving_mean_biased.numpy(), ref.biased["mean"], **close)
    np.testing.assert_allclose(layer.moving_variance_biased.numpy(), ref.biased["var"], **close)


def test_moving_statistics_are_zero_debiased_per_domain():
    rng = np.random.default_rng(2)
    layer, ref = PartitionedNorm(), _NumpyEMA()
    (x1, d1), (x2, d2) = _batch(rng, [0, 2, 2, 0, 0]), _batch(rng, [0, 1, 1, 0], shift=2.0)
    layer([x1, _one_hot(d1)], training=True)
    ref.update(x1, d1)
    _assert_state(layer, ref)  # domain 1 absent: still zeros / ones
    np.testing.assert_array_equal(layer.moving_variance.numpy()[1], np.ones(N))
    layer([x2, _one_hot(d2)], training=True)
    ref.update(x2, d2)
    _assert_state(layer, ref)
    np.testing.assert_allclose(layer.num_updates.numpy(), [2, 1, 1])
    # After a domain's first update its statistic is exactly that batch statistic.
    close = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy()[2], x1[d1 == 2].mean(0), **close)
    np.testing.assert_allclose(layer.moving_variance.numpy()[1], x2[d2 == 1].var(0), **close)
    # After two updates: (m(1-m) v1 + (1-m) v2) / (1 - m^2).
    v1, v2 = x1[d1 == 0].var(0), x2[d2 == 0].var(0)
    two = (M * (1 - M) * v1 + (1 - M) * v2) / (1 - M**2)
    np.testing.assert_allclose(layer.moving_variance.numpy()[0], two, **close)


def test_inference_uses_moving_statistics_and_routes_per_row():
    rng = np.random.default_rng(3)
    layer = PartitionedNorm()
    for domains in ([0, 1, 2, 0, 1, 2], [2, 2, 1, 0]):
        x, domains = _batch(rng, domains)
        layer([x, _one_hot(domains)], training=True)
    _randomize_affine(layer, rng)
    x, domains = _batch(rng, [1, 0, 2, 2, 0, 1, 1])
    state = [v.numpy() for v in layer.non_trainable_weights]
    y = np.asarray(layer([x, _one_hot(domains)], training=False))
    np.testing.assert_allclose(y, _numpy_infer(layer, x, domains), rtol=1e-4, atol=1e-4)
    for k in range(D):
        rows = domains == k
        alone = np.asarray(layer([x[rows], _one_hot(domains[rows])], training=False))
        np.testing.assert_allclose(y[rows], alone, rtol=1e-5, atol=1e-5)
    # Inference (and training=None) leaves the state untouched.
    layer([x, _one_hot(domains)])
    for before, var in zip(state, layer.non_trainable_weights):
        np.testing.assert_array_equal(before, var.numpy())


def test_updates_inside_tf_function():
    rng = np.random.default_rng(4)
    layer, ref = PartitionedNorm(), _NumpyEMA()
    step = tf.function(lambda x, m: layer([x, m], training=True))
    for domains in ([0, 0, 1], [1, 2, 2, 1]):
        x, domains = _batch(rng, domains)
        step(tf.constant(x), tf.constant(_one_hot(domains)))
        ref.update(x, domains)
    _assert_state(layer, ref)


def test_weights_and_layer_checks(tmp_path):
    rng = np.random.default_rng(5)
    layer = PartitionedNorm()
    x, domains = _batch(rng, [0, 1, 2, 1, 0, 2])
    layer([x, _one_hot(domains)], training=True)
    assert [w.shape for w in layer.trainable_weights] == [(N,), (N,), (D, N), (D, N)]
    assert [w.name for w in layer.non_trainable_weights] == [
        "moving_mean", "moving_variance", "moving_mean_biased",
        "moving_variance_biased", "num_updates",
    ]
    run_layer_checks(layer, [x, _one_hot(domains)], tmp_path)


def test_mixed_precision_matches_float32():
    rng = np.random.default_rng(6)
    x, domains = _batch(rng, [0, 1, 1, 2, 0, 2])
    full, half = PartitionedNorm(), PartitionedNorm(dtype="mixed_float16")
    y_full = np.asarray(full([x, _one_hot(domains)], training=True))
    y_half = half([x.astype("float16"), _one_hot(domains)], training=True)
    assert keras.backend.standardize_dtype(y_half.dtype) == "float16"
    assert half.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y_half, "float32"), y_full, atol=2e-2)
    np.testing.assert_allclose(
        half.moving_variance.numpy(), full.moving_variance.numpy(), rtol=1e-2
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"momentum": 1.0}, r"Received: momentum=1.0"),
        ({"momentum": -0.1}, r"Received: momentum=-0.1"),
        ({"epsilon": 0.0}, r"Received: epsilon=0.0"),
    ],
)
def test_rejects_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PartitionedNorm(**kwargs)


def test_rejects_single_input():
    with pytest.raises(ValueError, match=r"\[x, mixture\].*Received: input_shape="):
        PartitionedNorm()(np.zeros((2, 4), "float32"))
