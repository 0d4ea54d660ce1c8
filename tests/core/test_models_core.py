import keras
import numpy as np
import pytest

from mlora_tf.config import ModelConfig
from mlora_tf.models import DataSpec, build_model, count_params, dense_stack_of, get_backbone, variable_groups

ML_GENDER = DataSpec({"uid": 6041, "pid": 3953, "domain": 2}, 2)


@pytest.mark.parametrize("name", ["mlp", "wdl"])
def test_mlora_extra_parameters_match_the_reference(name):
    base = build_model(ModelConfig(name=name, adapter="none"), ML_GENDER)
    mlora = build_model(ModelConfig(name=name, adapter="mlora"), ML_GENDER)
    # original-model-zoo.md §2.12: dense stack 47,552; Mlora extra 17,536 (D=2, d=8, alpha 16)
    assert count_params(dense_stack_of(base).variable_groups()["backbone"]) == 47552
    assert count_params(dense_stack_of(mlora).variable_groups()["backbone"]) == 47552
    assert count_params(variable_groups(mlora)["adapter"]) == 17536
    assert dense_stack_of(mlora).ranks == (16, 8, 4)
    shapes = lambda m: sorted(tuple(v.shape) for v in variable_groups(m)["backbone"])  # noqa: E731
    assert shapes(base) == shapes(mlora)


def test_wdl_has_linear_part_and_mlp_does_not():
    wdl = build_model(ModelConfig(name="wdl", adapter="none"), ML_GENDER)
    mlp = build_model(ModelConfig(name="mlp", adapter="none"), ML_GENDER)
    assert "linear_logit" in [layer.name for layer in wdl.layers]
    assert "linear_logit" not in [layer.name for layer in mlp.layers]


def test_profiles_follow_the_original_initialisers():
    keras.utils.set_random_seed(0)
    base = build_model(ModelConfig(name="wdl", adapter="none"), ML_GENDER)
    lora = build_model(ModelConfig(name="wdl", adapter="mlora"), ML_GENDER)
    mlp_lora = build_model(ModelConfig(name="mlp", adapter="mlora"), ML_GENDER)
    std = lambda m, n: m.get_layer(n).embeddings.numpy().std()  # noqa: E731
    assert std(base, "user_emb") == pytest.approx(1e-4, rel=0.05)
    assert std(lora, "user_emb") == pytest.approx(1e-2, rel=0.05)
    assert std(lora, "domain_emb") < 1e-3
    emb = mlp_lora.get_layer("user_emb").embeddings.numpy()
    assert emb.max() <= 0.05 and emb.min() >= -0.05 and emb.std() > 0.02  # uniform(+-0.05)
    assert mlp_lora.get_layer("user_emb").embeddings_regularizer is None  # MLoRA class: no L2
    assert base.get_layer("user_emb").embeddings_regularizer is not None


def test_mixed_domain_batch_equals_per_domain_batches():
    model = build_model(ModelConfig(name="wdl", adapter="mlora"), DataSpec({"uid": 30, "pid": 30, "domain": 3}, 3))
    rng = np.random.default_rng(0)
    for w in variable_groups(model)["adapter"]:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    x = {"uid": rng.integers(0, 30, 12), "pid": rng.integers(0, 30, 12), "domain": rng.integers(0, 3, 12)}
    mixed = model(x)["probability"].numpy()
    for d in range(3):
        rows = x["domain"] == d
        alone = model({k: v[rows] for k, v in x.items()})["probability"].numpy()
        np.testing.assert_allclose(mixed[rows], alone, rtol=1e-5, atol=1e-6)


def test_registry_rejects_unknown_names_with_the_valid_list():
    with pytest.raises(ValueError, match="Valid models: .*wdl"):
        get_backbone("wdl_lora")
    with pytest.raises(ValueError, match="adapter"):
        build_model(ModelConfig(name="wdl", adapter="lora"), ML_GENDER)
    with pytest.raises(ValueError, match="MoE-MLoRA is not defined"):
        build_model(ModelConfig(name="mlp", adapter="moe"), ML_GENDER)


def test_model_saves_and_reloads_without_custom_objects(tmp_path):
    model = build_model(ModelConfig(name="wdl", adapter="mlora"), DataSpec({"uid": 30, "pid": 30, "domain": 3}, 3))
    x = {"uid": np.arange(6), "pid": np.arange(6), "domain": np.array([0, 1, 2, 0, 1, 2])}
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(x)["logit"].numpy(), model(x)["logit"].numpy(), rtol=1e-6)


def test_pretrained_embeddings_start_the_tables_and_stay_frozen():
    rng = np.random.default_rng(0)
    pretrained = {"uid": rng.normal(size=(30, 16)).astype("float32"), "pid": rng.normal(size=(20, 16)).astype("float32")}
    spec = DataSpec({"uid": 30, "pid": 20, "domain": 3}, 3, pretrained=pretrained)
    model = build_model(ModelConfig(name="wdl", adapter="mlora"), spec)
    np.testing.assert_array_equal(model.get_layer("user_emb").embeddings.numpy(), pretrained["uid"])
    np.testing.assert_array_equal(model.get_layer("item_emb").embeddings.numpy(), pretrained["pid"])
    trainable = {v.path for v in model.trainable_variables}
    assert not any(p.startswith(("user_emb", "item_emb")) for p in trainable)
    assert any(p.startswith("domain_emb") for p in trainable)
    linear = model.get_layer("linear_logit")
    assert [t.trainable for t in linear.tables] == [False, False, True]  # frozen at zero, as the original
    trainable_model = build_model(ModelConfig(name="wdl", adapter="mlora", emb_trainable=True), spec)
    assert any(v.path.startswith("user_emb") for v in trainable_model.trainable_variables)


