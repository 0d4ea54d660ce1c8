import contextlib

import keras
import numpy as np
import pytest
from helpers import graph_op_types

from mlora_tf.layers import AdaptedDNN


def _stack(mode="mlora", **kwargs):
    kwargs.setdefault("n_domains", 3)
    stack = AdaptedDNN((16, 8), mode=mode, lora_reduce=4, dropout=0.5, **kwargs)
    stack.build([(None, 6), (None,)])
    rng = np.random.default_rng(0)
    for group in ("adapter", "gate"):
        for w in stack.variable_groups()[group]:
            w.assign(rng.normal(size=w.shape).astype("float32"))
    return stack


@pytest.mark.parametrize("fast_path", [True, False])
def test_mixed_batch_equals_one_domain_at_a_time(fast_path):
    stack = _stack()
    stack.single_slot_fast_path = fast_path
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 6)).astype("float32")
    domain = np.array([0, 1, 2, 2, 1, 0, 0, 2, 1])
    mixed = stack([x, domain]).numpy()
    for d in range(3):
        rows = domain == d
        alone = stack([x[rows], domain[rows]]).numpy()
        np.testing.assert_allclose(mixed[rows], alone, rtol=1e-5, atol=1e-6)
    # the rows really differ by domain (the test would pass trivially otherwise)
    other = stack([x, (domain + 1) % 3]).numpy()
    assert np.abs(other - mixed).max() > 1e-3


def test_plain_mode_is_deepctr_dnn_dropout_after_relu():
    stack = AdaptedDNN((16, 8), mode="plain", dropout=0.5)
    x = np.random.default_rng(2).normal(size=(64, 6)).astype("float32")
    out = stack([x, np.zeros(64, "int64")], training=True).numpy()
    # dropout after ReLU: outputs are ReLU outputs scaled by 2 or zeroed, never negative
    assert (out >= 0).all() and (out == 0).mean() > 0.4
    eval_out = stack([x, np.zeros(64, "int64")], training=False).numpy()
    h = x
    for layer in stack.dense_layers:
        h = np.maximum(h @ layer.kernel.numpy() + layer.bias.numpy(), 0)
    np.testing.assert_allclose(eval_out, h, rtol=1e-5, atol=1e-6)
    assert stack.variable_groups()["adapter"] == []


def test_mlora_dropout_only_on_shared_path():
    stack = _stack()  # dropout 0.5
    x = np.random.default_rng(3).normal(size=(1, 6)).astype("float32")
    # With the shared kernels zeroed, dropout has nothing to act on: training == inference.
    for layer in stack.dense_layers:
        layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
        layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    d = np.array([1])
    np.testing.assert_allclose(stack([x, d], training=True).numpy(), stack([x, d], training=False).numpy(), rtol=1e-6)


def test_mixture_sources():
    stack = _stack(mode="moe", experts_per_domain=2)
    x = np.random.default_rng(4).normal(size=(4, 6)).astype("float32")
    d = np.array([0, 1, 2, 0])
    gated = stack([x, d]).numpy()
    stack.set_mixture("zeros")
    backbone = stack([x, d]).numpy()
    h = x
    for layer in stack.dense_layers:
        h = np.maximum(h @ layer.kernel.numpy() + layer.bias.numpy(), 0)
    np.testing.assert_allclose(backbone, h, rtol=1e-5, atol=1e-6)
    stack.set_mixture("expert", expert_index=3)
    expert = stack([x, d]).numpy()
    assert np.abs(expert - backbone).max() > 1e-3 and np.abs(expert - gated).max() > 1e-3
    with pytest.raises(ValueError, match="expert_index"):
        stack.set_mixture("expert", expert_index=6)
    with pytest.raises(ValueError, match="source"):
        stack.set_mixture("nope")


