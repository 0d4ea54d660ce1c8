"""STAR (original-model-zoo.md §4) and STAR+MLoRA."""

import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.config import ModelConfig
from mlora_tf.models import DataSpec, build_model, count_params, dense_stack_of, variable_groups

SPEC = DataSpec({"uid": 60, "pid": 50, "domain": 3}, 3)


def _star(adapter, **kwargs):
    return build_model(ModelConfig(name="star", adapter=adapter, **kwargs), SPEC)


def test_star_architecture_follows_the_original():
    model = _star("none")
    stack = dense_stack_of(model)
    assert stack.topology == "star" and stack.dropout == 0.0
    assert model.get_layer("user_emb").output_dim == 128  # STAR configs use d = 128
    # star FCN layers: shared (in, units) and per-domain (D, in, units) kernels, biases
    shapes = [tuple(w.shape) for layer in stack.star_layers for w in layer.weights]
    assert shapes[:4] == [(384, 256), (3, 384, 256), (256,), (3, 256)]
    norm = model.get_layer("partitioned_norm")
    assert {w.name for w in norm.weights} >= {"gamma_shared", "beta_shared", "gamma_domain", "beta_domain",
                                              "moving_mean", "moving_variance"}
    assert variable_groups(model)["adapter"] == []


def test_star_mlora_adds_adapters_to_the_star_stack():
    base, mlora = _star("none"), _star("mlora")
    assert count_params(variable_groups(mlora)["adapter"]) == 3 * (
        (384 * 16 + 16 * 256 + 256) + (256 * 8 + 8 * 128 + 128) + (128 * 4 + 4 * 64 + 64)
    )
    strip = lambda m: sorted(tuple(v.shape) for v in variable_groups(m)["backbone"])  # noqa: E731
    assert strip(base) == strip(mlora)


@pytest.mark.parametrize("adapter", ["none", "mlora"])
@pytest.mark.parametrize("training", [False, True])
def test_mixed_batch_matches_single_domain_batches(adapter, training):
    model = _star(adapter, auxiliary_net=True)
    rng = np.random.default_rng(0)
    for v in model.variables:  # random per-domain parameters and moving statistics
        if any(k in v.path for k in ("adapter", "domain_bias", "beta_domain", "moving_mean")):
            v.assign(rng.normal(0, 0.3, size=v.shape).astype("float32"))
    x = {"uid": rng.integers(0, 60, 12), "pid": rng.integers(0, 50, 12), "domain": np.repeat([0, 1, 2], 4)}
    rng.shuffle(x["domain"])
    snapshot = [v.numpy() for v in model.variables]
    mixed = model(x, training=training)["logit"].numpy()
    for d in range(3):
        for v, s in zip(model.variables, snapshot):  # training updates moving statistics
            v.assign(s)
        rows = x["domain"] == d
        alone = model({k: v[rows] for k, v in x.items()}, training=training)["logit"].numpy()
        np.testing.assert_allclose(mixed[rows], alone, rtol=1e-4, atol=1e-4)


def test_star_trains_one_step():
    model = _star("mlora")
    x = {"uid": np.arange(8), "pid": np.arange(8), "domain": np.array([0, 0, 1, 1, 2, 2, 0, 1])}
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1], "float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, model(x, training=True)["logit"]))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads) and np.isfinite(float(loss))
