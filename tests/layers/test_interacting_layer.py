import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import InteractingLayer


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _numpy(x, weights, att, heads, use_res, scaling):
    wq, wk, wv = weights[:3]
    q, k, v = x @ wq, x @ wk, x @ wv
    outs = []
    for h in range(heads):
        cols = slice(h * att, (h + 1) * att)
        scores = q[..., cols] @ np.swapaxes(k[..., cols], 1, 2)
        if scaling:
            scores = scores / np.sqrt(att)
        outs.append(_softmax(scores) @ v[..., cols])
    y = np.concatenate(outs, axis=-1)
    if use_res:
        y = y + x @ weights[3]
    return np.maximum(y, 0.0)


@pytest.mark.parametrize(
    "att,heads,use_res,scaling",
    [(8, 2, True, False), (4, 4, True, True), (3, 2, False, False)],
)
def test_matches_numpy(att, heads, use_res, scaling):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 6)).astype("float32")
    layer = InteractingLayer(att, heads, use_res=use_res, scaling=scaling)
    layer.build(x.shape)
    layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights]
    )
    assert len(layer.weights) == (4 if use_res else 3)
    expected = _numpy(x, layer.get_weights(), att, heads, use_res, scaling)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-5)


def test_defaults_and_layer_checks(tmp_path):
    layer = InteractingLayer()
    assert (layer.att_embedding_size, layer.head_num) == (8, 2)
    assert layer.use_res is True and layer.scaling is False
    init = layer.kernel_initializer
    assert isinstance(init, keras.initializers.TruncatedNormal)
    assert (init.mean, init.stddev) == (0.0, 0.05)
    x = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    out = run_layer_checks(layer, x, tmp_path)
    assert out.shape == (3, 3, 16)
    assert [w.shape for w in layer.weights] == [(8, 16)] * 4


def test_seeded_initializer_follows_original_seeds():
    layer = InteractingLayer(
        head_num=4, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.05, seed=1024)
    )
    layer.build((None, 3, 8))
    q, k, v, res = layer.get_weights()
    np.testing.assert_array_equal(q, res)  # W_Res uses W_Q's seed
    assert not np.allclose(q, k) and not np.allclose(k, v)
    expected_k = keras.initializers.TruncatedNormal(stddev=0.05, seed=1025)((8, 32))
    np.testing.assert_allclose(k, np.asarray(expected_k))


def test_stacked_layers_shape():
    x = np.zeros((2, 3, 8), "float32")
    y = InteractingLayer(8, 4)(InteractingLayer(8, 4)(InteractingLayer(8, 4)(x)))
    assert tuple(y.shape) == (2, 3, 32)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"att_embedding_size": 0}, r"Received: att_embedding_size=0"),
        ({"head_num": -2}, r"Received: head_num=-2"),
        ({"use_res": 1}, r"Received: use_res=1"),
        ({"scaling": "no"}, r"Received: scaling=no"),
    ],
)
def test_rejects_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InteractingLayer(**kwargs)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        InteractingLayer()(np.zeros((2, 8), "float32"))
