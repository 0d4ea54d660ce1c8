"""The whole M3oE model: parameter count, per-row routing, fusion modes, ablations, saving."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from mlora_tf.models import DataSpec, M3oEConfig, build_m3oe
from mlora_tf.models import m3oe as m3oe_lib

ML1M_VOCAB = {"uid": 6040, "pid": 3706, "gender": 2, "occupation": 21, "zip": 3439,
              "cate_id": 18, "domain": 3}
TINY_VOCAB = {"uid": 20, "pid": 15, "gender": 2, "occupation": 5, "zip": 7, "cate_id": 4, "domain": 3}
TASKS = ("click", "like")


def _spec(vocab=TINY_VOCAB):
    return DataSpec(vocab, 3, TASKS, ("age",))


def _tiny_config(**overrides):
    base = dict(embedding_dim=4, star_units=12, hidden_units=10, expert_units=6, tower_units=5,
                num_shared_experts=2, embedding_stddev=0.5)
    base.update(overrides)
    return M3oEConfig(**base)


def _batch(rng, n, domain=None):
    x = {f: rng.integers(0, v, n).astype("int64") for f, v in TINY_VOCAB.items()}
    if domain is not None:
        x["domain"] = np.asarray(domain, dtype="int64")
    x["age"] = rng.random(n).astype("float32")
    return x


def _predict(model, x):
    return {k: np.asarray(v) for k, v in model(x, training=False).items()}


@pytest.mark.parametrize("experts, expected", [(4, 788_146), (1, 733_792)])
def test_parameter_count_matches_the_original(experts, expected):
    model = build_m3oe(M3oEConfig(num_shared_experts=experts), _spec(ML1M_VOCAB))
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == expected
    assert model.get_layer("input_vector").output.shape == (None, 113)
    assert model.get_layer("domain_representation").output.shape == (None, 256)
    assert model.get_layer("shared_experts").output.shape == (None, experts, 64)


def test_outputs_inputs_and_initial_fusion_weights():
    model = build_m3oe(_tiny_config(), _spec())
    assert sorted(model.input) == sorted(list(TINY_VOCAB) + ["age"])
    assert model.input["age"].dtype == "float32" and model.input["uid"].dtype == "int64"
    out = _predict(model, _batch(np.random.default_rng(0), 5))
    assert sorted(out) == ["click", "click_logit", "like", "like_logit"]
    for task in TASKS:
        assert out[task].shape == (5,)
        np.testing.assert_allclose(out[task], 1 / (1 + np.exp(-out[f"{task}_logit"])), rtol=1e-5)
    assert m3oe_lib.fusion_weights(model) == pytest.approx(
        {"alpha_domain": 0.7310586, "alpha_task": 0.7310586, "beta_domain": 0.7310586, "beta_task": 0.7310586}
    )
    emb = np.asarray(model.get_layer("uid_embedding").embeddings)
    assert emb.std() == pytest.approx(0.5, rel=0.3)  # embedding_stddev (1e-4 by default)
    assert M3oEConfig().embedding_stddev == 1e-4


def test_mixed_domain_batch_equals_per_domain_batches():
    rng = np.random.default_rng(1)
    model = build_m3oe(_tiny_config(), _spec())
    for v in model.trainable_variables:  # move away from the near-zero embeddings
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.5)
    domain = np.array([0, 2, 1, 1, 0, 2, 2, 0, 1])
    x = _batch(rng, len(domain), domain)
    mixed = _predict(model, x)
    for d in range(3):
        rows = domain == d
        alone = _predict(model, {k: v[rows] for k, v in x.items()})
        for key in mixed:
            np.testing.assert_allclose(mixed[key][rows], alone[key], rtol=1e-5, atol=1e-6)
        one_by_one = [_predict(model, {k: v[i : i + 1] for k, v in x.items()}) for i in np.flatnonzero(rows)]
        np.testing.assert_allclose(
            mixed["like_logit"][rows], [o["like_logit"][0] for o in one_by_one], rtol=1e-5, atol=1e-6
        )
    # The domain id routes: the same features under another domain give other predictions.
    moved = dict(x, domain=(domain + 1) % 3)
    assert not np.allclose(_predict(model, moved)["click"], mixed["click"])


def test_fixed_fusion_is_half_and_not_trainable():
    model = build_m3oe(_tiny_config(fusion="fixed"), _spec())
    layer = m3oe_lib.fusion_layer(model)
    assert set(m3oe_lib.fusion_weights(model).values()) == {0.5}
    assert m3oe_lib.fusion_variables(model) == []
    assert len(layer.non_trainable_weights) == 4
    assert not any("raw_" in v.path for v in model.trainable_variables)
    groups = m3oe_lib.variable_groups(model)
    assert groups["fusion"] == [] and len(groups["main"]) == len(model.trainable_variables)


def test_learned_fusion_variable_group():
    model = build_m3oe(_tiny_config(), _spec())
    groups = m3oe_lib.variable_groups(model)
    assert sorted(v.path for v in groups["fusion"]) == sorted(
        f"expert_fusion/raw_{n}" for n in ("alpha_domain", "alpha_task", "beta_domain", "beta_task")
    )
    assert len(groups["main"]) + 4 == len(model.trainable_variables)
    assert not {id(v) for v in groups["main"]} & {id(v) for v in groups["fusion"]}


def test_fusion_scalars_get_gradients_and_train():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    model = build_m3oe(_tiny_config(), _spec())
    x = _batch(rng, 16)
    y = rng.integers(0, 2, (16, 2)).astype("float32")
    fusion = m3oe_lib.fusion_variables(model)
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        logits = m3oe_lib.stack_logits(out, TASKS)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
    grads = tape.gradient(loss, fusion)
    assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in grads)
    before = [np.asarray(v).copy() for v in fusion]
    keras.optimizers.Adam(1e-1).apply_gradients(zip(grads, fusion))
    assert all(not np.allclose(b, np.asarray(v)) for b, v in zip(before, fusion))


@pytest.mark.parametrize(
    "overrides, variant, n_fusion",
    [
        (dict(concat_modules=True), "concat modules", 2),
        (dict(fully_gated=True), "fully gated", 0),
        (dict(domain_experts=False), "M3oE w/o domain", 2),
        (dict(task_experts=False), "M3oE w/o task", 2),
        (dict(domain_experts=False, task_experts=False), "M3oE w/o domain & task", 0),
        (dict(fusion="fixed"), "M3oE w/o AutoML", 0),
    ],
)
def test_table3_ablations_build_and_route_per_row(overrides, variant, n_fusion):
    config = _tiny_config(**overrides)
    assert config.variant == variant
    model = build_m3oe(config, _spec())
    assert len(m3oe_lib.fusion_variables(model)) == n_fusion
    names = {layer.name for layer in model.layers}
    assert ("domain_experts" in names) == config.domain_experts
    assert ("task_experts" in names) == config.task_experts
    if config.fully_gated:
        experts = config.num_shared_experts + 3 + 2
        assert model.get_layer("gates").kernel.shape == (6, 10, experts)
    rng = np.random.default_rng(3)
    domain = np.array([2, 0, 1, 0])
    x = _batch(rng, 4, domain)
    mixed = _predict(model, x)
    alone = _predict(model, {k: v[domain == 0] for k, v in x.items()})
    np.testing.assert_allclose(mixed["click_logit"][domain == 0], alone["click_logit"], rtol=1e-5, atol=1e-6)


def test_save_and_reload_without_custom_objects(tmp_path):
    rng = np.random.default_rng(4)
    model = build_m3oe(_tiny_config(), _spec())
    m3oe_lib.fusion_layer(model)._raw["beta_task"].assign([0.25])
    x = _batch(rng, 6)
    path = str(tmp_path / "m3oe.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
    reloaded = keras.saving.load_model(path)
    expected, actual = _predict(model, x), _predict(reloaded, x)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7)
    assert m3oe_lib.fusion_weights(reloaded)["beta_task"] == pytest.approx(1 / (1 + np.exp(-0.25)))
    assert len(m3oe_lib.fusion_variables(reloaded)) == 4


def test_config_round_trip_and_refusals():
    config = _tiny_config(fusion_init=(0.5, 1.0, 1.5, 2.0), task_experts=False)
    assert M3oEConfig.from_config(config.get_config()) == config
    with pytest.raises(ValueError, match=r"Unknown M3oE config key\(s\) \['expert_num'\]"):
        M3oEConfig.from_config({"expert_num": 4})
    with pytest.raises(ValueError, match="Received: num_shared_experts=0"):
        M3oEConfig(num_shared_experts=0)
    with pytest.raises(ValueError, match="Received: fusion='automl'"):
        M3oEConfig(fusion="automl")
    with pytest.raises(ValueError, match="fully_gated=True, concat_modules=True"):
        M3oEConfig(fully_gated=True, concat_modules=True)
    with pytest.raises(ValueError, match="must include 'domain'"):
        M3oEConfig(sparse_features=("uid", "pid"))
    with pytest.raises(ValueError, match="fusion_init"):
        M3oEConfig(fusion_init=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"no vocabulary for sparse feature\(s\) \['zip'\]"):
        build_m3oe(_tiny_config(), DataSpec({k: v for k, v in TINY_VOCAB.items() if k != "zip"},
                                                      3, TASKS, ("age",)))
    with pytest.raises(ValueError, match=r"no dense feature\(s\) \['age'\]"):
        build_m3oe(_tiny_config(), DataSpec(TINY_VOCAB, 3, TASKS))


def test_builds_from_a_multitask_dataset_and_trains():
    import tensorflow as tf

    from mlora_tf.data import load_dataset

    ds = load_dataset("synthetic-mt", n_rows=600, n_users=60, n_items=40)
    spec = DataSpec.from_dataset(ds)
    assert spec.tasks == TASKS and spec.n_domains == 3
    config = _tiny_config()
    model = build_m3oe(config, spec)
    x = m3oe_lib.model_inputs(ds.splits["train"], config)
    y = np.stack([ds.splits["train"][t] for t in TASKS], axis=-1)
    optimizer = keras.optimizers.Adam(1e-2)
    losses = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            logits = m3oe_lib.stack_logits(model(x, training=True), TASKS)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
