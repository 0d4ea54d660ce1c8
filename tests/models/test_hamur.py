"""HAMUR (`mlora_tf/models/hamur.py`), Base and +MLoRA: one hyper-network adapter after
every hidden layer (inside the stack's `layer_transforms` hook), a numpy forward pass,
mixed-domain exactness, config and `.keras` round trips, a training step, and learning
on synthetic data with planted domain effects."""

import keras
import numpy as np
import pytest

import multi_domain_checks as checks
from mlora_tf.layers import AdaptedDNN, HyperAdapter
from mlora_tf.models import dense_stack_of

NAME = "hamur"
ADAPTER_NAMES = ("hamur_adapter_0", "hamur_adapter_1")


def _model(adapter):
    model = checks.shared_model(NAME, adapter)
    rng = np.random.default_rng(7)  # random norm shifts and biases too (zeros at the start)
    for layer in dense_stack_of(model).layer_transforms:
        for w in layer.weights:
            w.assign(rng.normal(0, 0.3, size=w.shape).astype("float32"))
    return model


def _adapter_numpy(layer, h, z, domain):
    w = {v.name: keras.ops.convert_to_numpy(v).astype(np.float64) for v in layer.weights}
    k, out = layer.hyper_rank, []
    for row, d in enumerate(domain):
        cores = (np.maximum(z[row] @ w["hyper_kernel"] + w["hyper_bias"], 0.0) @ w["core_kernel"]
                 + w["core_bias"]).reshape(2, k, k)
        a = np.maximum(h[row] @ (w["down_u"][d] @ cores[0] @ w["down_v"][d]) + w["down_bias"][d], 0.0)
        a = a @ (w["up_u"][d] @ cores[1] @ w["up_v"][d]) + w["up_bias"][d]
        normed = (a - a.mean()) / np.sqrt(a.var() + layer.epsilon)
        out.append(h[row] + normed * w["norm_gamma"][d] + w["norm_beta"][d])
    return np.stack(out)


def _numpy_logit(model, feed):
    value = lambda v: keras.ops.convert_to_numpy(v).astype(np.float64)  # noqa: E731
    x = np.concatenate([value(model.get_layer(t).embeddings)[feed[f]] for f, t in
                        (("uid", "user_emb"), ("pid", "item_emb"), ("domain", "domain_emb"))], axis=1)
    z = x
    stack = dense_stack_of(model)
    for i, layer in enumerate(stack.dense_layers):
        pre = checks.stack_layer_numpy(stack, layer, x, feed["domain"])
        x = _adapter_numpy(stack.layer_transforms[i], np.maximum(pre, 0.0), z, feed["domain"])
    return (x @ value(model.get_layer("logit_head").kernel))[:, 0] + value(model.get_layer("global_bias").bias)[0]


@pytest.mark.parametrize("adapter", checks.ADAPTERS)
def test_one_hyper_adapter_per_hidden_layer_inside_the_stack(adapter):
    model = _model(adapter)
    stack = dense_stack_of(model)
    assert [t.name for t in stack.layer_transforms] == list(ADAPTER_NAMES)
    assert all(isinstance(t, HyperAdapter) and t.n_domains == 3 for t in stack.layer_transforms)
    assert [t.bottleneck_units for t in stack.layer_transforms] == [4, 2]  # units // 4
    hyper_paths = [v.path for t in stack.layer_transforms for v in t.weights]
    assert len(hyper_paths) == 2 * 12 and all(p.startswith("dense_stack/hamur_adapter_") for p in hyper_paths)
    # Built with the model (not on its first call), so the optimizer and files see them.
    assert set(hyper_paths) <= {v.path for v in model.trainable_variables}
    # The HAMUR adapters are part of the backbone; only MLoRA's are "adapter".
    adapters = {v.path for v in checks.variable_groups(model)["adapter"]}
    assert not adapters & set(hyper_paths)
    assert model.get_layer("dense_stack").mode == {"none": "plain", "mlora": "mlora"}[adapter]


@pytest.mark.parametrize("adapter", checks.ADAPTERS)
def test_logit_equals_a_numpy_forward_pass(adapter):
    model = _model(adapter)
    feed = checks.batch()
    np.testing.assert_allclose(checks.predict(model, feed, "logit"), _numpy_logit(model, feed), rtol=1e-4, atol=1e-4)


def test_stack_transforms_are_set_once_and_checked():
    stack = AdaptedDNN(hidden_units=(4, 2))
    with pytest.raises(ValueError, match=r"one entry per hidden layer \(2\)"):
        stack.set_layer_transforms([None])
    with pytest.raises(ValueError, match="Keras layers or None"):
        stack.set_layer_transforms([None, "adapter"])
    stack.set_layer_transforms([None, HyperAdapter(2, 1)])
    with pytest.raises(ValueError, match="set once"):
        stack.set_layer_transforms([None, None])
    # Without transforms the stack's config has no such key (nothing changes).
    assert "layer_transforms" not in AdaptedDNN(hidden_units=(4, 2)).get_config()


class TestHamur(checks.MultiDomainChecks):
    NAME = NAME
    STEP_PREFIXES = tuple(f"dense_stack/{n}/" for n in ADAPTER_NAMES)

    def model(self, adapter):
        return _model(adapter)

    def check_reloaded(self, model, other):
        for m in (model, other):
            config = dense_stack_of(m).get_config()
            assert [t["config"]["name"] for t in config["layer_transforms"]] == list(ADAPTER_NAMES)
