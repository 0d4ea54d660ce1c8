"""AdaptDHM (`mlora_tf/models/adaptdhm.py`), Base and +MLoRA: shared bottom, cluster
router and cluster towers, a numpy forward pass of the routing, mixed-domain
exactness, config and `.keras` round trips (centroids included), a training step that
moves the centroids, and learning on synthetic data with planted domain effects."""

import keras
import numpy as np
import pytest

import multi_domain_checks as checks
from mlora_tf.layers import ClusterRouter, ExpertBank
from mlora_tf.models import build_model, dense_stack_of
from mlora_tf.config import ModelConfig

NAME = "adaptdhm"
LAYERS = ("adaptdhm_router", "adaptdhm_towers", "adaptdhm_tower_logits")


def _model(adapter):
    model = checks.shared_model(NAME, adapter)
    # Centroids at four rows' representations (one per domain and one more), so a
    # batch reaches several towers whatever the random start.
    feed = checks.batch(seed=9)
    rows = [int(np.flatnonzero(feed["domain"] == d)[0]) for d in range(3)] + [int(np.flatnonzero(feed["domain"] == 0)[1])]
    bottom = keras.Model(model.inputs, model.get_layer("dense_stack").output)
    u = keras.ops.convert_to_numpy(bottom({k: v[rows] for k, v in feed.items()}))
    model.get_layer("adaptdhm_router").centroids.assign(u + 1e-3 * np.eye(4, u.shape[1], dtype="float32"))
    return model


def _value(v):
    return keras.ops.convert_to_numpy(v).astype(np.float64)


@pytest.mark.parametrize("adapter", checks.ADAPTERS)
def test_router_and_towers_sit_on_the_shared_bottom(adapter):
    model = _model(adapter)
    assert isinstance(model.get_layer("adaptdhm_router"), ClusterRouter)
    assert isinstance(model.get_layer("adaptdhm_towers"), ExpertBank)
    assert model.get_layer("adaptdhm_router").num_clusters == model.get_layer("adaptdhm_towers").num_experts == 4
    assert model.get_layer("adaptdhm_router").centroids.shape == (4, checks.HIDDEN[-1])
    assert dense_stack_of(model).mode == {"none": "plain", "mlora": "mlora"}[adapter]
    assert all(v.path.startswith("dense_stack/") for v in checks.variable_groups(model)["adapter"])


@pytest.mark.parametrize("adapter", checks.ADAPTERS)
def test_logit_is_the_routed_towers_logit(adapter):
    model = _model(adapter)
    feed = checks.batch(seed=9)
    bottom = keras.Model(model.inputs, model.get_layer("dense_stack").output)
    towers = keras.Model(model.inputs, model.get_layer("adaptdhm_towers").output)
    u = keras.ops.convert_to_numpy(bottom(feed)).astype(np.float64)
    t = keras.ops.convert_to_numpy(towers(feed)).astype(np.float64)  # (B, K, 32)
    centroids = _value(model.get_layer("adaptdhm_router").centroids)
    unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)  # noqa: E731  (a zero row: cos 0)
    cos = unit(u) @ unit(centroids).T
    cluster = cos.argmax(axis=1)
    assert len(set(cluster.tolist())) > 1  # several towers in one batch
    head = model.get_layer("adaptdhm_tower_logits")
    kernel, bias = _value(head.kernel), _value(head.bias)
    logits = np.einsum("bkd,kd->bk", t, kernel) + bias
    expected = logits[np.arange(len(cluster)), cluster] + _value(model.get_layer("global_bias").bias)[0]
    np.testing.assert_allclose(checks.predict(model, feed, "logit"), expected, rtol=1e-4, atol=1e-5)


def test_training_calls_move_the_centroids_inference_does_not():
    keras.utils.set_random_seed(1)
    model = build_model(ModelConfig(name=NAME, hidden_units=checks.HIDDEN), checks.SPEC)
    centroids = model.get_layer("adaptdhm_router").centroids
    before = keras.ops.convert_to_numpy(centroids).copy()
    model(checks.batch(), training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(centroids), before)
    model(checks.batch(), training=True)
    assert np.abs(keras.ops.convert_to_numpy(centroids) - before).max() > 1e-4


class TestAdaptDHM(checks.MultiDomainChecks):
    NAME = NAME
    LAYERS = LAYERS
    STEP_PREFIXES = tuple(f"{n}/" for n in LAYERS[1:])

    def model(self, adapter):
        return _model(adapter)
