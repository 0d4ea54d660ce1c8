import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import CIN


def _numpy(x0, weights, layer_size, split_half):
    batch, m, d = x0.shape
    hidden, outputs = x0, []
    for k, size in enumerate(layer_size):
        w, b = weights[2 * k], weights[2 * k + 1]
        h_prev = hidden.shape[1]
        z = np.zeros((batch, m * h_prev, d), dtype=np.float64)
        for i in range(m):
            for j in range(h_prev):
                z[:, i * h_prev + j, :] = x0[:, i, :] * hidden[:, j, :]
        maps = np.maximum(np.einsum("bfd,fh->bhd", z, w) + b[None, :, None], 0.0)
        if split_half and k != len(layer_size) - 1:
            hidden, direct = maps[:, : size // 2], maps[:, size // 2 :]
        else:
            hidden, direct = maps, maps
        outputs.append(direct)
    return np.concatenate(outputs, axis=1).sum(-1)


@pytest.mark.parametrize(
    "layer_size,split_half,width", [((4, 6, 5), True, 10), ((3, 5), False, 8), ((6,), True, 6)]
)
def test_matches_numpy(layer_size, split_half, width):
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(4, 3, 5)).astype("float32")
    layer = CIN(layer_size=layer_size, split_half=split_half)
    layer.build(x0.shape)
    layer.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights]
    )
    y = np.asarray(layer(x0))
    assert y.shape == (4, width)
    expected = _numpy(x0, layer.get_weights(), layer_size, split_half)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_default_shapes_and_layer_checks(tmp_path):
    x0 = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    layer = CIN(kernel_initializer=keras.initializers.GlorotUniform(seed=1024))
    assert run_layer_checks(layer, x0, tmp_path).shape == (3, 192)
    assert [w.shape for w in layer.weights] == [(9, 128), (128,), (192, 128), (128,)]
    expected = keras.initializers.GlorotUniform(seed=1025)((192, 128))
    np.testing.assert_allclose(layer.get_weights()[2], np.asarray(expected))


def test_kernel_regularizer():
    layer = CIN(layer_size=(4, 4), kernel_regularizer=keras.regularizers.L2(1e-3))
    layer(np.ones((2, 3, 4), "float32"))
    assert len(layer.losses) == 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"layer_size": (127, 128)}, r"should be even\. Received: layer_size=\(127, 128\)"),
        ({"layer_size": ()}, r"Received: layer_size=\(\)"),
        ({"layer_size": (4, 0)}, r"Received: layer_size=\(4, 0\)"),
        ({"layer_size": 128}, r"Received: layer_size=128"),
        ({"split_half": "yes"}, r"Received: split_half=yes"),
    ],
)
def test_rejects_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CIN(**kwargs)


def test_odd_sizes_allowed_without_split_half_or_for_last_layer():
    CIN(layer_size=(127, 129), split_half=False)
    CIN(layer_size=(128, 127))
