"""`ScenarioAttention`: SAR-Net's attention of a query (scenario or item) over a set of
feature embeddings."""

from __future__ import annotations

import math

import keras
from keras import ops

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.layers.ScenarioAttention")
class ScenarioAttention(keras.layers.Layer):
    """Scaled dot-product attention of one query vector over a set of embeddings (SAR-Net,
    "cross-scenario behavior extract layer": a scenario-query and an item-query
    attention over the user's behaviours).

        q = query W_q                        # (batch_size, attention_dim)
        k_j = values_j W_k                   # (batch_size, num_values, attention_dim)
        a = softmax_j(q . k_j / sqrt(attention_dim))
        out = sum_j a_j values_j             # (batch_size, value_dim)

    The output is a convex combination of the values themselves (no value
    projection), so it lives in the embedding space it attends over.

    Input shape:
        `[query, values]`: `query` of shape `(batch_size, query_dim)`, `values` of
        shape `(batch_size, num_values, value_dim)`.
    Output shape:
        `(batch_size, value_dim)`.

    Args:
        attention_dim: optional int, width of the query/key projections; None
            (default): `value_dim`.
        kernel_initializer: initializer of `W_q` and `W_k`, default `"glorot_uniform"`.

    Example:

    >>> attention = ScenarioAttention()
    >>> query, values = keras.random.normal((4, 8)), keras.random.normal((4, 3, 8))
    >>> attention([query, values]).shape
    (4, 8)

    References:
        Shen et al., "SAR-Net: A Scenario-Aware Ranking Network for Personalized Fair
        Recommendation in Hundreds of Travel Scenarios", CIKM 2021, arXiv:2110.06475.
    """

    def __init__(self, attention_dim: int | None = None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if attention_dim is not None and (
            isinstance(attention_dim, bool) or not isinstance(attention_dim, int) or attention_dim < 1
        ):
            raise ValueError(
                f"`attention_dim` must be a positive integer or None. Received: attention_dim={attention_dim!r}"
            )
        self.attention_dim = attention_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @staticmethod
    def _shapes(input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(f"ScenarioAttention takes `[query, values]`. Received: input_shape={input_shape!r}")
        query_shape, values_shape = input_shape
        if len(query_shape) != 2 or len(values_shape) != 3:
            raise ValueError(
                "ScenarioAttention takes a query (batch_size, query_dim) and values "
                f"(batch_size, num_values, value_dim). Received: input_shape={input_shape!r}"
            )
        return query_shape, values_shape

    def build(self, input_shape):
        query_shape, values_shape = self._shapes(input_shape)
        dim = self.attention_dim or int(values_shape[-1])
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(int(query_shape[-1]), dim), initializer=_clone(self.kernel_initializer)
        )
        self.key_kernel = self.add_weight(
            name="key_kernel", shape=(int(values_shape[-1]), dim), initializer=_clone(self.kernel_initializer)
        )

    def attention_weights(self, query, values):
        """The weights `a`, `(batch_size, num_values)`, rows summing to one."""
        q = ops.matmul(query, self.query_kernel)
        k = ops.matmul(values, self.key_kernel)
        scores = ops.sum(k * ops.expand_dims(q, 1), axis=-1) / math.sqrt(int(self.query_kernel.shape[-1]))
        return ops.softmax(scores, axis=-1)

    def call(self, inputs):
        query, values = inputs
        weights = self.attention_weights(query, values)
        return ops.sum(values * ops.expand_dims(weights, -1), axis=1)

    def compute_output_shape(self, input_shape):
        query_shape, values_shape = self._shapes(input_shape)
        return (query_shape[0], values_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "attention_dim": self.attention_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _clone(initializer):
    """A fresh copy of `initializer`, so a seeded one does not repeat its values."""
    return initializer.__class__.from_config(initializer.get_config())
