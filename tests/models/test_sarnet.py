"""SAR-Net (`mlora_tf/models/sarnet.py`), Base and +MLoRA: wiring, a numpy forward pass,
mixed-domain exactness, `get_config` and `.keras` round trips, a training step, and
learning on synthetic data with planted domain effects."""

import keras
import numpy as np
import pytest

import multi_domain_checks as checks
from mlora_tf.config import ModelConfig
from mlora_tf.layers import ScenarioAttention, ScenarioExperts, ScenarioLinear
from mlora_tf.models import build_model, count_params, dense_stack_of, variable_groups

ADAPTERS = checks.ADAPTERS
HIDDEN = checks.HIDDEN
SPEC = checks.SPEC
SARNET_LAYERS = ("scenario_attention", "item_attention", "scenario_transform", "scenario_experts")

_CACHE = {}


def _value(v):
    return keras.ops.convert_to_numpy(v).astype(np.float64)


def _model(adapter):
    """A shared model per adapter with random adapters and per-domain parameters (B,
    the slot biases and the scenario transform start neutral, which would hide them)."""
    if adapter not in _CACHE:
        keras.utils.set_random_seed(11 + len(_CACHE))
        model = build_model(ModelConfig(name="sarnet", adapter=adapter, hidden_units=HIDDEN), SPEC)
        rng = np.random.default_rng(len(_CACHE))
        transform = model.get_layer("scenario_transform")
        experts = model.get_layer("scenario_experts")
        for v in [*variable_groups(model)["adapter"], transform.shift, experts.specific_bias, experts.gate_bias]:
            v.assign(rng.normal(0, 0.3, size=v.shape).astype("float32"))
        transform.scale.assign(rng.normal(1, 0.3, size=transform.scale.shape).astype("float32"))
        _CACHE[adapter] = model
    return _CACHE[adapter]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _attention(layer, query, values):
    q, k = query @ _value(layer.query_kernel), values @ _value(layer.key_kernel)
    weights = _softmax(np.einsum("ba,bja->bj", q, k) / np.sqrt(q.shape[-1]))
    return np.einsum("bj,bjd->bd", weights, values)


def _numpy_logit(model, batch):
    """The model's logit recomputed in float64 from its weights (inference: no dropout)."""
    emb = [_value(model.get_layer(t).embeddings)[batch[f]] for f, t in
           (("uid", "user_emb"), ("pid", "item_emb"), ("domain", "domain_emb"))]
    fields = np.stack(emb, axis=1)
    d = batch["domain"]
    x = np.concatenate([
        *emb,
        _attention(model.get_layer("scenario_attention"), emb[2], fields),
        _attention(model.get_layer("item_attention"), emb[1], fields),
    ], axis=1)
    transform = model.get_layer("scenario_transform")
    x = x * _value(transform.scale)[d] + _value(transform.shift)[d]
    stack = dense_stack_of(model)
    for layer in stack.dense_layers:
        pre = checks.stack_layer_numpy(stack, layer, x, d)
        x = np.maximum(pre, 0.0)
    experts = model.get_layer("scenario_experts")
    gate = _softmax(emb[2] @ _value(experts.gate_kernel) + _value(experts.gate_bias))
    shared = [np.maximum(x @ _value(experts.shared_kernel)[s] + _value(experts.shared_bias)[s], 0.0)
              for s in range(experts.num_shared)]
    specific = np.maximum(np.einsum("bi,biu->bu", x, _value(experts.specific_kernel)[d])
                          + _value(experts.specific_bias)[d], 0.0)
    fused = sum(gate[:, s:s + 1] * e for s, e in enumerate(shared)) + gate[:, -1:] * specific
    return (fused @ _value(model.get_layer("logit_head").kernel))[:, 0] + _value(model.get_layer("global_bias").bias)[0]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_parts_sit_around_the_stack_and_the_adapters_inside(adapter):
    model = _model(adapter)
    kinds = {layer.name: type(layer) for layer in model.layers}
    assert kinds["scenario_attention"] is ScenarioAttention and kinds["item_attention"] is ScenarioAttention
    assert kinds["scenario_transform"] is ScenarioLinear and kinds["scenario_experts"] is ScenarioExperts
    experts = model.get_layer("scenario_experts")
    assert (experts.units, experts.n_domains, experts.num_shared) == (8, 3, 2)
    stack = dense_stack_of(model)
    assert stack.mode == {"none": "plain", "mlora": "mlora"}[adapter] and stack.hidden_units == HIDDEN
    # the stack's input is the transformed features: 3 * 8 embeddings + 2 * 8 attention outputs
    assert stack.dense_layers[0].kernel.shape == (40, 16)
    adapters = variable_groups(model)["adapter"]
    assert all(v.path.startswith("dense_stack/") for v in adapters)
    assert count_params(adapters) == (0 if adapter == "none" else 3 * ((40 * 1 + 1 * 16 + 16) + (16 * 1 + 1 * 8 + 8)))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_logit_equals_a_numpy_forward_pass(adapter):
    model = _model(adapter)
    batch = checks.batch()
    logit = keras.ops.convert_to_numpy(model(batch, training=False)["logit"])
    np.testing.assert_allclose(logit, _numpy_logit(model, batch), rtol=1e-4, atol=1e-5)


class TestSARNet(checks.MultiDomainChecks):
    NAME = "sarnet"
    LAYERS = SARNET_LAYERS
    STEP_PREFIXES = tuple(f"{n}/" for n in (*SARNET_LAYERS, "dense_stack", "domain_emb", "item_emb"))

    def model(self, adapter):
        return _model(adapter)
