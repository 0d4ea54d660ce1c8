"""The MDMT baselines of M3oE's Table 2 (`mlora_tf.models.mdmt`) and PLE's `CGCGates`."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers import CGCGates
from mlora_tf.models import (
    DataSpec,
    MultiTaskModelConfig,
    build_multitask_model,
    get_multitask_model,
    list_multitask_models,
)

ML1M_VOCAB = {"uid": 6040, "pid": 3706, "gender": 2, "occupation": 21, "zip": 3439,
              "cate_id": 18, "domain": 3}
TINY_VOCAB = {"uid": 20, "pid": 15, "gender": 2, "occupation": 5, "zip": 7, "cate_id": 4, "domain": 3}
TASKS = ("click", "like")
D, T = 3, 2
BASELINES = ("mlp", "shared_bottom", "mmoe", "ple", "star", "mlora_sb")
FUSION_BASELINES = ("adatt", "adatt_sp", "m2m")  # mlora_tf.models.mdmt_fusion


@pytest.fixture(autouse=True)
def _seeded():
    """The layers' initializers are unseeded: fix Keras's global seed per test."""
    keras.utils.set_random_seed(1234)


def _spec(vocab=TINY_VOCAB):
    return DataSpec(vocab, D, TASKS, ("age",))


def _config(name, **overrides):
    base = dict(name=name, embedding_dim=4, star_units=16, hidden_units=8, expert_units=4, tower_units=4,
                num_shared_experts=2, embedding_stddev=0.5)
    base.update(overrides)
    return MultiTaskModelConfig(**base)


def _build(name, **overrides):
    return build_multitask_model(_config(name, **overrides), _spec())


def _batch(rng, n, domain=None):
    x = {f: rng.integers(0, v, n).astype("int64") for f, v in TINY_VOCAB.items()}
    if domain is not None:
        x["domain"] = np.asarray(domain, dtype="int64")
    x["age"] = rng.random(n).astype("float32")
    return x


def _predict(model, x):
    return {k: np.asarray(v) for k, v in model(x, training=False).items()}


def _randomise(model, rng, scale=0.5):
    """Moves every weight away from its start (zero LoRA `B`, near-zero embeddings)."""
    for v in model.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32") * scale)


def _n_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


def test_registry_lists_m3oe_and_the_six_baselines():
    specs = {s.name: s for s in list_multitask_models()}
    assert set(specs) == {"m3oe", *BASELINES, *FUSION_BASELINES}  # the latter: test_mdmt_fusion.py
    specs = {n: specs[n] for n in ("m3oe", *BASELINES)}
    assert {n: specs[n].paper_name for n in specs} == {
        "m3oe": "M3oE", "mlp": "MLP", "shared_bottom": "ShBot-MDMT", "mmoe": "MMoE-MDMT",
        "ple": "PLE-MDMT", "star": "STAR", "mlora_sb": None,
    }
    assert [n for n in specs if specs[n].ours] == ["mlora_sb"]
    assert "ours: MLoRA adapters on a Shared-Bottom MDMT network" in specs["mlora_sb"].description
    assert [n for n in specs if specs[n].ablations] == ["m3oe"]


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("flag", [dict(fully_gated=True), dict(domain_experts=False), dict(fusion="fixed")])
def test_baselines_refuse_m3oe_ablation_flags(name, flag):
    with pytest.raises(ValueError, match=r"ablations of M3oE; model '.*' has no such part"):
        build_multitask_model(_config(name, **flag), _spec())


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ValueError, match="Valid models: adatt, adatt_sp, m2m, m3oe, mlora_sb, mlp, mmoe, ple, shared_bottom, star"):
        get_multitask_model("mmoe_mdmt")


# --------------------------------------------------------------------------- #
# Every baseline: outputs, sizes, per-row routing, gradients, saving
# --------------------------------------------------------------------------- #

_TOWER = 64 * 64 + 64 + 2 * 64 + 64 + 1  # Linear(64->64), LN, Linear(64->1): 4,353 (m3oe.md §2.1 row 11)


def _tower(units):
    return units * 64 + 64 + 2 * 64 + 64 + 1


def _ln_mlp(fan_in, units):
    return fan_in * units + units + 2 * units


# Trainable parameters at M3oE's sizes on ML-1M (N = 4, one specific expert, lora_reduce 4),
# embeddings excluded (211,664 per embedding set, m3oe.md §2.1 row 1).
EXPECTED_PARAMS = {
    "mlp": 6 * (211_664 + _ln_mlp(113, 256) + _ln_mlp(256, 64) + _TOWER),
    "shared_bottom": 211_664 + _ln_mlp(113, 512) + _ln_mlp(512, 256) + 6 * _tower(256),
    "mmoe": 211_664 + 4 * _ln_mlp(113, 256) + 6 * (113 * 4 + 4) + 6 * _tower(256),
    "ple": 211_664 + (4 + 6) * _ln_mlp(113, 256) + 6 * (113 * 5 + 5) + 6 * _tower(256),
    "star": 211_664 + 4 * (113 * 512 + 512) + 4 * (512 * 256 + 256) + 6 * _tower(256),
    "mlora_sb": 211_664
    + (113 * 512 + 512) + (512 * 256 + 256)  # shared kernels and biases
    + (113 * 3 * 128 + 3 * 128 * 512 + 3 * 512)  # rank 512 // 4 = 128, three domains
    + (512 * 3 * 64 + 3 * 64 * 256 + 3 * 256)  # rank 256 // 4 = 64
    + 2 * _tower(256),  # one tower per task
}


@pytest.mark.parametrize("name", BASELINES)
def test_parameter_count_at_m3oe_sizes(name):
    model = build_multitask_model(MultiTaskModelConfig(name=name), _spec(ML1M_VOCAB))
    assert _n_params(model) == EXPECTED_PARAMS[name]
    assert not model.non_trainable_variables


@pytest.mark.parametrize("name", BASELINES)
def test_outputs_are_per_task_probabilities_of_the_logits(name):
    model = _build(name)
    assert model.name == name
    assert sorted(model.input) == sorted(list(TINY_VOCAB) + ["age"])
    out = _predict(model, _batch(np.random.default_rng(0), 5))
    assert sorted(out) == ["click", "click_logit", "like", "like_logit"]
    for task in TASKS:
        assert out[task].shape == (5,) and out[f"{task}_logit"].shape == (5,)
        np.testing.assert_allclose(out[task], 1 / (1 + np.exp(-out[f"{task}_logit"])), rtol=1e-5)
    assert not np.allclose(out["click_logit"], out["like_logit"])  # two tasks, two heads


@pytest.mark.parametrize("name", BASELINES)
def test_mixed_domain_batch_is_exact_per_row(name):
    rng = np.random.default_rng(1)
    model = _build(name)
    _randomise(model, rng)
    domain = np.array([0, 2, 1, 1, 0, 2, 2, 0, 1])
    x = _batch(rng, len(domain), domain)
    mixed = _predict(model, x)
    for d in range(D):
        rows = np.flatnonzero(domain == d)
        alone = _predict(model, {k: v[rows] for k, v in x.items()})
        for key in mixed:
            np.testing.assert_allclose(mixed[key][rows], alone[key], rtol=1e-5, atol=1e-5)
        single = _predict(model, {k: v[rows[:1]] for k, v in x.items()})
        np.testing.assert_allclose(mixed["like_logit"][rows[:1]], single["like_logit"], rtol=1e-5, atol=1e-5)
    # A permutation of the batch permutes the outputs.
    order = rng.permutation(len(domain))
    permuted = _predict(model, {k: v[order] for k, v in x.items()})
    np.testing.assert_allclose(permuted["click_logit"], mixed["click_logit"][order], rtol=1e-5, atol=1e-5)
    # The domain id routes: the same features under another domain score differently.
    moved = _predict(model, dict(x, domain=(domain + 1) % D))
    assert not np.allclose(moved["click_logit"], mixed["click_logit"], atol=1e-3)


@pytest.mark.parametrize("name", BASELINES)
def test_every_weight_gets_a_gradient(name):
    import tensorflow as tf

    rng = np.random.default_rng(2)
    model = _build(name)
    x = _batch(rng, 12, np.arange(12) % D)
    y = rng.integers(0, 2, (12, T)).astype("float32")
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        logits = tf.stack([out[f"{t}_logit"] for t in TASKS], axis=-1)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not missing
    assert all(np.isfinite(np.asarray(tf.convert_to_tensor(g))).all() for g in grads)


@pytest.mark.parametrize("name", BASELINES)
def test_save_and_reload_without_custom_objects(name, tmp_path):
    rng = np.random.default_rng(3)
    model = _build(name)
    _randomise(model, rng)
    x = _batch(rng, 7, [0, 1, 2, 0, 1, 2, 2])
    path = str(tmp_path / f"{name}.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
    reloaded = keras.saving.load_model(path)
    expected, actual = _predict(model, x), _predict(reloaded, x)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6)
    assert _n_params(reloaded) == _n_params(model)


# --------------------------------------------------------------------------- #
# Model-specific structure
# --------------------------------------------------------------------------- #


def _objective_weights(model, task, d):
    """Objective (d, task)'s own variables: embeddings and bottom, by layer name."""
    prefix = f"{task}_d{d}_"
    return [v for layer in model.layers if layer.name.startswith(prefix) for v in layer.weights]


