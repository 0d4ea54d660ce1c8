import itertools

import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import FMInteraction


def _pairwise_sum(e):
    f = e.shape[1]
    return sum(
        np.sum(e[:, i] * e[:, j], axis=-1, keepdims=True)
        for i, j in itertools.combinations(range(f), 2)
    )


def test_matches_numpy_formula_and_pairwise_sum():
    e = np.random.default_rng(0).normal(size=(5, 4, 6)).astype("float32")
    y = np.asarray(FMInteraction()(e))
    formula = 0.5 * np.sum(e.sum(1) ** 2 - (e**2).sum(1), axis=1, keepdims=True)
    np.testing.assert_allclose(y, formula, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, _pairwise_sum(e), rtol=1e-5, atol=1e-5)


def test_hand_computed():
    e = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], dtype="float32")
    # <e0,e1> + <e0,e2> + <e1,e2> = 11 + 17 + 39
    np.testing.assert_allclose(np.asarray(FMInteraction()(e)), [[67.0]])


def test_no_weights_and_layer_checks(tmp_path):
    e = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    layer = FMInteraction()
    out = run_layer_checks(layer, e, tmp_path)
    assert out.shape == (3, 1)
    assert layer.weights == []


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"Received: input_shape=\(2, 3\)"):
        FMInteraction()(np.zeros((2, 3), "float32"))
