import itertools

import numpy as np
import pytest

from layer_testing import run_layer_checks
from mlora_tf.layers.interactions import InnerProductInteraction


def _numpy(e, reduce_sum):
    pairs = itertools.combinations(range(e.shape[1]), 2)
    products = np.stack([e[:, i] * e[:, j] for i, j in pairs], axis=1)
    return products.sum(-1) if reduce_sum else products


@pytest.mark.parametrize("reduce_sum", [True, False])
def test_matches_numpy_in_pair_order(reduce_sum):
    e = np.random.default_rng(0).normal(size=(5, 4, 6)).astype("float32")
    y = np.asarray(InnerProductInteraction(reduce_sum=reduce_sum)(e))
    np.testing.assert_allclose(y, _numpy(e, reduce_sum), rtol=1e-5, atol=1e-6)


def test_pair_order_hand_computed():
    # Fields are one-hot-like so each product identifies its pair.
    e = np.array([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]], dtype="float32")
    # (0,1) -> 2, (0,2) -> 3, (1,2) -> 6
    np.testing.assert_allclose(np.asarray(InnerProductInteraction()(e)), [[2.0, 3.0, 6.0]])


@pytest.mark.parametrize("reduce_sum", [True, False])
def test_layer_checks(tmp_path, reduce_sum):
    e = np.random.default_rng(1).normal(size=(3, 3, 8)).astype("float32")
    out = run_layer_checks(InnerProductInteraction(reduce_sum=reduce_sum), e, tmp_path)
    assert out.shape == ((3, 3) if reduce_sum else (3, 3, 8))


def test_rejects_bad_args():
    with pytest.raises(ValueError, match=r"Received: reduce_sum=yes"):
        InnerProductInteraction(reduce_sum="yes")
    with pytest.raises(ValueError, match=r"num_fields >= 2.*Received: input_shape"):
        InnerProductInteraction()(np.zeros((2, 1, 4), "float32"))
    with pytest.raises(ValueError, match=r"Received: input_shape"):
        InnerProductInteraction()(np.zeros((2, 4), "float32"))
