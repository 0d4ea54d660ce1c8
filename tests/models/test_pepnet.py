"""The gate-NU family (EPNet, PPNet, PEPNet; `mlora_tf/models/pepnet.py`), Base and +MLoRA:
wiring, a numpy forward pass, mixed-domain exactness, `.keras` round trip, a training
step, and learning on synthetic data with planted domain effects."""

import keras
import numpy as np
import pytest

import multi_domain_checks as checks
from mlora_tf.layers import GateNU
from mlora_tf.models import count_params, dense_stack_of, variable_groups

NAMES = ("epnet", "ppnet", "pepnet")
ADAPTERS = checks.ADAPTERS
HIDDEN = checks.HIDDEN
# The Gate NUs of each model: name -> units (d = 8, three fields: E is 24 wide).
GATES = {
    "epnet": {"epnet_gate": 24},
    "ppnet": {"ppnet_gate_0": 24, "ppnet_gate_1": 16, "ppnet_gate_2": 8},
    "pepnet": {"epnet_gate": 24, "ppnet_gate_0": 24, "ppnet_gate_1": 16, "ppnet_gate_2": 8},
}



def _producers(serialized):
    """The layers whose outputs a serialized call argument holds, in order."""
    if isinstance(serialized, dict):
        if serialized.get("class_name") == "__keras_tensor__":
            return [serialized["config"]["keras_history"][0]]
        return [n for value in serialized.values() for n in _producers(value)]
    if isinstance(serialized, (list, tuple)):
        return [n for value in serialized for n in _producers(value)]
    return []


def _gate_numpy(layer, prior, general=None):
    w = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in layer.weights]
    x = prior if general is None else np.concatenate([prior, general], axis=1)
    hidden = np.maximum(x @ w[0] + w[1], 0.0)
    return layer.gamma / (1.0 + np.exp(-(hidden @ w[2] + w[3])))


def _numpy_logit(model, name, batch):
    """The model's logit recomputed in float64 from its weights (inference: no dropout)."""
    value = lambda v: keras.ops.convert_to_numpy(v).astype(np.float64)  # noqa: E731
    emb = {f: value(model.get_layer(t).embeddings)[batch[f]] for f, t in
           (("uid", "user_emb"), ("pid", "item_emb"), ("domain", "domain_emb"))}
    x = np.concatenate([emb["uid"], emb["pid"], emb["domain"]], axis=1)
    if name in ("epnet", "pepnet"):
        x = x * _gate_numpy(model.get_layer("epnet_gate"), emb["domain"], x)
    scales = [None] * len(HIDDEN)
    if name in ("ppnet", "pepnet"):
        prior = np.concatenate([emb["uid"], emb["pid"]], axis=1)
        gates = [_gate_numpy(model.get_layer(f"ppnet_gate_{i}"), prior, x) for i in range(len(HIDDEN) + 1)]
        x, scales = x * gates[0], gates[1:]
    stack = dense_stack_of(model)
    for i, layer in enumerate(stack.dense_layers):
        pre = checks.stack_layer_numpy(stack, layer, x, batch["domain"])
        x = np.maximum(pre, 0.0)
        if scales[i] is not None:
            x = x * scales[i]
    return (x @ value(model.get_layer("logit_head").kernel))[:, 0] + value(model.get_layer("global_bias").bias)[0]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_gates_sit_outside_the_stack_and_the_adapters_inside(name, adapter):
    model = checks.shared_model(name, adapter)
    gates = {layer.name: layer.units for layer in model.layers if isinstance(layer, GateNU)}
    assert gates == GATES[name]
    assert all(model.get_layer(g).gamma == 2.0 for g in gates)
    stack = dense_stack_of(model)
    assert stack.mode == {"none": "plain", "mlora": "mlora"}[adapter] and stack.hidden_units == HIDDEN
    # PPNet's gates 1.. reach the stack as its per-layer scales (`layer_scales`).
    (node,) = next(c for c in model.get_config()["layers"] if c["name"] == "dense_stack")["inbound_nodes"]
    scales = _producers(node["kwargs"].get("layer_scales", []))
    assert scales == [g for g in GATES[name] if g.startswith("ppnet_gate_") and g != "ppnet_gate_0"]
    assert _producers(node["args"]) == [{"epnet": "epnet_embeddings"}.get(name, "ppnet_input"), "domain"]
    adapters = variable_groups(model)["adapter"]
    assert all(v.path.startswith("dense_stack/") for v in adapters)
    assert count_params(adapters) == (0 if adapter == "none" else 3 * ((24 * 1 + 1 * 16 + 16) + (16 * 1 + 1 * 8 + 8)))


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_logit_equals_a_numpy_forward_pass(name, adapter):
    model = checks.shared_model(name, adapter)
    batch = checks.batch()
    logit = keras.ops.convert_to_numpy(model(batch, training=False)["logit"])
    np.testing.assert_allclose(logit, _numpy_logit(model, name, batch), rtol=1e-4, atol=1e-5)


class _GateNUChecks(checks.MultiDomainChecks):
    """The shared checks; the Gate NUs' configs survive the round trips and one step
    moves every Gate NU."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.LAYERS = tuple(GATES[cls.NAME])
        cls.STEP_PREFIXES = tuple(f"{g}/" for g in GATES[cls.NAME])


class TestEPNet(_GateNUChecks):
    NAME = "epnet"


class TestPPNet(_GateNUChecks):
    NAME = "ppnet"


class TestPEPNet(_GateNUChecks):
    NAME = "pepnet"
