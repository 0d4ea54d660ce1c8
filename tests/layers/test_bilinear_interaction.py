import itertools

import keras
import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import BilinearInteraction


def _numpy(e, weights, bilinear_type):
    pairs = list(itertools.combinations(range(e.shape[1]), 2))
    out = []
    for p, (i, j) in enumerate(pairs):
        if bilinear_type == "all":
            w = weights[0]
        elif bilinear_type == "each":
            w = weights[i]
        else:
            w = weights[p]
        out.append((e[:, i] @ w) * e[:, j])
    return np.stack(out, axis=1)


@pytest.mark.parametrize(
    "bilinear_type,num_weights", [("all", 1), ("each", 3), ("interaction", 6)]
)
def test_matches_numpy(bilinear_type, num_weights):
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 4, 3)).astype("float32")
    layer = BilinearInteraction(bilinear_type=bilinear_type)
    layer.build(e.shape)
    assert len(layer.weights) == num_weights
    assert all(w.shape == (3, 3) for w in layer.weights)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    expected = _numpy(e, layer.get_weights(), bilinear_type)
    np.testing.assert_allclose(np.asarray(layer(e)), expected, rtol=1e-5, atol=1e-5)


def test_interaction_weight_names_follow_pair_order():
    layer = BilinearInteraction()
    layer.build((None, 3, 8))
    assert [w.name for w in layer.weights] == ["kernel_0_1", "kernel_0_2", "kernel_1_2"]


def test_default_and_seeded_identical_start(tmp_path):
    e = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    layer = BilinearInteraction(kernel_initializer=keras.initializers.GlorotNormal(seed=1024))
    assert layer.bilinear_type == "interaction"
    assert run_layer_checks(layer, e, tmp_path).shape == (3, 3, 8)
    w = layer.get_weights()
    np.testing.assert_array_equal(w[0], w[1])
    np.testing.assert_array_equal(w[1], w[2])


@pytest.mark.parametrize("bilinear_type", ["all", "each"])
def test_layer_checks_other_types(tmp_path, bilinear_type):
    e = np.random.default_rng(2).normal(size=(2, 3, 4)).astype("float32")
    run_layer_checks(BilinearInteraction(bilinear_type), e, tmp_path)


def test_rejects_bad_args():
    with pytest.raises(ValueError, match=r"Received: bilinear_type='pairwise'"):
        BilinearInteraction(bilinear_type="pairwise")
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        BilinearInteraction()(np.zeros((2, 1, 4), "float32"))
