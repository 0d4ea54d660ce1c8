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
