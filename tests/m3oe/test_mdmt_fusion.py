"""AdaTT, AdaTT-sp and M2M (`mlora_tf.models.mdmt_fusion`) and their layers:
`AdaTTFusion`, `GroupedExpertBank`, `MetaUnit`, `MetaAttention`."""

from __future__ import annotations

import dataclasses
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import run_layer_checks
from mlora_tf.layers import AdaTTFusion, GroupedExpertBank, MetaAttention, MetaUnit
from mlora_tf.models import (
    DataSpec,
    MultiTaskModelConfig,
    build_multitask_model,
    get_multitask_model,
)

ML1M_VOCAB = {"uid": 6040, "pid": 3706, "gender": 2, "occupation": 21, "zip": 3439,
              "cate_id": 18, "domain": 3}
TINY_VOCAB = {"uid": 20, "pid": 15, "gender": 2, "occupation": 5, "zip": 7, "cate_id": 4, "domain": 3}
TASKS = ("click", "like")
D, T = 3, 2
K = T * D
NAMES = ("adatt", "adatt_sp", "m2m")
TINY = dict(star_units=16, hidden_units=8, expert_units=4, tower_units=4, embedding_dim=4)


@pytest.fixture(autouse=True)
def _seeded():
    """The layers' initializers are unseeded: fix Keras's global seed per test."""
    keras.utils.set_random_seed(1234)


def _spec(vocab=TINY_VOCAB):
    return DataSpec(vocab, D, TASKS, ("age",))


def _config(name, **overrides):
    base = dict(name=name, **TINY, num_shared_experts=2, embedding_stddev=0.5)
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
    for v in model.trainable_variables:
        v.assign(rng.normal(size=v.shape).astype("float32") * scale)