@pytest.mark.parametrize("t, d", [(0, 0), (1, 2)])
def test_mlp_objectives_are_independent(t, d):
    rng = np.random.default_rng(4)
    model = _build("mlp")
    _randomise(model, rng)
    domain = np.array([0, 1, 2, 2, 1, 0, 0, 2])
    x = _batch(rng, len(domain), domain)
    before = _predict(model, x)
    own = _objective_weights(model, TASKS[t], d)
    # 7 embedding tables and two LNDense blocks (kernel, bias, gamma, beta each).
    assert len(own) == 7 + 2 * 4
    assert len(_objective_weights(model, TASKS[1 - t], d)) == len(own)
    for v in own:
        v.assign(np.asarray(v) + rng.normal(size=v.shape).astype("float32"))
    towers = model.get_layer("towers")
    k = t * D + d
    for v in towers.weights:  # the tower slot of objective k only
        value = np.asarray(v).copy()
        value[k] += rng.normal(size=value[k].shape).astype("float32")
        v.assign(value)
    after = _predict(model, x)
    for tt, task in enumerate(TASKS):
        for dd in range(D):
            rows = domain == dd
            a, b = after[f"{task}_logit"][rows], before[f"{task}_logit"][rows]
            if (tt, dd) == (t, d):
                assert np.all(np.abs(a - b) > 1e-4)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_mlp_changing_only_the_tower_of_another_objective_leaves_this_one():
    model = _build("mlp")
    rng = np.random.default_rng(5)
    x = _batch(rng, 6, [0, 0, 1, 1, 2, 2])
    before = _predict(model, x)
    towers = model.get_layer("towers")
    bias = np.asarray(towers.output_bias).copy()
    bias[1 * D + 1] += 3.0  # objective (d1, like)
    towers.output_bias.assign(bias)
    after = _predict(model, x)
    np.testing.assert_allclose(after["like_logit"][2:4], before["like_logit"][2:4] + 3.0, rtol=1e-5)
    np.testing.assert_array_equal(after["click_logit"], before["click_logit"])
    np.testing.assert_array_equal(after["like_logit"][[0, 1, 4, 5]], before["like_logit"][[0, 1, 4, 5]])