def test_routed_applies_a_routing_value_and_leaves_the_stack_as_it_was():
    from mlora_tf.layers import Routing

    stack = _stack(mode="moe", experts_per_domain=2)
    x = np.random.default_rng(4).normal(size=(4, 6)).astype("float32")
    d = np.array([0, 1, 2, 0])
    gated = stack([x, d]).numpy()
    with stack.routed(Routing(mixture="expert", expert_index=3)):
        routed = stack([x, d]).numpy()
        with stack.routed(Routing(one_domain_batches=True, shared_slots=True)):  # nests: the mixture stays
            assert stack.mixture_source == "expert" and stack._single_domain and stack._slot_cache == {}
        assert not stack._single_domain and stack._slot_cache is None
    assert (stack.mixture_source, stack.expert_index, stack._single_domain) == ("gate", None, False)
    np.testing.assert_allclose(stack([x, d]).numpy(), gated, rtol=1e-6)  # the stack's own routing again
    stack.set_mixture("expert", expert_index=3)
    np.testing.assert_allclose(routed, stack([x, d]).numpy(), rtol=1e-6)  # the same as the layer state
    assert np.abs(routed - gated).max() > 1e-3
    stack.set_mixture("gate")
    with pytest.raises(ValueError, match="expert_index"):
        with stack.routed(Routing(mixture="expert", expert_index=6)):
            pass
    assert (stack.mixture_source, stack.expert_index) == ("gate", None)  # unchanged by the refusal


def test_variable_groups_cover_each_variable_once():
    stack = _stack(mode="moe")
    groups = stack.variable_groups()
    ids = [id(v) for vs in groups.values() for v in vs]
    assert len(ids) == len(set(ids)) == len(stack.weights)
    assert len(groups["gate"]) == 3 and len(groups["adapter"]) == 6 and len(groups["backbone"]) == 4


def test_refusals():
    with pytest.raises(ValueError, match="mode"):
        AdaptedDNN(mode="lora")
    with pytest.raises(ValueError, match="n_domains"):
        AdaptedDNN(mode="mlora", lora_reduce=4)
    with pytest.raises(ValueError, match="no adapters"):
        AdaptedDNN(mode="plain").set_mixture("domain")


def test_dense_stack_in_functional_model_saves_and_reloads(tmp_path):
    stack = AdaptedDNN((16, 8), mode="mlora", n_domains=3, lora_reduce=4, name="stack")
    x_in = keras.Input((6,))
    d_in = keras.Input((), dtype="int64")
    model = keras.Model([x_in, d_in], stack([x_in, d_in]))
    rng = np.random.default_rng(5)
    for w in model.get_layer("stack").variable_groups()["adapter"]:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    x = rng.normal(size=(5, 6)).astype("float32")
    d = np.array([0, 1, 2, 1, 0])
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    np.testing.assert_allclose(reloaded.predict([x, d], verbose=0), model.predict([x, d], verbose=0), rtol=1e-6)


