"""`ClusterRouter` (AdaptDHM's distribution adaptation): routes and coefficients against
numpy, the online k-means update of the centroids in training (and none at inference),
refusals, and the generic layer checks (config, `.keras` round trip)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_testing import run_layer_checks
from mlora_tf.layers import ClusterRouter

RNG = np.random.default_rng(0)
U = RNG.normal(size=(9, 5)).astype("float32")
CENTROIDS = RNG.normal(size=(3, 5)).astype("float32")


def _router(**kwargs):
    router = ClusterRouter(3, name="router", **kwargs)
    router.build(U.shape)
    router.centroids.assign(CENTROIDS)
    return router


def _cosine(u, c):
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    return u @ c.T


def test_routes_and_coefficients_equal_numpy():
    router = _router(temperature=0.5)
    route = keras.ops.convert_to_numpy(router(U))
    cos = _cosine(U.astype(np.float64), CENTROIDS.astype(np.float64))
    np.testing.assert_array_equal(route, np.eye(3)[cos.argmax(axis=1)])
    p = np.exp(cos / 0.5) / np.exp(cos / 0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(router.coefficients(U)), p, rtol=1e-5)
    assert len(set(cos.argmax(axis=1).tolist())) > 1  # the data reaches several clusters
    # Inference leaves the centroids alone; they are not trainable.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(router.centroids), CENTROIDS)
    assert not router.trainable_weights and len(router.non_trainable_weights) == 1


def test_training_moves_each_used_centroid_towards_its_rows_mean():
    router = _router(momentum=0.9)
    u = U
    cos = _cosine(u.astype(np.float64), CENTROIDS.astype(np.float64))
    assign = cos.argmax(axis=1)
    route = keras.ops.convert_to_numpy(router(u, training=True))
    np.testing.assert_array_equal(route, np.eye(3)[assign])  # routed by the centroids before the update
    unit = u / np.linalg.norm(u, axis=1, keepdims=True)
    expected = CENTROIDS.astype(np.float64).copy()
    for k in range(3):
        if np.any(assign == k):
            expected[k] = 0.9 * expected[k] + 0.1 * unit[assign == k].mean(axis=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(router.centroids), expected, rtol=1e-5, atol=1e-6)
    # A cluster with no rows stays where it is.
    only = u[assign == assign[0]]
    before = keras.ops.convert_to_numpy(router.centroids).copy()
    router(only, training=True)
    after = keras.ops.convert_to_numpy(router.centroids)
    others = [k for k in range(3) if k != assign[0]]
    np.testing.assert_array_equal(after[others], before[others])
    assert np.abs(after[assign[0]] - before[assign[0]]).max() > 0


def test_rows_are_routed_independently_and_no_gradient_flows():
    router = _router()
    whole = keras.ops.convert_to_numpy(router(U))
    for i in range(U.shape[0]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(router(U[i:i + 1])), whole[i:i + 1])
    u = tf.constant(U)
    with tf.GradientTape() as tape:
        tape.watch(u)
        total = tf.reduce_sum(router(u, training=True) * tf.range(3, dtype="float32"))
    grad = tape.gradient(total, u)
    assert grad is None or not np.any(grad.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_clusters": 0}, "`num_clusters` must be a positive integer"),
        ({"num_clusters": 2.0}, "`num_clusters` must be a positive integer"),
        ({"num_clusters": 2, "momentum": 1.0}, r"`momentum` must be in \[0, 1\)"),
        ({"num_clusters": 2, "momentum": -0.1}, r"`momentum` must be in \[0, 1\). Received: momentum=-0.1"),
        ({"num_clusters": 2, "temperature": 0}, "`temperature` must be a positive number"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClusterRouter(**kwargs)


def test_layer_checks(tmp_path):
    router = ClusterRouter(3, momentum=0.5, centroid_initializer=keras.initializers.RandomNormal(seed=2), name="r")
    out = run_layer_checks(router, U, tmp_path)
    assert out.shape == (9, 3) and np.all(out.sum(axis=1) == 1.0)
    config = router.get_config()
    assert (config["num_clusters"], config["momentum"], config["temperature"]) == (3, 0.5, 1.0)