@pytest.mark.parametrize("name, layer", [("shared_bottom", "bottom_0"), ("star", "star_fcn_0"),
                                         ("mlora_sb", "mlora_bottom")])
def test_the_bottom_is_shared_by_every_objective(name, layer):
    rng = np.random.default_rng(6)
    model = _build(name)  # initial weights: no ReLU of the narrow bottom is dead
    domain = np.array([0, 1, 2, 0, 1, 2])
    x = _batch(rng, len(domain), domain)
    before = _predict(model, x)
    kernel = model.get_layer(layer).weights[0]  # the shared kernel
    assert "domain" not in kernel.path and "adapter" not in kernel.path
    kernel.assign(np.asarray(kernel) * 1.5 + 0.1)
    after = _predict(model, x)
    for task in TASKS:  # every task on every row moves
        assert np.all(np.abs(after[f"{task}_logit"] - before[f"{task}_logit"]) > 1e-5)


def test_shared_bottom_sizes_and_one_bottom():
    model = _build("shared_bottom")
    assert model.get_layer("bottom_0").output.shape == (None, 16)
    assert model.get_layer("bottom_1").output.shape == (None, 8)
    assert model.get_layer("objective_inputs").output.shape == (None, T, D, 8)
    assert model.get_layer("towers").hidden_kernel.shape == (T * D, 8, 4)


