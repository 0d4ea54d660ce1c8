import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import SENETLayer


def _numpy(e, w1, w2):
    z = e.mean(-1)
    a = np.maximum(np.maximum(z @ w1, 0.0) @ w2, 0.0)
    return e * a[..., None]


def test_matches_numpy():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 7, 4)).astype("float32")
    layer = SENETLayer(reduction_ratio=3)
    layer.build(e.shape)
    assert layer.reduction_size == 2
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    w1, w2 = layer.get_weights()
    assert w1.shape == (7, 2) and w2.shape == (2, 7)
    np.testing.assert_allclose(np.asarray(layer(e)), _numpy(e, w1, w2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fields,ratio,size", [(3, 3, 1), (2, 3, 1), (9, 3, 3), (4, 1, 4)])
def test_reduction_size(fields, ratio, size):
    layer = SENETLayer(reduction_ratio=ratio)
    layer.build((None, fields, 8))
    assert layer.reduction_size == size


def test_layer_checks(tmp_path):
    e = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    layer = SENETLayer(kernel_initializer=keras.initializers.GlorotNormal(seed=1024))
    assert run_layer_checks(layer, e, tmp_path).shape == (3, 3, 8)
    assert [w.shape for w in layer.weights] == [(3, 1), (1, 3)]


@pytest.mark.parametrize("ratio", [0, -3, 2.0])
def test_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r"Received: reduction_ratio="):
        SENETLayer(reduction_ratio=ratio)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        SENETLayer()(np.zeros((2, 8), "float32"))
