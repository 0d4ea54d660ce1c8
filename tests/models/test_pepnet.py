"""The gate-NU family (EPNet, PPNet, PEPNet; `mlora_tf/models/pepnet.py`), Base and +MLoRA:
wiring, a numpy forward pass, mixed-domain exactness, `.keras` round trip, a training
step, and learning on synthetic data with planted domain effects."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.config import ModelConfig, TrainConfig
from mlora_tf.data import load_dataset
from mlora_tf.layers import GateNU
from mlora_tf.models import DataSpec, build_model, count_params, dense_stack_of, get_backbone, variable_groups
from mlora_tf.training import Trainer, schedule_phases

NAMES = ("epnet", "ppnet", "pepnet")
ADAPTERS = ("none", "mlora")
HIDDEN = (16, 8)
SPEC = DataSpec({"uid": 60, "pid": 50, "domain": 3}, 3)
# The Gate NUs of each model: name -> units (d = 8, three fields: E is 24 wide).
GATES = {
    "epnet": {"epnet_gate": 24},
    "ppnet": {"ppnet_gate_0": 24, "ppnet_gate_1": 16, "ppnet_gate_2": 8},
    "pepnet": {"epnet_gate": 24, "ppnet_gate_0": 24, "ppnet_gate_1": 16, "ppnet_gate_2": 8},
}

_CACHE = {}


def _model(name, adapter):
    """A shared model per (name, adapter) with random adapters (B and the slot biases
    are zero at the start, which would hide the adapters); tests that train build
    their own."""
    key = (name, adapter)
    if key not in _CACHE:
        keras.utils.set_random_seed(len(_CACHE))
        model = build_model(ModelConfig(name=name, adapter=adapter, hidden_units=HIDDEN), SPEC)
        rng = np.random.default_rng(len(_CACHE))
        for v in variable_groups(model)["adapter"]:
            v.assign(rng.normal(0, 0.3, size=v.shape).astype("float32"))
        _CACHE[key] = model
    return _CACHE[key]


def _batch(n=24, seed=0):
    rng = np.random.default_rng(seed)
    domain = np.repeat(np.arange(3), n // 3)
    rng.shuffle(domain)
    return {
        "uid": rng.integers(0, 60, n).astype("int64"),
        "pid": rng.integers(0, 50, n).astype("int64"),
        "domain": domain.astype("int64"),
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
        pre = x @ value(layer.kernel) + value(layer.bias)
        if stack.mode == "mlora":
            r = layer.rank
            a, b, c = value(layer.adapter_kernel_a), value(layer.adapter_kernel_b), value(layer.adapter_bias)
            for row, d in enumerate(batch["domain"]):
                pre[row] += x[row] @ a[:, d * r:(d + 1) * r] @ b[d * r:(d + 1) * r] + c[d]
        x = np.maximum(pre, 0.0)
        if scales[i] is not None:
            x = x * scales[i]
    return (x @ value(model.get_layer("logit_head").kernel))[:, 0] + value(model.get_layer("global_bias").bias)[0]


def test_registered_as_multi_domain_models_without_moe():
    for name in NAMES:
        spec = get_backbone(name)
        assert spec.group == "multi-domain" and spec.adapters == ("none", "mlora") and spec.description
        assert (spec.base_profile, spec.adapted_profile) == ("mlora_class", "mlora_class")
        with pytest.raises(ValueError) as refused:  # a clear refusal that names the model and MoE
            build_model(ModelConfig(name=name, adapter="moe", hidden_units=HIDDEN), SPEC)
        assert f"'{name}'" in str(refused.value) and "moe" in str(refused.value).lower()


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_gates_sit_outside_the_stack_and_the_adapters_inside(name, adapter):
    model = _model(name, adapter)
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


@pytest.mark.parametrize("name", NAMES)
def test_mlora_adds_only_the_adapters(name):
    shapes = lambda m: sorted(tuple(v.shape) for v in variable_groups(m)["backbone"])  # noqa: E731
    assert shapes(_model(name, "none")) == shapes(_model(name, "mlora"))


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_logit_equals_a_numpy_forward_pass(name, adapter):
    model = _model(name, adapter)
    batch = _batch()
    logit = keras.ops.convert_to_numpy(model(batch, training=False)["logit"])
    np.testing.assert_allclose(logit, _numpy_logit(model, name, batch), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_mixed_batch_matches_single_domain_batches(name, adapter):
    model = _model(name, adapter)
    batch = _batch(30, seed=1)
    mixed = keras.ops.convert_to_numpy(model(batch, training=False)["probability"])
    for d in range(3):
        rows = batch["domain"] == d
        alone = model({k: v[rows] for k, v in batch.items()}, training=False)["probability"]
        np.testing.assert_allclose(mixed[rows], keras.ops.convert_to_numpy(alone), rtol=1e-5, atol=1e-6)
        with dense_stack_of(model).single_domain_batches():  # the trainer's one-domain routing
            promised = model({k: v[rows] for k, v in batch.items()}, training=False)["probability"]
        np.testing.assert_allclose(mixed[rows], keras.ops.convert_to_numpy(promised), rtol=1e-5, atol=1e-6)
    # The domain matters (else the check above would say nothing).
    shifted = model({**batch, "domain": (batch["domain"] + 1) % 3}, training=False)["probability"]
    assert np.abs(keras.ops.convert_to_numpy(shifted) - mixed).max() > 1e-4


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_keras_file_round_trip(name, adapter, tmp_path):
    model = _model(name, adapter)
    path = os.path.join(tmp_path, f"{name}_{adapter}.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    batch = _batch(seed=2)
    for key in ("logit", "probability"):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(reloaded(batch, training=False)[key]),
            keras.ops.convert_to_numpy(model(batch, training=False)[key]),
        )
    for layer_name in GATES[name]:
        assert reloaded.get_layer(layer_name).get_config() == model.get_layer(layer_name).get_config()
    assert dense_stack_of(reloaded).get_config() == dense_stack_of(model).get_config()


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_one_training_step_moves_the_weights(name, adapter):
    keras.utils.set_random_seed(5)
    model = build_model(ModelConfig(name=name, adapter=adapter, hidden_units=HIDDEN), SPEC)
    batch = _batch(48, seed=3)
    label = tf.constant(np.random.default_rng(4).integers(0, 2, 48).astype("float32"))
    variables = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    with tf.GradientTape() as tape:
        logit = model(batch, training=True)["logit"]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logit)) + tf.add_n(
            model.losses or [tf.constant(0.0)]
        )
    gradients = tape.gradient(loss, variables)
    for v, g in zip(variables, gradients):
        assert g is not None, v.path
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(g))), v.path
    keras.optimizers.Adam(learning_rate=1e-2).apply(gradients, variables)
    changed = {v.path for v, b in zip(variables, before) if not np.array_equal(keras.ops.convert_to_numpy(v), b)}
    for gate in GATES[name]:
        assert any(p.startswith(f"{gate}/") for p in changed), gate
    assert any(p.startswith("dense_stack/") for p in changed) and any("emb" in p for p in changed)
    if adapter == "mlora":  # B starts at zero, so B moves first
        assert any("adapter_kernel_b" in p for p in changed)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", n_rows=20000, n_users=300, n_items=150)  # shift 1: planted domain effects


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NAMES)
def test_beats_a_constant_predictor_on_synthetic_data(name, adapter, synthetic):
    keras.utils.set_random_seed(0)
    model = build_model(
        ModelConfig(name=name, adapter=adapter, hidden_units=(32, 16), dropout=0.0), DataSpec.from_dataset(synthetic)
    )
    trainer = Trainer(model, synthetic, TrainConfig(batch_size=256, max_epochs=3, patience=3, learning_rate=1e-3))
    trainer.fit(schedule_phases("joint", adapter))
    test = trainer.evaluate("test")
    # The constant predictor: the training click rate for every row (AUC 0.5).
    rate = float(np.mean(synthetic.splits["train"]["label"]))
    label = synthetic.splits["test"]["label"]
    constant = -float(np.mean(label * np.log(rate) + (1 - label) * np.log(1 - rate)))
    assert test["logloss"] < constant - 0.02, (test["logloss"], constant)
    assert test["wauc"] > 0.65 and min(test["domain_auc"].values()) > 0.57, test
