import itertools

import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import BiInteractionPooling


def test_matches_numpy_formula_and_pairwise_sum():
    e = np.random.default_rng(0).normal(size=(5, 4, 6)).astype("float32")
    y = np.asarray(BiInteractionPooling()(e))
    formula = 0.5 * (e.sum(1) ** 2 - (e**2).sum(1))
    pairwise = sum(e[:, i] * e[:, j] for i, j in itertools.combinations(range(4), 2))
    np.testing.assert_allclose(y, formula, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, pairwise, rtol=1e-5, atol=1e-5)


def test_layer_checks(tmp_path):
    e = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    layer = BiInteractionPooling()
    assert run_layer_checks(layer, e, tmp_path).shape == (3, 8)
    assert layer.weights == []


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        BiInteractionPooling()(np.zeros((2, 3), "float32"))
