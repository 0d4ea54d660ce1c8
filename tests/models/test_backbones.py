"""The DeepCTR backbones (original-model-zoo.md §2.4-§2.12) on a MovieLens-gender-like spec.

Models are built once per (backbone, adapter, as_shipped) and shared by the tests
(`_model`); a test that changes weights sets every value it relies on itself.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.config import ModelConfig
from mlora_tf.models import DataSpec, build_model, count_params, dense_stack_of, list_backbones, variable_groups

# MovieLens-1M gender split: raw-id vocabularies, D = 2, d = 8 (the config defaults).
SPEC = DataSpec(vocab_sizes={"uid": 6041, "pid": 3953, "domain": 2}, n_domains=2)
NEW = ("nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
ADAPTERS = ("none", "mlora")

# §2.12: dense-stack parameters and MLoRA extra parameters, D = 2, d = 8.
REFERENCE_COUNTS = {
    "wdl": (47_552, 17_536),
    "dcn": (47_552, 17_536),
    "pnn": (48_320, 17_632),
    "nfm": (43_456, 65_408),
    "autoint": (47_552, 67_456),
    "deepfm": (47_552, 9_216),
    "xdeepfm": (47_552, 9_216),
    "fibinet": (53_696, 9_600),
}
# §2.2: width of the dense stack's input at d = 8.
DNN_INPUT_WIDTH = {"nfm": 8, "autoint": 24, "pnn": 27, "dcn": 24, "fibinet": 48, "deepfm": 24, "xdeepfm": 24}
# §2.4-§2.11: the layers whose outputs are summed into the logit (before the global bias).
LOGIT_TERMS = {
    "wdl": {"linear_logit", "logit_head"},
    "nfm": {"linear_logit", "deep_logit"},
    "autoint": {"linear_logit", "deep_logit"},
    "pnn": {"deep_logit"},
    "dcn": {"linear_logit", "deep_logit"},
    "fibinet": {"linear_logit", "deep_logit"},
    "deepfm": {"linear_logit", "fm", "deep_logit"},
    "xdeepfm": {"linear_logit", "deep_logit", "cin_logit"},
}
# The logit heads: name -> (input width, has bias).
HEADS = {
    "nfm": {"deep_logit": (64, False)},
    "autoint": {"deep_logit": (96 + 64, False)},
    "pnn": {"deep_logit": (64, False)},
    "dcn": {"deep_logit": (24 + 64, False)},
    "fibinet": {"deep_logit": (64, False)},
    "deepfm": {"deep_logit": (64, False)},
    "xdeepfm": {"deep_logit": (64, False), "cin_logit": (192, True)},
}

_CACHE = {}


def _model(name, adapter, as_shipped=False):
    key = (name, adapter, as_shipped)
    if key not in _CACHE:
        keras.utils.set_random_seed(len(_CACHE))
        config = ModelConfig(name=name, adapter=adapter, as_shipped=as_shipped)
        _CACHE[key] = build_model(config, SPEC)
    return _CACHE[key]


def _batch(n, seed, domains=None):
    rng = np.random.default_rng(seed)
    domain = rng.integers(0, 2, size=n) if domains is None else np.asarray(domains)
    return {
        "uid": rng.integers(1, 6041, size=n).astype("int64"),
        "pid": rng.integers(1, 3953, size=n).astype("int64"),
        "domain": domain.astype("int64"),
    }


def _producer(tensor):
    return tensor._keras_history.operation.name


def _inputs_of(model, layer_name):
    inputs = model.get_layer(layer_name).input
    return [_producer(t) for t in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]


def _signature(model, exclude=()):
    """Sorted (path, shape) of the model's weights, adapter variables excluded. The
    dense stack's layers are named by mode (`plain_dense_i`, `mlora_dense_i`); the mode
    is dropped so both variants name the same shared kernel alike."""
    skip = {id(v) for v in exclude}
    return sorted(
        (re.sub(r"/(plain|mlora|moe)_dense_", "/dense_", v.path), tuple(v.shape))
        for v in model.weights
        if id(v) not in skip
    )


def test_all_backbones_registered():
    names = {spec.name for spec in list_backbones()}
    assert set(NEW) <= names
    specs = {spec.name: spec for spec in list_backbones()}
    lora_reduce = {"nfm": 4, "autoint": 4, "pnn": 16, "dcn": 16, "fibinet": 32, "deepfm": 32, "xdeepfm": 32}
    for name, alpha in lora_reduce.items():
        assert specs[name].default_lora_reduce == alpha, name
        assert specs[name].description


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("name", NEW)
def test_builds_and_trains_one_step(name, adapter):
    model = _model(name, adapter)
    batch = _batch(64, seed=1)
    label = tf.constant(np.random.default_rng(2).integers(0, 2, size=64).astype("float32"))
    variables = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    with tf.GradientTape() as tape:
        logit = model(batch, training=True)["logit"]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logit))
        total = loss + tf.add_n(model.losses)
    gradients = tape.gradient(total, variables)
    assert logit.shape == (64,)
    assert np.isfinite(float(total))
    # Every trainable variable is wired into the logit and gets a finite gradient.
    for v, g in zip(variables, gradients):
        assert g is not None, v.path
        assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy())), v.path
    optimizer.apply(gradients, variables)
    for v in variables:
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(v))), v.path
    changed = [v.path for v, b in zip(variables, before) if not np.array_equal(keras.ops.convert_to_numpy(v), b)]
    assert any("dense_stack" in p for p in changed)
    probability = np.asarray(model(batch, training=False)["probability"])
    assert np.all(np.isfinite(probability)) and np.all((probability > 0) & (probability < 1))


@pytest.mark.parametrize("name", list(REFERENCE_COUNTS))
def test_parameter_counts_match_reference(name):
    dense, extra = REFERENCE_COUNTS[name]
    base, adapted = _model(name, "none"), _model(name, "mlora")
    assert count_params(dense_stack_of(base).variable_groups()["backbone"]) == dense
    assert count_params(dense_stack_of(adapted).variable_groups()["backbone"]) == dense
    assert count_params(variable_groups(adapted)["adapter"]) == extra
    assert count_params(variable_groups(base)["adapter"]) == 0


@pytest.mark.parametrize("name", NEW)
def test_dnn_input_width_and_heads(name):
    for adapter in ADAPTERS:
        model = _model(name, adapter)
        first = dense_stack_of(model).dense_layers[0]
        assert first.kernel.shape[0] == DNN_INPUT_WIDTH[name]
        for head, (width, bias) in HEADS[name].items():
            layer = model.get_layer(head)
            assert layer.units == 1 and layer.use_bias is bias
            assert layer.kernel.shape == (width, 1)


@pytest.mark.parametrize("name", NEW + ("wdl",))
def test_logit_composition(name):
    model = _model(name, "mlora")
    if len(LOGIT_TERMS[name]) == 1:
        assert _inputs_of(model, "global_bias") == sorted(LOGIT_TERMS[name])
        names = {layer.name for layer in model.layers}
        assert "linear_logit" not in names and "logit_sum" not in names
    else:
        assert _inputs_of(model, "global_bias") == ["logit_sum"]
        terms = _inputs_of(model, "logit_sum")
        assert len(terms) == len(set(terms))
        assert set(terms) == LOGIT_TERMS[name]


def test_hyperparameters():
    autoint = _model("autoint", "mlora")
    for i in range(3):
        layer = autoint.get_layer(f"interacting_layer_{i}")
        assert (layer.att_embedding_size, layer.head_num, layer.use_res, layer.scaling) == (8, 4, True, False)
        assert isinstance(layer.kernel_initializer, keras.initializers.TruncatedNormal)
        assert layer.kernel_initializer.stddev == 0.05
    with pytest.raises(ValueError):
        autoint.get_layer("interacting_layer_3")
    assert _inputs_of(autoint, "deep_logit") == ["attention_deep_concat"]
    assert _inputs_of(autoint, "attention_deep_concat") == ["attention_flatten", "dense_stack"]

    dcn = _model("dcn", "mlora")
    cross = dcn.get_layer("cross_network")
    assert cross.num_layers == 2
    assert [tuple(k.shape) for k in cross.kernels] == [(24,), (24,)]
    assert isinstance(cross.kernel_regularizer, keras.regularizers.L2)
    assert cross.kernel_regularizer.l2 == pytest.approx(1e-5)
    assert _inputs_of(dcn, "cross_network") == ["flat_embeddings"]
    assert _inputs_of(dcn, "cross_deep_concat") == ["cross_network", "dense_stack"]

    xdeepfm = _model("xdeepfm", "mlora")
    cin = xdeepfm.get_layer("cin")
    assert cin.layer_size == (128, 128) and cin.split_half
    assert cin.activation is keras.activations.relu
    assert [tuple(k.shape) for k in cin.kernels] == [(9, 128), (192, 128)]
    assert cin.kernel_regularizer is None

    fibinet = _model("fibinet", "mlora")
    assert fibinet.get_layer("senet").reduction_ratio == 3
    for layer_name, source in (("bilinear_senet", "senet"), ("bilinear_raw", None)):
        layer = fibinet.get_layer(layer_name)
        assert layer.bilinear_type == "interaction" and len(layer.kernels) == 3
        if source:
            assert _inputs_of(fibinet, layer_name) == [source]
    assert _inputs_of(fibinet, "bilinear_concat") == ["bilinear_senet", "bilinear_raw"]
    assert fibinet.get_layer("bilinear_concat").axis == -1
    assert fibinet.get_layer("bilinear_concat").output.shape[1:] == (3, 16)

    pnn = _model("pnn", "mlora")
    assert pnn.get_layer("inner_products").reduce_sum is True
    assert _inputs_of(pnn, "pnn_deep_input") == ["flat_embeddings", "inner_products"]

    nfm = _model("nfm", "mlora")
    assert _inputs_of(nfm, "dense_stack")[0] == "bi_interaction"
    assert not any("dropout" in layer.name for layer in nfm.layers)


@pytest.mark.parametrize("name", NEW)
def test_base_and_mlora_share_non_adapter_shapes(name):
    base, adapted = _model(name, "none"), _model(name, "mlora")
    adapter_vars = variable_groups(adapted)["adapter"]
    assert adapter_vars
    assert _signature(base) == _signature(adapted, exclude=adapter_vars)


@pytest.mark.parametrize("name", NEW + ("wdl",))
def test_mixed_batch_matches_single_domain_batches(name):
    model = _model(name, "mlora")
    rng = np.random.default_rng(3)
    for layer in dense_stack_of(model).dense_layers:
        for v in (layer.adapter_kernel_b, layer.adapter_bias):
            v.assign(rng.normal(scale=0.3, size=v.shape).astype("float32"))
    domains = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0])
    batch = _batch(len(domains), seed=4, domains=domains)
    mixed = np.asarray(model(batch, training=False)["logit"])
    for d in (0, 1):
        rows = domains == d
        single = np.asarray(model({k: v[rows] for k, v in batch.items()}, training=False)["logit"])
        np.testing.assert_allclose(mixed[rows], single, rtol=1e-5, atol=1e-5)
    # The adapters are live: the same rows under the other domain predict differently.
    flipped = np.asarray(model(dict(batch, domain=1 - batch["domain"]), training=False)["logit"])
    assert np.max(np.abs(flipped - mixed)) > 1e-2


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_xdeepfm_has_cin_unless_as_shipped(adapter):
    real = _model("xdeepfm", adapter)
    shipped = _model("xdeepfm", adapter, as_shipped=True)
    deepfm = _model("deepfm", adapter)
    assert [v.path for v in real.get_layer("cin").weights] == [
        "cin/kernel_0", "cin/bias_0", "cin/kernel_1", "cin/bias_1"
    ]
    assert not any(v.path.startswith("cin") for v in shipped.weights)
    assert "cin" not in {layer.name for layer in shipped.layers}
    assert "fm" in {layer.name for layer in shipped.layers}
    assert _signature(shipped) == _signature(deepfm)
    assert set(_inputs_of(shipped, "logit_sum")) == LOGIT_TERMS["deepfm"]
    # as_shipped only touches xDeepFM.
    shipped_deepfm = _model("deepfm", adapter, as_shipped=True)
    assert _signature(shipped_deepfm) == _signature(deepfm)