@pytest.mark.parametrize("name", ["star", "mlora_sb"])
def test_domain_parameters_touch_only_their_domain(name):
    rng = np.random.default_rng(7)
    model = _build(name)
    _randomise(model, rng)
    domain = np.array([0, 1, 2, 1, 0, 2])
    x = _batch(rng, len(domain), domain)
    before = _predict(model, x)
    if name == "star":
        layer = model.get_layer("star_fcn_1")
        value = np.asarray(layer.domain_kernel).copy()
        value[1] += 1.0
        layer.domain_kernel.assign(value)
    else:
        adapter = model.get_layer("mlora_bottom").adapter_layers[0]
        value = np.asarray(adapter.adapter_bias).copy()
        value[1] += 1.0
        adapter.adapter_bias.assign(value)
    after = _predict(model, x)
    for task in TASKS:
        key = f"{task}_logit"
        assert np.all(np.abs(after[key][domain == 1] - before[key][domain == 1]) > 1e-5)
        np.testing.assert_allclose(after[key][domain != 1], before[key][domain != 1], rtol=1e-6, atol=1e-6)


def test_mlora_sb_starts_as_its_shared_bottom_and_has_one_tower_per_task():
    model = _build("mlora_sb")
    bottom = model.get_layer("mlora_bottom")
    assert bottom.mode == "mlora" and bottom.hidden_units == (16, 8)
    assert bottom.ranks == (4, 2)  # max(units // lora_reduce, 1), lora_reduce 4
    assert _build("mlora_sb", lora_reduce=16.0).get_layer("mlora_bottom").ranks == (1, 1)
    assert model.get_layer("towers").hidden_kernel.shape == (T, 8, 4)
    # B and the adapter biases start at zero: every domain starts with the same bottom,
    # so a row's outputs do not depend on its domain id beyond its embedding.
    rng = np.random.default_rng(8)
    x = _batch(rng, 4, [0, 1, 2, 0])
    bottom.set_mixture("zeros")
    backbone_only = _predict(model, x)
    bottom.set_mixture("domain")
    np.testing.assert_allclose(_predict(model, x)["click_logit"], backbone_only["click_logit"], rtol=1e-6)


def test_mmoe_and_ple_gates_and_expert_sizes():
    mmoe = _build("mmoe")
    assert mmoe.get_layer("experts").output.shape == (None, 2, 8)
    gates = mmoe.get_layer("gates")
    assert gates.stop_gradient is False and gates.kernel.shape == (T * D, 7 * 4 + 1, 2)
    ple = _build("ple", specific_experts=2)
    assert ple.get_layer("shared_experts").output.shape == (None, 2, 8)
    assert ple.get_layer("specific_experts").output.shape == (None, T * D * 2, 8)
    gates = ple.get_layer("gates")
    assert isinstance(gates, CGCGates) and gates.kernel.shape == (T * D, 29, 2 + 2)


# --------------------------------------------------------------------------- #
# CGCGates
# --------------------------------------------------------------------------- #


