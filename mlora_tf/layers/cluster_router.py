"""`ClusterRouter`: AdaptDHM's distribution adaptation, each row routed to the nearest
of K learned cluster centroids."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.layers.ClusterRouter")
class ClusterRouter(keras.layers.Layer):
    """The distribution adaptation module of AdaptDHM (Li et al., 2022): K hidden
    clusters, each row's distribution coefficients over them, and a hard routing to
    the cluster it belongs to.

    For a row with representation `u` and centroids `c_1 .. c_K`:

        p_k = softmax_k(cos(u, c_k) / temperature)        # distribution coefficients
        route = one_hot(argmax_k p_k)                      # the row's cluster

    The centroids are not trained by the loss (the routing is hard): in training
    (`training=True`) each call moves every centroid that received rows towards the
    mean of its rows' unit-normalised representations (gradient stopped),
    `c_k <- m c_k + (1 - m) mean_{rows in k}(u / |u|)`, `m = momentum` (an online
    k-means: the clustering process, run alongside the classification process that
    trains the towers). Under a `tf.distribute` strategy the per-cluster sums and counts
    are summed over the replicas first, so every replica moves the centroids by the
    global batch's means, as one device would. At inference the centroids are fixed
    and each row's route depends on its own `u` only, so a batch may mix domains.
    `coefficients(u)` gives the soft `p`.

    Input shape:
        `(batch_size, input_dim)`.
    Output shape:
        `(batch_size, num_clusters)`: one-hot routes.

    Args:
        num_clusters: int, the number of clusters `K`.
        momentum: float in `[0, 1)`, default 0.99, of the centroid updates.
        temperature: float > 0, default 1.0, of the coefficients' softmax.
        centroid_initializer: initializer of the centroids, default `"random_normal"`.

    Example:

    >>> router = ClusterRouter(4)
    >>> router(keras.random.normal((6, 16))).shape
    (6, 4)

    References:
        Li et al., "AdaptDHM: Adaptive Distribution Hierarchical Model for Multi-Domain
        CTR Prediction", arXiv:2211.12105, 2022.
    """

    # Training updates the centroids from the batch's rows: a trainer keeps batches whole
    # (`mlora_tf.training.trainer.default_batch_parts`).
    batch_statistics = True

    def __init__(
        self,
        num_clusters: int,
        momentum: float = 0.99,
        temperature: float = 1.0,
        centroid_initializer="random_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1:
            raise ValueError(f"`num_clusters` must be a positive integer. Received: num_clusters={num_clusters!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"`temperature` must be a positive number. Received: temperature={temperature!r}")
        self.num_clusters = num_clusters
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.centroid_initializer = keras.initializers.get(centroid_initializer)

    def build(self, input_shape):
        # Every replica computes the same update (`_sum_over_replicas`); "mean" lets a
        # replica assign it under a `tf.distribute` strategy.
        self.centroids = self.add_weight(
            name="centroids",
            shape=(self.num_clusters, int(input_shape[-1])),
            initializer=self.centroid_initializer.__class__.from_config(self.centroid_initializer.get_config()),
            trainable=False,
            aggregation="mean",
        )

    @staticmethod
    def _unit(x):
        return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)

    def similarities(self, u):
        """`cos(u, c_k)`, `(batch_size, num_clusters)`."""
        return ops.matmul(self._unit(u), ops.transpose(self._unit(ops.cast(self.centroids, u.dtype))))

    def coefficients(self, u):
        """The distribution coefficients `p`, `(batch_size, num_clusters)`."""
        return ops.softmax(self.similarities(u) / self.temperature, axis=-1)

    def call(self, u, training=None):
        route = ops.one_hot(ops.argmax(self.similarities(u), axis=-1), self.num_clusters, dtype=u.dtype)
        if training:
            unit = ops.stop_gradient(self._unit(u))
            counts = ops.sum(route, axis=0)  # (K,)
            sums = ops.matmul(ops.transpose(route), unit)  # (K, input_dim)
            counts, sums = _sum_over_replicas(counts, sums)
            means = sums / ops.maximum(counts, 1.0)[:, None]
            keep = ops.where(counts > 0, self.momentum, 1.0)[:, None]
            centroids = ops.cast(self.centroids, u.dtype)
            self.centroids.assign(ops.cast(keep * centroids + (1.0 - keep) * means, self.centroids.dtype))
        return ops.stop_gradient(route)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_clusters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_clusters": self.num_clusters,
                "momentum": self.momentum,
                "temperature": self.temperature,
                "centroid_initializer": keras.initializers.serialize(self.centroid_initializer),
            }
        )
        return config


def _sum_over_replicas(*tensors):
    """`tensors` summed over the replicas of the `tf.distribute` strategy whose replica
    context this runs in; unchanged on one device or outside a strategy."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_reduce(tf.distribute.ReduceOp.SUM, t) for t in tensors)