def _n_params(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def _np_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _relu(x):
    return np.maximum(x, 0.0)


def _set(layer, **values):
    for name, value in values.items():
        getattr(layer, name).assign(np.asarray(value, dtype="float32"))


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


def test_registered_with_their_paper_rows():
    specs = {n: get_multitask_model(n) for n in NAMES}
    assert {n: s.paper_name for n, s in specs.items()} == {"adatt": "AdaTT", "adatt_sp": "AdaTT-sp", "m2m": "M2M"}
    assert not any(s.ours or s.ablations for s in specs.values())
    assert all(s.kind == "multi_task" and s.adapters == () for s in specs.values())
    assert "task-specific experts and fusion units only" in specs["adatt_sp"].description
    assert "generated from the domain embedding" in specs["m2m"].description


@pytest.mark.parametrize("name", NAMES)
def test_refuse_m3oe_ablation_flags(name):
    with pytest.raises(ValueError, match=r"ablations of M3oE; model '.*' has no such part"):
        build_multitask_model(_config(name, fully_gated=True), _spec())


# --------------------------------------------------------------------------- #
# Sizes at M3oE's widths (ML-1M vocabularies, N = 4, one expert per objective)
# --------------------------------------------------------------------------- #

_EMBEDDINGS = 211_664  # 7 tables of 16 (m3oe.md §2.1 row 1)
_TOWERS = 6 * (64 * 64 + 64 + 2 * 64 + 64 + 1)  # six M3oE towers on 64-wide inputs


def _ln_mlp(fan_in, units):
    return fan_in * units + units + 2 * units


def _meta(fan_in, units, dz=16):
    return dz * fan_in * units + fan_in * units + dz * units + units


EXPECTED_PARAMS = {
    # level 1: 6 + 4 experts 113 -> 256, 7 units' gates over 10; level 2: 6 + 4 experts 256 -> 64,
    # 6 units' gates over 10; native weights 6 per level.
    "adatt": _EMBEDDINGS + 10 * _ln_mlp(113, 256) + 7 * (113 * 10 + 10) + 6
    + 10 * _ln_mlp(256, 64) + 6 * (256 * 10 + 10) + 6 + _TOWERS,
    "adatt_sp": _EMBEDDINGS + 6 * _ln_mlp(113, 256) + 6 * (113 * 6 + 6) + 6
    + 6 * _ln_mlp(256, 64) + 6 * (256 * 6 + 6) + 6 + _TOWERS,
    # experts 113 -> 256 -> 64; task embeddings 2 x 16 and their Linear(16 -> 64); meta attention
    # MetaUnit(128 -> 16) and its score vector; per task two MetaUnit(64 -> 64) and Linear(64 -> 1).
    "m2m": _EMBEDDINGS + 4 * (_ln_mlp(113, 256) + _ln_mlp(256, 64)) + 2 * 16 + 16 * 64 + 64
    + _meta(128, 16) + 16 + 2 * (2 * _meta(64, 64) + 65),
}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_at_m3oe_sizes(name):
    model = build_multitask_model(MultiTaskModelConfig(name=name), _spec(ML1M_VOCAB))
    assert _n_params(model) == EXPECTED_PARAMS[name]
    assert not model.non_trainable_variables


def test_adatt_levels_units_and_experts():
    for name, n_shared in (("adatt", 2), ("adatt_sp", 0)):
        model = _build(name, specific_experts=2)
        first, last = model.get_layer("level_0_fusion"), model.get_layer("level_1_fusion")
        assert first.shared_unit is (n_shared > 0) and last.shared_unit is False
        assert first.n_tasks == last.n_tasks == K and first.native_experts == 2
        assert first.num_shared == last.num_shared == n_shared
        assert first.gate_kernel.shape == (K + (n_shared > 0), 7 * 4 + 1, 2 * K + n_shared)
        assert last.gate_kernel.shape == (K, 8, 2 * K + n_shared)
        assert model.get_layer("level_0_task_experts").output.shape == (None, 2 * K, 8)
        assert model.get_layer("level_1_task_experts").output.shape == (None, 2 * K, 4)
        assert model.get_layer("objective_outputs").output.shape == (None, T, D, 4)
        shared_layers = [layer.name for layer in model.layers if "shared" in layer.name]
        assert shared_layers == ([] if not n_shared else ["level_0_shared_experts", "level_1_shared_experts"])


def test_m2m_reads_the_domain_embedding_as_its_scenario():
    model = _build("m2m")
    assert model.get_layer("meta_attention").meta_unit.scenario_kernel.shape == (4, 2 * 4, 16)
    for task in TASKS:
        for layer in range(2):
            assert model.get_layer(f"{task}_meta_tower_{layer}").scenario_kernel.shape == (4, 4, 4)
    x = _batch(np.random.default_rng(0), 6, [0, 1, 2, 2, 1, 0])
    z = keras.Model(model.inputs, model.get_layer("meta_attention").input[1])(x)
    table = np.asarray(model.get_layer("domain_embedding").embeddings)
    np.testing.assert_array_equal(np.asarray(z), table[x["domain"]])


# --------------------------------------------------------------------------- #
# Every model: outputs, per-row routing, gradients, saving
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_per_task_probabilities_of_the_logits(name):
    model = _build(name)
    assert model.name == name
    assert sorted(model.input) == sorted(list(TINY_VOCAB) + ["age"])
    out = _predict(model, _batch(np.random.default_rng(0), 5))
    assert sorted(out) == ["click", "click_logit", "like", "like_logit"]
    for task in TASKS:
        assert out[task].shape == (5,) and out[f"{task}_logit"].shape == (5,)
        np.testing.assert_allclose(out[task], 1 / (1 + np.exp(-out[f"{task}_logit"])), rtol=1e-5)
    assert not np.allclose(out["click_logit"], out["like_logit"])


@pytest.mark.parametrize("name", NAMES)
def test_one_task_or_one_domain(name):
    """M3oE's -MDL (one task) and -MTL (one domain) settings."""
    rng = np.random.default_rng(4)
    one_task = build_multitask_model(_config(name), DataSpec(TINY_VOCAB, D, ("like",), ("age",)))
    out = _predict(one_task, _batch(rng, 4))
    assert sorted(out) == ["like", "like_logit"] and out["like"].shape == (4,)
    one_domain = build_multitask_model(_config(name), DataSpec(dict(TINY_VOCAB, domain=1), 1, TASKS, ("age",)))
    out = _predict(one_domain, _batch(rng, 4, [0, 0, 0, 0]))
    assert out["click"].shape == (4,) and np.isfinite(out["like_logit"]).all()


@pytest.mark.parametrize("name", NAMES)
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
    order = rng.permutation(len(domain))
    permuted = _predict(model, {k: v[order] for k, v in x.items()})
    np.testing.assert_allclose(permuted["click_logit"], mixed["click_logit"][order], rtol=1e-5, atol=1e-5)
    moved = _predict(model, dict(x, domain=(domain + 1) % D))
    assert not np.allclose(moved["click_logit"], mixed["click_logit"], atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_domain_parameters_touch_only_their_domain(name):
    """AdaTT: objective (d1, t)'s tower; M2M: domain 1's embedding, i.e. its scenario
    representation and so every weight its meta units generate."""
    rng = np.random.default_rng(7)
    model = _build(name)
    _randomise(model, rng)
    domain = np.array([0, 1, 2, 1, 0, 2])
    x = _batch(rng, len(domain), domain)
    before = _predict(model, x)
    if name == "m2m":
        table = model.get_layer("domain_embedding").embeddings
        value = np.asarray(table).copy()
        value[1] += 1.0
        table.assign(value)
    else:
        towers = model.get_layer("towers")
        value = np.asarray(towers.output_bias).copy()
        value[[0 * D + 1, 1 * D + 1]] += 1.0  # objectives (d1, click) and (d1, like)
        towers.output_bias.assign(value)
    after = _predict(model, x)
    for task in TASKS:
        key = f"{task}_logit"
        assert np.all(np.abs(after[key][domain == 1] - before[key][domain == 1]) > 1e-5)
        np.testing.assert_allclose(after[key][domain != 1], before[key][domain != 1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_weight_gets_a_gradient(name):
    rng = np.random.default_rng(2)
    model = _build(name)
    x = _batch(rng, 12, np.arange(12) % D)
    y = rng.integers(0, 2, (12, T)).astype("float32")
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        logits = tf.stack([out[f"{t}_logit"] for t in TASKS], axis=-1)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
    grads = tape.gradient(loss, model.trainable_variables)
    assert not [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
    assert all(np.isfinite(np.asarray(tf.convert_to_tensor(g))).all() for g in grads)


@pytest.mark.parametrize("name", NAMES)
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
    assert [v.path for v in reloaded.weights] == [v.path for v in model.weights]


# --------------------------------------------------------------------------- #
# Training: one step through the multi-task trainer; better than a constant
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def small_data():
    from mlora_tf.data.registry import load_dataset

    return load_dataset("synthetic-mt", n_rows=3000, n_users=200, n_items=100)


@pytest.mark.parametrize("name", NAMES)
def test_one_step_of_the_multitask_trainer_moves_every_weight(name, small_data):
    from mlora_tf.config import MultiTaskTrainConfig
    from mlora_tf.training.multitask import MultiTaskTrainer

    keras.utils.set_random_seed(5)
    model = build_multitask_model(MultiTaskModelConfig(name=name, **TINY), DataSpec.from_dataset(small_data))
    rows = small_data.num_rows("train")
    trainer = MultiTaskTrainer(model, small_data, MultiTaskTrainConfig(batch_size=rows, max_epochs=1, seed=5))
    assert trainer.fusion_variables == [] and trainer._fusion_step is None and trainer.pair_loss
    before = [np.asarray(v).copy() for v in model.trainable_variables]
    loss, n = trainer.train_epoch()  # one batch: the whole training split
    assert n == rows and np.isfinite(loss) and loss > 0
    unchanged = [v.path for v, b in zip(model.trainable_variables, before) if np.array_equal(np.asarray(v), b)]
    assert not unchanged


@pytest.fixture(scope="module")
def synthetic():
    from mlora_tf.data.registry import load_dataset

    return load_dataset("synthetic-mt", n_rows=16000, n_users=400, n_items=200)


@pytest.mark.parametrize("name", NAMES)
def test_beats_a_constant_predictor_on_synthetic_data(name, synthetic):
    from mlora_tf.config import MultiTaskTrainConfig
    from mlora_tf.training.multitask import MultiTaskTrainer

    keras.utils.set_random_seed(0)
    config = MultiTaskModelConfig(name=name, hidden_units=32, expert_units=16, tower_units=16, embedding_dim=8)
    model = build_multitask_model(config, DataSpec.from_dataset(synthetic))
    trainer = MultiTaskTrainer(
        model, synthetic, MultiTaskTrainConfig(batch_size=512, max_epochs=4, patience=4, seed=0)
    )
    trainer.fit()
    test = trainer.evaluate("test")
    # The constant predictor: each task's training rate on every row (AUC 0.5).
    train, rows = synthetic.splits["train"], synthetic.splits["test"]
    constant = []
    for d in range(D):
        for task in TASKS:
            rate = float(np.mean(train[task]))
            y = np.asarray(rows[task])[np.asarray(rows["domain"]) == d]
            constant.append(-float(np.mean(y * np.log(rate) + (1 - y) * np.log(1 - rate))))
    assert test["overall_logloss"] < np.mean(constant) - 0.01, (test["overall_logloss"], np.mean(constant))
    aucs = [v for row in test["auc"] for v in row]
    assert test["overall_auc"] > 0.7 and min(aucs) > 0.62, test["auc"]


# --------------------------------------------------------------------------- #
# Export: the TF Serving signature equals the Keras model
# --------------------------------------------------------------------------- #

SPARSE = ("uid", "pid", "domain", "gender", "occupation", "zip", "cate_id")
OUTPUTS = ("click", "click_logit", "like", "like_logit")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_data):
    """Each model trained one epoch by `train_multitask_run` (a run folder), then
    exported with `export_run`."""
    from mlora_tf.config import MultiTaskRunConfig, MultiTaskTrainConfig
    from mlora_tf.export import export_run
    from mlora_tf.runs.multitask import train_multitask_run

    root = tmp_path_factory.mktemp("fusion_export")
    out = {}
    for name in NAMES:
        config = MultiTaskRunConfig()
        config.data.options.update({"n_rows": 3000, "n_users": 200, "n_items": 100})
        config.train = MultiTaskTrainConfig(batch_size=512, max_epochs=1)
        config.model = dataclasses.replace(config.model, name=name, **TINY)
        run, export = str(root / "runs" / name), str(root / "export" / name / "1")
        train_multitask_run(config, output_dir=run, dataset=small_data)
        export_run(run, export)
        out[name] = (run, export)
    return out


def _feed(dataset, n=120, seed=0):
    train = dataset.splits["train"]
    idx = np.random.default_rng(seed).permutation(train["uid"].size)[:n]
    feed = {f: np.asarray(train[f][idx], np.int64) for f in SPARSE}
    feed["age"] = np.asarray(train["age"][idx], np.float32)
    return feed


def _tensors(feed):
    return {f: tf.constant(v) for f, v in feed.items()}


@pytest.mark.parametrize("name", NAMES)
def test_export_serves_what_the_keras_model_predicts(name, exported, small_data):
    from mlora_tf.export import RunFolder, feature_tables, load_export

    run, export = exported[name]
    signature, metadata = load_export(export)
    assert metadata["kind"] == "multitask" and metadata["model"] == name
    assert metadata["tasks"] == list(TASKS) and metadata["outputs"] == list(OUTPUTS)
    model = RunFolder.open(run).load_model()
    feed = _feed(small_data)
    assert set(feed["domain"].tolist()) == {0, 1, 2}
    served = {k: v.numpy() for k, v in signature(**_tensors(feed)).items()}
    python = {k: v.numpy() for k, v in model(_tensors(feed), training=False).items()}
    for key in OUTPUTS:
        assert served[key].shape == (len(feed["uid"]),) and served[key].dtype == np.float32
        np.testing.assert_allclose(served[key], python[key], rtol=0, atol=1e-6, err_msg=key)
    for i in np.concatenate([np.flatnonzero(feed["domain"] == d)[:2] for d in range(D)]):
        alone = signature(**_tensors({f: v[i : i + 1] for f, v in feed.items()}))
        for key in OUTPUTS:
            np.testing.assert_allclose(alone[key].numpy(), python[key][i : i + 1], rtol=0, atol=1e-6)
    # An unseen uid is served with the mean of the training ids' rows.
    vocab = RunFolder.open(run).vocabulary
    train_ids, seen = vocab.train_ids["uid"], int(vocab.train_ids["uid"][0])
    (table,) = feature_tables(model)["uid"]
    values = table.numpy()
    values[seen] = values[train_ids].astype(np.float64).mean(axis=0).astype(np.float32)
    table.assign(values)
    expected = model(_tensors({**feed, "uid": np.full(len(feed["uid"]), seen)}), training=False)
    unseen = signature(**_tensors({**feed, "uid": np.full(len(feed["uid"]), 10**9)}))
    for key in OUTPUTS:
        np.testing.assert_allclose(unseen[key].numpy(), expected[key].numpy(), rtol=0, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`domain` ids must be in \[0, 3\)"):
        signature(**_tensors({**{f: v[:2] for f, v in feed.items()}, "domain": np.array([0, 3])}))


# --------------------------------------------------------------------------- #
# AdaTTFusion
# --------------------------------------------------------------------------- #


def test_adatt_fusion_worked_example():
    """Two tasks with one native expert each, one shared expert, the shared unit.

    x = [1]; E0 = [1, 0], E1 = [0, 1], shared E2 = [2, 2]; gate logits x W + c:
    task 0 [ln 2, 0, 0] -> (1/2, 1/4, 1/4); task 1 zeros -> (1/3, 1/3, 1/3); shared
    unit [0, 0, ln 2] -> (1/4, 1/4, 1/2); native weights v = (2, 0.5).
      task 0: 1/2 E0 + 1/4 E1 + 1/4 E2 + 2 E0    = [1, .75] + [2, 0]   = [3, .75]
      task 1: (E0 + E1 + E2) / 3 + .5 E1          = [1, 1] + [0, .5]    = [1, 1.5]
      shared: 1/4 E0 + 1/4 E1 + 1/2 E2 (no residual)                   = [1.25, 1.25]
    """
    layer = AdaTTFusion(n_tasks=2, shared_unit=True)
    x = np.array([[1.0]], "float32")
    experts = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]], "float32")
    layer([x, experts])
    ln2 = math.log(2.0)
    _set(layer, gate_kernel=[[[ln2, 0, 0]], [[0, 0, 0]], [[0, 0, ln2]]], gate_bias=np.zeros((3, 3)),
         native_weights=[[2.0], [0.5]])
    np.testing.assert_allclose(
        np.asarray(layer([x, experts])), [[[3.0, 0.75], [1.0, 1.5], [1.25, 1.25]]], rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(layer.gate_weights(x))[0], [[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.25, 0.25, 0.5]],
        rtol=1e-6,
    )


def _np_adatt(layer, unit_inputs, experts):
    kernel, bias, v = (np.asarray(w, np.float64) for w in (layer.gate_kernel, layer.gate_bias, layer.native_weights))
    batch, m = experts.shape[0], layer.native_experts
    out = np.zeros((batch, layer.n_units, experts.shape[-1]))
    for b in range(batch):
        for u in range(layer.n_units):
            f = unit_inputs[b] if unit_inputs.ndim == 2 else unit_inputs[b, u]
            out[b, u] = _np_softmax(f @ kernel[u] + bias[u]) @ experts[b]
            if u < layer.n_tasks:
                out[b, u] += v[u] @ experts[b, u * m : (u + 1) * m]
    return out


@pytest.mark.parametrize("native, n_shared, shared_unit, per_unit", [
    (1, 0, False, False), (2, 3, True, True), (2, 3, False, True), (1, 2, True, False),
])
def test_adatt_fusion_matches_numpy(native, n_shared, shared_unit, per_unit, tmp_path):
    rng = np.random.default_rng(11)
    layer = AdaTTFusion(n_tasks=K, native_experts=native, shared_unit=shared_unit)
    n_units = K + shared_unit
    unit_inputs = rng.normal(size=(4, n_units, 5) if per_unit else (4, 5)).astype("float32")
    experts = rng.normal(size=(4, K * native + n_shared, 3)).astype("float32")
    out = np.asarray(layer([unit_inputs, experts]))
    assert out.shape == (4, n_units, 3) and layer.num_shared == n_shared
    assert layer.gate_kernel.shape == (n_units, 5, K * native + n_shared)
    np.testing.assert_array_equal(np.asarray(layer.native_weights), np.ones((K, native)))
    limit = 1 / np.sqrt(5)  # torch's Linear default
    assert np.abs(np.asarray(layer.gate_kernel)).max() <= limit
    layer.native_weights.assign(rng.normal(size=(K, native)).astype("float32"))
    out = np.asarray(layer([unit_inputs, experts]))
    np.testing.assert_allclose(out, _np_adatt(layer, unit_inputs, experts), rtol=1e-5, atol=1e-5)
    run_layer_checks(layer, [unit_inputs, experts], tmp_path)


def test_adatt_fusion_every_task_reads_every_expert():
    """Task-to-task fusion: each task's output moves with another task's expert (through
    its gate), and its residual is its own experts' only."""
    rng = np.random.default_rng(12)
    layer = AdaTTFusion(n_tasks=3)
    x = rng.normal(size=(2, 4)).astype("float32")
    experts = rng.normal(size=(2, 3, 5)).astype("float32")
    before = np.asarray(layer([x, experts]))
    changed = experts.copy()
    changed[:, 2] += 1.0
    after = np.asarray(layer([x, changed]))
    gates = np.asarray(layer.gate_weights(x))  # (2, 3, 3)
    expected = before + gates[:, :, 2:3] * 1.0  # the gated share of the change
    expected[:, 2] += 1.0  # task 2's own expert: its residual
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)


def test_adatt_fusion_refusals():
    with pytest.raises(ValueError, match="Received: n_tasks=0"):
        AdaTTFusion(0)
    with pytest.raises(ValueError, match="Received: native_experts=1.5"):
        AdaTTFusion(2, native_experts=1.5)
    with pytest.raises(ValueError, match="Received: shared_unit=1"):
        AdaTTFusion(2, shared_unit=1)
    with pytest.raises(ValueError, match=r"must start with n_tasks \* native_experts = 6 native experts"):
        AdaTTFusion(3, native_experts=2).build([(None, 4), (None, 5, 8)])
    with pytest.raises(ValueError, match=r"n_units=4"):
        AdaTTFusion(3, shared_unit=True).build([(None, 3, 4), (None, 5, 8)])
    with pytest.raises(ValueError, match=r"expects `\[unit_inputs, experts\]`"):
        AdaTTFusion(3).build([(None, 4)])


# --------------------------------------------------------------------------- #
# GroupedExpertBank
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("per_group_input", [True, False])
def test_grouped_expert_bank_matches_numpy(per_group_input, tmp_path):
    rng = np.random.default_rng(13)
    layer = GroupedExpertBank(num_groups=3, experts_per_group=2, units=4)
    h = rng.normal(size=(5, 3, 6) if per_group_input else (5, 6)).astype("float32")
    out = np.asarray(layer(h))
    assert out.shape == (5, 6, 4) and layer.kernel.shape == (3, 2, 6, 4)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    kernel, bias, gamma, beta = (np.asarray(w, np.float64) for w in layer.get_weights())
    out = np.asarray(layer(h))
    for g in range(3):
        rows = h[:, g] if per_group_input else h
        for j in range(2):
            expected = _relu(_np_layer_norm(rows @ kernel[g, j] + bias[g, j], gamma[g, j], beta[g, j]))
            np.testing.assert_allclose(out[:, g * 2 + j], expected, rtol=1e-4, atol=1e-4)
    run_layer_checks(layer, h, tmp_path, atol=1e-4)


def test_grouped_expert_bank_refusals():
    with pytest.raises(ValueError, match="Received: num_groups=0"):
        GroupedExpertBank(0)
    with pytest.raises(ValueError, match=r"num_groups=3.*Received: input_shape=\(None, 2, 6\)"):
        GroupedExpertBank(3).build((None, 2, 6))


# --------------------------------------------------------------------------- #
# MetaUnit
# --------------------------------------------------------------------------- #


def test_meta_unit_worked_example():
    """h = [1, 2]; V_W = [[1], [-1]] (one scenario dimension), C_W = [[.5], [.5]],
    V_b = [2], c_b = [1].
      z = 3:  W = 3 [1, -1] + [.5, .5] = [3.5, -2.5]; h W = -1.5; b = 7   -> 5.5
      z = 0:  W = [.5, .5]; h W = 1.5; b = 1                                -> 2.5
      z = -1: W = [-.5, 1.5]; h W = 2.5; b = -1                            -> 1.5
      z = -2: W = [-1.5, 2.5]; h W = 3.5; b = -3                           -> 0.5
      z = -3: W = [-2.5, 3.5]; h W = 4.5; b = -5 -> -0.5, ReLU -> 0
    """
    layer = MetaUnit(1)
    h = np.array([[1.0, 2.0]] * 5, "float32")
    z = np.array([[3.0], [0.0], [-1.0], [-2.0], [-3.0]], "float32")
    layer([h, z])
    _set(layer, scenario_kernel=[[[1.0], [-1.0]]], kernel=[[0.5], [0.5]], scenario_bias=[[2.0]], bias=[1.0])
    np.testing.assert_allclose(np.asarray(layer([h, z]))[:, 0], [5.5, 2.5, 1.5, 0.5, 0.0], rtol=1e-6)
    linear = MetaUnit(1, activation=None)
    linear([h, z])
    linear.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(linear([h, z]))[:, 0], [5.5, 2.5, 1.5, 0.5, -0.5], rtol=1e-6)
    kernel, bias = layer.scenario_weights(z[:1])
    np.testing.assert_allclose(np.asarray(kernel), [[[3.5], [-2.5]]])
    np.testing.assert_allclose(np.asarray(bias), [[7.0]])