@pytest.mark.parametrize(
    "mode, topology", [("mlora", "dense"), ("mlora", "star"), ("plain", "star")], ids=lambda v: str(v)
)
def test_single_domain_batches_route_exactly_like_the_per_row_path(mode, topology):
    stack = _stack(mode=mode, topology=topology)
    rng = np.random.default_rng(6)
    for w in stack.weights:  # shared and star kernels too, so every path matters
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.5)
    x = rng.normal(size=(7, 6)).astype("float32")
    for d in range(3):
        domain = np.full(7, d)
        stack.single_slot_fast_path = False
        general = stack([x, domain]).numpy()  # per-row mixture, every slot
        stack.single_slot_fast_path = True
        tested = stack([x, domain]).numpy()  # the per-batch test picks the one-slot path
        with stack.single_domain_batches():
            promised = stack([x, domain]).numpy()
        np.testing.assert_allclose(promised, general, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(promised, tested)
    with stack.single_domain_batches():  # an empty batch has no row to route
        assert stack([x[:0], np.zeros(0, "int64")]).shape == (0, 8)


def test_single_domain_batches_trace_without_cond():
    import tensorflow as tf

    stack = _stack()
    spec = [tf.TensorSpec([None, 6], tf.float32), tf.TensorSpec([None], tf.int64)]
    plain = tf.function(lambda x, d: stack([x, d], training=True)).get_concrete_function(*spec)
    assert {"If", "StatelessIf"} & graph_op_types(plain)

    def promised(x, d):
        with stack.single_domain_batches():
            return stack([x, d], training=True)

    traced = tf.function(promised).get_concrete_function(*spec)
    assert not {"If", "StatelessIf"} & graph_op_types(traced)
    assert not stack._single_domain  # the promise ends with the context


def test_single_domain_batches_context_nests():
    stack = _stack()
    with stack.single_domain_batches():
        with stack.single_domain_batches(enabled=False):  # a no-op inside a promise
            assert stack._single_domain
        assert stack._single_domain
    with stack.single_domain_batches(enabled=False):
        assert not stack._single_domain
    assert not stack._single_domain


def test_shared_slot_parameters_slice_once_per_context():
    import tensorflow as tf

    stack = _stack()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 6)).astype("float32")
    d = np.full(6, 2)
    alone = stack([x, d]).numpy()
    spec = [tf.TensorSpec([None, 6], tf.float32), tf.TensorSpec([None], tf.int64)]

    def calls(share, count):
        def fn(x, d):
            with stack.single_domain_batches(), (stack.shared_slot_parameters() if share else contextlib.nullcontext()):
                cut = tf.shape(x)[0] // 2
                parts = [(x[:cut], d[:cut]), (x[cut:], d[cut:])] if count == 2 else [(x, d)]
                return tf.concat([stack([px, pd]) for px, pd in parts], 0)

        return tf.function(fn).get_concrete_function(*spec)

    def slices(concrete):
        return sum(op.type == "Slice" for op in concrete.graph.get_operations())

    once, shared, apart = calls(False, 1), calls(True, 2), calls(False, 2)
    assert slices(shared) == slices(once) > 0 and slices(apart) == 2 * slices(once)
    np.testing.assert_allclose(shared(tf.constant(x), tf.constant(d)).numpy(), alone, rtol=1e-5, atol=1e-6)
    assert stack._slot_cache is None  # the context's cache ends with it


@pytest.mark.parametrize(
    "mode, topology", [("plain", "dense"), ("mlora", "dense"), ("mlora", "star"), ("plain", "star")],
    ids=lambda v: str(v),
)
def test_layer_scales_multiply_each_layer_output(mode, topology):
    stack = _stack(mode=mode, topology=topology)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(9, 6)).astype("float32")
    domain = np.array([0, 1, 2, 2, 1, 0, 0, 2, 1])
    scales = [rng.uniform(0, 2, size=(9, u)).astype("float32") for u in (16, 8)]
    plain = stack([x, domain]).numpy()
    ones = [np.ones_like(s) for s in scales]
    np.testing.assert_array_equal(stack([x, domain], layer_scales=ones).numpy(), plain)
    np.testing.assert_array_equal(stack([x, domain], layer_scales=[None, None]).numpy(), plain)
    # The last layer's scale multiplies the output; an inner one changes what follows.
    last = stack([x, domain], layer_scales=[None, scales[1]]).numpy()
    np.testing.assert_allclose(last, plain * scales[1], rtol=1e-6)
    both = stack([x, domain], layer_scales=scales).numpy()
    assert np.abs(both - last).max() > 1e-3
    if mode == "plain" and topology == "dense":
        h = x
        for layer, s in zip(stack.dense_layers, scales):
            h = np.maximum(h @ layer.kernel.numpy() + layer.bias.numpy(), 0.0) * s
        np.testing.assert_allclose(both, h, rtol=1e-5, atol=1e-6)
    # Per-row scales stay exact on every routing path.
    for d in range(3):
        rows = domain == d
        part = [s[rows] for s in scales]
        alone = stack([x[rows], domain[rows]], layer_scales=part).numpy()
        with stack.single_domain_batches():
            promised = stack([x[rows], domain[rows]], layer_scales=part).numpy()
        np.testing.assert_allclose(alone, both[rows], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(promised, both[rows], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"`layer_scales` needs one entry per hidden layer \(2\)"):
        stack([x, domain], layer_scales=scales[:1])
