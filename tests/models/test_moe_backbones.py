"""MoE-MLoRA on the paper's eight backbones (and refused on MLP and STAR)."""

import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.config import ModelConfig
from mlora_tf.models import DataSpec, build_model, count_params, dense_stack_of, variable_groups

SPEC = DataSpec({"uid": 40, "pid": 30, "domain": 2}, 2)
EIGHT = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")


@pytest.mark.parametrize("name", EIGHT)
def test_moe_builds_trains_and_routes_per_row(name):
    model = build_model(ModelConfig(name=name, adapter="moe", experts_per_domain=2, hidden_units=(16, 8)), SPEC)
    stack = dense_stack_of(model)
    assert stack.num_slots == 4
    groups = variable_groups(model)
    assert count_params(groups["gate"]) == 4 * 2 + 5 * 4  # the fork's gate: 4D + 5E
    rng = np.random.default_rng(0)
    for v in groups["adapter"]:
        v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
    x = {"uid": rng.integers(0, 40, 8), "pid": rng.integers(0, 30, 8), "domain": np.array([0, 1, 1, 0, 1, 0, 0, 1])}
    mixed = model(x)["logit"].numpy()
    for d in (0, 1):
        rows = x["domain"] == d
        np.testing.assert_allclose(mixed[rows], model({k: v[rows] for k, v in x.items()})["logit"].numpy(), rtol=1e-5, atol=1e-5)
    y = rng.integers(0, 2, 8).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, model(x, training=True)["logit"]))
    grads = tape.gradient(loss, groups["gate"])
    assert all(g is not None and np.abs(tf.convert_to_tensor(g).numpy()).sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["mlp", "star"])
def test_moe_refused_outside_the_eight(name):
    with pytest.raises(ValueError, match="MoE-MLoRA is not defined"):
        build_model(ModelConfig(name=name, adapter="moe"), SPEC)


def test_num_experts_must_be_a_multiple_of_domains():
    model = build_model(ModelConfig(name="wdl", adapter="moe", num_experts=8), SPEC)
    assert dense_stack_of(model).experts_per_domain == 4
    with pytest.raises(ValueError, match="multiple of the number of domains"):
        build_model(ModelConfig(name="wdl", adapter="moe", num_experts=3), SPEC)