def _np_meta(layer, h, z):
    v_w, c_w, v_b, c_b = (np.asarray(w, np.float64) for w in (layer.scenario_kernel, layer.kernel,
                                                              layer.scenario_bias, layer.bias))
    out = np.zeros(h.shape[:-1] + (layer.units,))
    for b in range(h.shape[0]):
        kernel = np.tensordot(z[b], v_w, axes=1) + c_w
        out[b] = h[b] @ kernel + z[b] @ v_b + c_b
    return out


@pytest.mark.parametrize("h_shape", [(6, 5), (6, 3, 5), (6, 2, 2, 5)])  # both ways of computing h W(z)
def test_meta_unit_matches_numpy(h_shape, tmp_path):
    rng = np.random.default_rng(14)
    layer = MetaUnit(4, activation=None)
    h = rng.normal(size=h_shape).astype("float32")
    z = rng.normal(size=(6, 2)).astype("float32")
    out = np.asarray(layer([h, z]))
    assert out.shape == h_shape[:-1] + (4,)
    assert (layer.positions * 2 < 5) == (len(h_shape) == 2)  # the (h V) . z path only without middle axes
    limit_z, limit_h = 1 / np.sqrt(2), 1 / np.sqrt(5)
    assert np.abs(np.asarray(layer.scenario_kernel)).max() <= limit_z
    assert np.abs(np.asarray(layer.kernel)).max() <= limit_h
    np.testing.assert_allclose(out, _np_meta(layer, h, z), rtol=1e-5, atol=1e-5)
    run_layer_checks(layer, [h, z], tmp_path)