def _np_cgc(layer, h, shared, specific):
    kernel, bias = (np.asarray(w) for w in (layer.kernel, layer.bias))
    n, k_total = shared.shape[1], layer.n_tasks * layer.n_domains
    s = specific.shape[1] // k_total
    out = np.zeros((h.shape[0], layer.n_tasks, layer.n_domains, shared.shape[2]))
    for b in range(h.shape[0]):
        for t in range(layer.n_tasks):
            for d in range(layer.n_domains):
                k = t * layer.n_domains + d
                logits = h[b] @ kernel[k] + bias[k]
                g = np.exp(logits - logits.max())
                g /= g.sum()
                out[b, t, d] = g[:n] @ shared[b] + g[n:] @ specific[b, k * s : (k + 1) * s]
    return out


@pytest.mark.parametrize("specific_experts", [1, 3])
def test_cgc_gates_match_numpy(specific_experts, tmp_path):
    rng = np.random.default_rng(9)
    h = rng.normal(size=(4, 5)).astype("float32")
    shared = rng.normal(size=(4, 2, 3)).astype("float32")
    specific = rng.normal(size=(4, T * D * specific_experts, 3)).astype("float32")
    layer = CGCGates(n_domains=D, n_tasks=T)
    out = np.asarray(layer([h, shared, specific]))
    assert out.shape == (4, T, D, 3)
    assert layer.kernel.shape == (T * D, 5, 2 + specific_experts)
    assert layer.specific_experts == specific_experts and layer.num_shared == 2
    limit = 1 / np.sqrt(5)  # torch's Linear default
    assert np.abs(np.asarray(layer.kernel)).max() <= limit and np.abs(np.asarray(layer.bias)).max() <= limit
    np.testing.assert_allclose(out, _np_cgc(layer, h, shared, specific), rtol=1e-5, atol=1e-5)
    weights = np.asarray(layer.gate_weights(h))
    assert weights.shape == (4, T, D, 2 + specific_experts)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    run_layer_checks(layer, [h, shared, specific], tmp_path)


def test_cgc_gates_own_experts_only():
    """Objective k's output ignores every other objective's specific experts."""
    rng = np.random.default_rng(10)
    h = rng.normal(size=(3, 4)).astype("float32")
    shared = rng.normal(size=(3, 2, 5)).astype("float32")
    specific = rng.normal(size=(3, T * D, 5)).astype("float32")
    layer = CGCGates(D, T)
    before = np.asarray(layer([h, shared, specific]))
    changed = specific.copy()
    changed[:, 4] += 10.0  # objective k = 4: task 1, domain 1
    after = np.asarray(layer([h, shared, changed]))
    assert np.all(np.abs(after[:, 1, 1] - before[:, 1, 1]) > 1e-3)
    mask = np.ones((T, D), bool)
    mask[1, 1] = False
    np.testing.assert_array_equal(after[:, mask], before[:, mask])


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_cgc_gates_stop_gradient(stop_gradient):
    import tensorflow as tf

    rng = np.random.default_rng(11)
    h = tf.constant(rng.normal(size=(2, 3)).astype("float32"))
    shared = rng.normal(size=(2, 2, 4)).astype("float32")
    specific = rng.normal(size=(2, T * D, 4)).astype("float32")
    layer = CGCGates(D, T, stop_gradient=stop_gradient)
    with tf.GradientTape() as tape:
        tape.watch(h)
        out = layer([h, shared, specific])
    grad = tape.gradient(out, h)
    assert (grad is None or not np.any(np.asarray(grad))) == stop_gradient
    assert layer.get_config()["stop_gradient"] is stop_gradient


def test_cgc_gates_refusals():
    with pytest.raises(ValueError, match="Received: n_domains=0"):
        CGCGates(0, 2)
    with pytest.raises(ValueError, match="Received: stop_gradient=1"):
        CGCGates(3, 2, stop_gradient=1)
    with pytest.raises(ValueError, match="positive multiple of n_tasks \\* n_domains = 6"):
        CGCGates(3, 2).build([(None, 4), (None, 2, 5), (None, 7, 5)])
    with pytest.raises(ValueError, match="same width"):
        CGCGates(3, 2).build([(None, 4), (None, 2, 5), (None, 6, 4)])
    with pytest.raises(ValueError, match="expects `\\[h, shared, specific\\]`"):
        CGCGates(3, 2).build([(None, 4), (None, 2, 5)])