def test_build_model_leaves_the_callers_config_unchanged():
    from mlora_tf.models import resolve_config

    config = ModelConfig(name="wdl", adapter="moe", hidden_units=(8,), num_experts=6)
    given = ModelConfig(**vars(config))
    spec = DataSpec({"uid": 30, "pid": 20, "domain": 3}, 3)
    model = build_model(config, spec)
    assert config == given and config.lora_reduce is None and config.experts_per_domain == 1
    resolved = resolve_config(config, spec)
    assert resolved is not config and config == given
    assert (resolved.lora_reduce, resolved.dropout, resolved.experts_per_domain) == (16, 0.5, 2)
    assert (resolved.user_dim, resolved.item_dim, resolved.domain_dim) == (8, 8, 8)
    assert resolve_config(resolved, spec) == resolved
    assert dense_stack_of(model).experts_per_domain == 2
    with pytest.raises(ValueError, match=r"multiple of the number of domains \(4\)"):
        resolve_config(config, DataSpec({"uid": 30, "pid": 20, "domain": 4}, 4))


def test_one_registry_keyed_by_name_and_kind():
    from mlora_tf.models import get_model, list_models, list_multitask_models

    single, multi = get_model("star", "single_task"), get_model("star", "multi_task")
    assert single is get_backbone("star") and single.kind == "single_task" and multi.kind == "multi_task"
    assert single.adapters == ("none", "mlora") and not single.supports_moe and single.group == "multi-domain"
    assert get_backbone("wdl").adapters == ("none", "mlora", "moe") and get_backbone("wdl").supports_moe
    assert get_backbone("wdl").group == "CTR backbones"
    assert multi.adapters == () and multi.group == "multi-domain multi-task"
    assert list_models() == list_models("single_task") + list_models("multi_task")
    assert list_models("multi_task") == list_multitask_models()
    with pytest.raises(ValueError, match=r"Unknown multi-task model 'wdl'\. Valid models: adatt, adatt_sp, m2m, m3oe, "):
        get_model("wdl", "multi_task")
    with pytest.raises(ValueError, match=r"`kind` must be one of \['single_task', 'multi_task'\]"):
        get_model("wdl", "backbone")


def test_register_backbone_takes_adapters_or_supports_moe(monkeypatch):
    from mlora_tf.models import registry

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    build = get_backbone("mlp").build
    registry.register_backbone("mlp_no_moe", "test entry", supports_moe=False)(build)
    registry.register_backbone("mlp_plain", "test entry", adapters=("none",), group="test")(build)
    assert get_backbone("mlp_no_moe").adapters == ("none", "mlora")
    assert get_backbone("mlp_plain").adapters == ("none",) and get_backbone("mlp_plain").group == "test"
    with pytest.raises(ValueError, match=r"Backbone 'mlp' is already registered"):
        registry.register_backbone("mlp", "again")(build)
    with pytest.raises(ValueError, match=r"Give `adapters` or `supports_moe`, not both"):
        registry.register_backbone("x", "test entry", adapters=("none",), supports_moe=True)
    with pytest.raises(ValueError, match=r"`adapters` must be distinct names among"):
        registry.register_backbone("x", "test entry", adapters=("lora",))(build)
    with pytest.raises(ValueError, match=r"Backbone 'mlp_plain' does not take adapter 'mlora'"):
        build_model(ModelConfig(name="mlp_plain", adapter="mlora"), ML_GENDER)


def test_one_data_spec_for_single_and_multi_task_data():
    single = DataSpec({"uid": 30, "pid": 20, "domain": 3}, 3)
    assert (single.tasks, single.dense_features, single.features) == (("label",), (), ("uid", "pid", "domain"))
    multi = DataSpec({"uid": 30, "pid": 20, "domain": 3, "zip": 7}, 3, ["click", "like"], ["age"])
    assert (multi.tasks, multi.dense_features) == (("click", "like"), ("age",))
    assert DataSpec({"uid": 30, "pid": 20, "domain": 3}, 3, pretrained={"uid": np.zeros((30, 2))}) == single
    assert DataSpec(single.vocab_sizes, 3, features=("domain", "x", "uid", "pid")).features == (
        "uid", "pid", "domain", "x")
    for n_domains in (0, True, 2.0):
        with pytest.raises(ValueError, match=r"`n_domains` must be a positive integer"):
            DataSpec(single.vocab_sizes, n_domains)
    for tasks in ((), ("click", "click"), ("",)):
        with pytest.raises(ValueError, match=r"`tasks` must be unique non-empty names"):
            DataSpec(single.vocab_sizes, 3, tasks)
    with pytest.raises(ValueError, match=r"The features must include"):
        DataSpec(single.vocab_sizes, 3, features=("uid", "domain"))