def test_meta_unit_rows_use_their_own_scenario():
    rng = np.random.default_rng(15)
    layer = MetaUnit(3)
    h = rng.normal(size=(4, 5)).astype("float32")
    z = rng.normal(size=(4, 2)).astype("float32")
    both = np.asarray(layer([h, z]))
    for i in range(4):
        np.testing.assert_allclose(np.asarray(layer([h[i : i + 1], z[i : i + 1]])), both[i : i + 1], rtol=1e-5)
    # With a zero generator the unit is one static dense layer for every scenario.
    layer.scenario_kernel.assign(np.zeros(layer.scenario_kernel.shape, "float32"))
    layer.scenario_bias.assign(np.zeros(layer.scenario_bias.shape, "float32"))
    static = _relu(h @ np.asarray(layer.kernel) + np.asarray(layer.bias))
    np.testing.assert_allclose(np.asarray(layer([h, z])), static, rtol=1e-5, atol=1e-6)


def test_meta_unit_refusals():
    with pytest.raises(ValueError, match="Received: units=0"):
        MetaUnit(0)
    with pytest.raises(ValueError, match=r"expects `\[h, z\]`"):
        MetaUnit(2).build([(None, 4), (None, 2, 3)])
    with pytest.raises(ValueError, match=r"expects `\[h, z\]`"):
        MetaUnit(2).build([(None, None, 4), (None, 3)])


