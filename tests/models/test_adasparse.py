"""AdaSparse (`mlora_tf/models/adasparse.py`), Base and +MLoRA: wiring (a pruner on every
hidden layer, inside the stack's `layer_transforms` hook), a numpy forward pass,
mixed-domain exactness, `get_config` and `.keras` round trips, a training step, and
learning on synthetic data with planted domain effects."""

import keras
import numpy as np
import pytest

import multi_domain_checks as checks
from mlora_tf.config import ModelConfig
from mlora_tf.layers import DomainPruner
from mlora_tf.models import build_model, count_params, dense_stack_of, variable_groups

ADAPTERS = checks.ADAPTERS
HIDDEN = checks.HIDDEN
SPEC = checks.SPEC

_CACHE = {}


def _value(v):
    return keras.ops.convert_to_numpy(v).astype(np.float64)


def _model(adapter):
    """A shared model per adapter with random adapters (B and the slot biases start at
    zero, which would hide them) and pruner biases that prune some neurons."""
    if adapter not in _CACHE:
        keras.utils.set_random_seed(21 + len(_CACHE))
        model = build_model(ModelConfig(name="adasparse", adapter=adapter, hidden_units=HIDDEN), SPEC)
        rng = np.random.default_rng(len(_CACHE))
        for v in variable_groups(model)["adapter"]:
            v.assign(rng.normal(0, 0.3, size=v.shape).astype("float32"))
        for pruner in dense_stack_of(model).layer_transforms:
            pruner.bias.assign(rng.normal(-1.0, 1.5, size=pruner.bias.shape).astype("float32"))
        _CACHE[adapter] = model
    return _CACHE[adapter]


def _factors(pruner, h, context):
    z = np.concatenate([h, context], axis=1) @ _value(pruner.kernel) + _value(pruner.bias)
    return np.maximum(pruner.beta / (1.0 + np.exp(-z)) - pruner.epsilon, 0.0)


def _numpy_logit(model, batch, factors=None):
    """The model's logit recomputed in float64 from its weights (inference: no dropout);
    `factors` (a list) collects each layer's weighting factors."""
    emb = [_value(model.get_layer(t).embeddings)[batch[f]] for f, t in
           (("uid", "user_emb"), ("pid", "item_emb"), ("domain", "domain_emb"))]
    x = np.concatenate(emb, axis=1)
    stack = dense_stack_of(model)
    for layer, pruner in zip(stack.dense_layers, stack.layer_transforms):
        pre = checks.stack_layer_numpy(stack, layer, x, batch["domain"])
        h = np.maximum(pre, 0.0)
        pi = _factors(pruner, h, emb[2])
        if factors is not None:
            factors.append(pi)
        x = h * pi
    return (x @ _value(model.get_layer("logit_head").kernel))[:, 0] + _value(model.get_layer("global_bias").bias)[0]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_pruner_per_hidden_layer_inside_the_stack(adapter):
    model = _model(adapter)
    stack = dense_stack_of(model)
    assert stack.mode == {"none": "plain", "mlora": "mlora"}[adapter] and stack.hidden_units == HIDDEN
    pruners = stack.layer_transforms
    assert [type(p) for p in pruners] == [DomainPruner, DomainPruner]
    assert [(p.name, p.form, p.beta, p.epsilon) for p in pruners] == [
        ("pruner_0", "fusion", 2.0, 0.25), ("pruner_1", "fusion", 2.0, 0.25)
    ]
    # pruner l sees h^(l) (width 16, then 8) and the domain embedding (8)
    assert [tuple(p.kernel.shape) for p in pruners] == [(24, 16), (16, 8)]
    groups = variable_groups(model)
    assert {v.path for v in groups["backbone"]} >= {f"dense_stack/pruner_{i}/{w}" for i in (0, 1) for w in ("kernel", "bias")}
    assert all(v.path.startswith("dense_stack/") and "pruner" not in v.path for v in groups["adapter"])
    assert count_params(groups["adapter"]) == (0 if adapter == "none" else 3 * ((24 * 1 + 1 * 16 + 16) + (16 * 1 + 1 * 8 + 8)))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_logit_equals_a_numpy_forward_pass_and_neurons_are_pruned(adapter):
    model = _model(adapter)
    batch = checks.batch()
    logit = keras.ops.convert_to_numpy(model(batch, training=False)["logit"])
    factors = []
    np.testing.assert_allclose(logit, _numpy_logit(model, batch, factors), rtol=1e-4, atol=1e-5)
    pruned = np.concatenate([f == 0.0 for f in factors], axis=1)
    assert 0 < pruned.mean() < 1  # some (row, neuron) pairs pruned, not all
    # which neurons are pruned depends on the domain
    by_domain = [pruned[batch["domain"] == d].mean(axis=0) for d in range(3)]
    assert any(not np.array_equal(by_domain[0], other) for other in by_domain[1:])


class TestAdaSparse(checks.MultiDomainChecks):
    NAME = "adasparse"
    STEP_PREFIXES = tuple(f"{n}/" for n in ("dense_stack/pruner_0", "dense_stack/pruner_1", "dense_stack", "domain_emb", "item_emb"))

    def model(self, adapter):
        return _model(adapter)

    def check_reloaded(self, model, other):
        assert [type(p) for p in dense_stack_of(other).layer_transforms] == [DomainPruner, DomainPruner]
