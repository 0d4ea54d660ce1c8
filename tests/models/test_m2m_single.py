"""Single-task M2M (`mlora_tf/models/m2m.py`), Base and +MLoRA: built from the multi-task
M2M's layers (experts, meta attention, meta units) with one task, a numpy forward pass
of its meta tower, mixed-domain exactness, config and `.keras` round trips, a training
step, and learning on synthetic data with planted domain effects."""

import keras
import numpy as np
import pytest

import multi_domain_checks as checks
from mlora_tf.layers import ExpertBank, MetaAttention, MetaUnit
from mlora_tf.models import dense_stack_of, get_model

NAME = "m2m"
M2M_LAYERS = ("m2m_experts", "m2m_meta_attention", "m2m_meta_tower_0", "m2m_meta_tower_1")


def _value(v):
    return keras.ops.convert_to_numpy(v).astype(np.float64)


def _meta_unit_numpy(layer, h, z):
    """`ReLU(h (reshape(z V_W) + C_W) + z V_b + c_b)` per row (MetaUnit's formula)."""
    w = {v.name: _value(v) for v in layer.weights}
    kernels = np.einsum("bs,siu->biu", z, w["scenario_kernel"]) + w["kernel"]
    return np.maximum(np.einsum("bi,biu->bu", h, kernels) + z @ w["scenario_bias"] + w["bias"], 0.0)


def test_the_multi_task_m2m_stays_registered():
    assert get_model(NAME, "multi_task").name == NAME  # the multi-task M2M stays (its own kind)


@pytest.mark.parametrize("adapter", checks.ADAPTERS)
def test_reuses_the_multi_task_layers_with_one_task(adapter):
    model = checks.shared_model(NAME, adapter)
    kinds = {n: type(model.get_layer(n)) for n in M2M_LAYERS}
    assert kinds == {"m2m_experts": ExpertBank, "m2m_meta_attention": MetaAttention,
                     "m2m_meta_tower_0": MetaUnit, "m2m_meta_tower_1": MetaUnit}
    assert model.get_layer("m2m_meta_attention").n_tasks == 1
    assert model.get_layer("m2m_experts").num_experts == 4
    # The dense stack (where MLoRA's adapters go) feeds the experts.
    assert dense_stack_of(model).mode == {"none": "plain", "mlora": "mlora"}[adapter]
    assert all(v.path.startswith("dense_stack/") for v in checks.variable_groups(model)["adapter"])


@pytest.mark.parametrize("adapter", checks.ADAPTERS)
def test_meta_tower_and_logit_equal_numpy(adapter):
    model = checks.shared_model(NAME, adapter)
    feed = checks.batch()
    z = _value(model.get_layer("domain_emb").embeddings)[feed["domain"]]
    view = keras.Model(model.inputs, model.get_layer("m2m_task_view").output)
    h = keras.ops.convert_to_numpy(view(feed)).astype(np.float64)
    for i in range(2):  # h <- ReLU(Meta(h; z)) + h
        h = _meta_unit_numpy(model.get_layer(f"m2m_meta_tower_{i}"), h, z) + h
    logit = (h @ _value(model.get_layer("logit_head").kernel))[:, 0] + _value(model.get_layer("global_bias").bias)[0]
    np.testing.assert_allclose(checks.predict(model, feed, "logit"), logit, rtol=1e-4, atol=1e-5)


class TestM2M(checks.MultiDomainChecks):
    NAME = NAME
    LAYERS = M2M_LAYERS
    STEP_PREFIXES = tuple(f"{n}/" for n in M2M_LAYERS)