# --------------------------------------------------------------------------- #
# MetaAttention
# --------------------------------------------------------------------------- #


def test_meta_attention_matches_numpy(tmp_path):
    rng = np.random.default_rng(16)
    layer = MetaAttention(n_tasks=2, attention_units=3, task_embedding_dim=4)
    experts = rng.normal(size=(5, 3, 6)).astype("float32")
    z = rng.normal(size=(5, 2)).astype("float32")
    out = np.asarray(layer([experts, z]))
    assert out.shape == (5, 2, 6)
    meta = layer.meta_unit
    assert meta.scenario_kernel.shape == (2, 12, 3) and layer.task_embedding.shape == (2, 4)
    views = _relu(np.asarray(layer.task_embedding) @ np.asarray(layer.task_kernel) + np.asarray(layer.task_bias))
    v = np.asarray(layer.score_kernel)
    expected = np.zeros((5, 2, 6))
    for b in range(5):
        for t in range(2):
            pairs = np.concatenate([experts[b], np.repeat(views[t][None], 3, axis=0)], axis=-1)  # (3, 12)
            scores = _relu(_np_meta(meta, pairs[None], z[b : b + 1])[0]) @ v
            expected[b, t] = _np_softmax(scores) @ experts[b]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    weights = np.asarray(layer.attention_weights(experts, z))
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    run_layer_checks(layer, [experts, z], tmp_path)


