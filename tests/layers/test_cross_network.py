import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import CrossNetwork


def _numpy(x0, weights):
    x = x0
    for w, b in zip(weights[0::2], weights[1::2]):
        x = x0 * (x @ w)[:, None] + b + x
    return x


def test_matches_numpy_with_random_weights():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(6, 5)).astype("float32")
    layer = CrossNetwork(num_layers=3)
    layer.build(x0.shape)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    np.testing.assert_allclose(
        np.asarray(layer(x0)), _numpy(x0, layer.get_weights()), rtol=1e-5, atol=1e-5
    )


def test_hand_computed_with_ones_kernel():
    x0 = np.array([[1.0, 2.0]], dtype="float32")
    layer = CrossNetwork(num_layers=1, kernel_initializer="ones")
    # x1 = x0 * (1 + 2) + 0 + x0 = 4 * x0
    np.testing.assert_allclose(np.asarray(layer(x0)), [[4.0, 8.0]])


def test_weights_regularizer_and_seeded_init(tmp_path):
    x0 = np.random.default_rng(1).normal(size=(4, 24)).astype("float32")
    layer = CrossNetwork(
        kernel_initializer=keras.initializers.GlorotNormal(seed=1024),
        kernel_regularizer=keras.regularizers.L2(1e-5),
    )
    run_layer_checks(layer, x0, tmp_path)
    assert [w.shape for w in layer.trainable_weights] == [(24,), (24,)] * 2
    assert len(layer.losses) == 2  # kernels only, not biases
    k0, b0, k1, b1 = layer.get_weights()
    np.testing.assert_array_equal(k0, k1)  # same seed, same start (as seed 1024)
    assert np.all(b0 == 0) and np.all(b1 == 0)


def test_unseeded_kernels_differ():
    layer = CrossNetwork()
    layer.build((None, 16))
    k0, _, k1, _ = layer.get_weights()
    assert not np.allclose(k0, k1)


@pytest.mark.parametrize("num_layers", [0, -1, 1.5, True])
def test_rejects_bad_num_layers(num_layers):
    with pytest.raises(ValueError, match=r"Received: num_layers="):
        CrossNetwork(num_layers=num_layers)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        CrossNetwork()(np.zeros((2, 3, 4), "float32"))