def test_meta_attention_refusals():
    with pytest.raises(ValueError, match="Received: n_tasks=0"):
        MetaAttention(0)
    with pytest.raises(ValueError, match="Received: attention_units=-1"):
        MetaAttention(2, attention_units=-1)
    with pytest.raises(ValueError, match=r"expects `\[experts, z\]`"):
        MetaAttention(2).build([(None, 4), (None, 2)])


# --------------------------------------------------------------------------- #
# make reproduce-m3oe: the rows of the paper's Table 2
# --------------------------------------------------------------------------- #


def _driver():
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    experiments = os.path.join(root, "experiments")
    if experiments not in sys.path:
        sys.path.insert(0, experiments)
    import reproduce_m3oe

    return reproduce_m3oe


def test_reproduce_m3oe_runs_every_paper_row_by_default():
    from mlora_tf.models import list_multitask_models

    driver = _driver()
    paper_rows = {s.name for s in list_multitask_models() if s.paper_name}
    assert paper_rows <= set(driver.MODELS) and set(NAMES) <= set(driver.PAPER_BASELINES)
    assert [driver._label(n) for n in NAMES] == ["AdaTT", "AdaTT-sp", "M2M"]


def test_reproduce_m3oe_table_prints_the_new_rows_beside_the_paper(tmp_path):
    driver = _driver()
    from reproduce_common import Cell, RunStore

    store = RunStore(str(tmp_path / "runs.jsonl"))
    seeds = [2022, 2023]
    aucs = {"mmoe": 0.74, "adatt": 0.76, "adatt_sp": 0.75, "m2m": 0.73, "m3oe": 0.77}
    for model, auc in aucs.items():
        for i, seed in enumerate(seeds):
            value = auc + 0.01 * i
            store.add(Cell("ml-1m", "age3", model, "default", seed), {
                "overall_auc": value, "overall_logloss": 0.5, "tasks": ["click", "like"],
                "pair_auc": {f"d{d}t{t}": value for d in range(3) for t in range(2)},
                "dataset": {"domains": ["age<25", "age25-34", "age35+"]},
                "epochs": 2, "seconds": 1.0, "params_total": 9,
            })
    text = driver.table2_markdown(store, list(aucs), "ml-1m", "ml-1m", seeds)
    rows = [line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ") and " ± " in line]
    assert rows == ["MMoE-MDMT", "AdaTT", "AdaTT-sp", "M2M", "M3oE"]  # the paper's order
    assert "| AdaTT | 2 | 76.50 ± 0.71 |" in text
    assert "| *paper: M2M* | 5 | 74.12 | 75.35 |" in text
    for label in ("AdaTT", "AdaTT-sp"):
        assert f"| *paper: {label} (numbers not in paper_numbers.py)* | — | — |" in text
    assert "best baseline, AdaTT (overall AUC 76.50" in text  # AdaTT is one of the paper's baselines
