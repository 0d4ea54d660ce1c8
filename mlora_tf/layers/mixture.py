"""Layers that turn a row's domain id into adapter mixture weights `w`."""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.api import mlora_export


def domain_ids(domain):
    """Flatten a `(batch_size,)` or `(batch_size, 1)` id tensor to `(batch_size,)` int32.

    The one place a per-domain layer reads its ids.
    """
    domain = ops.convert_to_tensor(domain)
    if len(domain.shape) == 2:
        domain = ops.squeeze(domain, axis=1)
    return ops.cast(domain, "int32")


@mlora_export("mlora_tf.layers.DomainSelector")
class DomainSelector(keras.layers.Layer):
    """One-hot of each row's domain: the MLoRA mixture weight.

    Input shape:
        `(batch_size,)` or `(batch_size, 1)` integer domain ids in `[0, n_domains)`.
    Output shape:
        `(batch_size, n_domains)` float one-hot.

    An id outside `[0, n_domains)` gives an all-zero row (no adapter): the serving
    signature checks ids before they get here.

    Args:
        n_domains: int, number of domains.
    """

    def __init__(self, n_domains: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n_domains, int) or n_domains < 1:
            raise ValueError(f"`n_domains` must be a positive integer. Received: n_domains={n_domains}")
        self.n_domains = n_domains

    @staticmethod
    def one_hot(domain, n_domains: int, dtype="float32"):
        """The one-hot `(batch_size, n_domains)` of integer ids (the layer's function)."""
        return ops.one_hot(domain_ids(domain), n_domains, dtype=dtype)

    def call(self, domain):
        return self.one_hot(domain, self.n_domains, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_domains)

    def get_config(self):
        config = super().get_config()
        config["n_domains"] = self.n_domains
        return config


@mlora_export("mlora_tf.layers.GatingHead")
class GatingHead(keras.layers.Layer):
    """MoE-MLoRA gate: softmax weights over all experts, from the row's domain.

    `g = softmax(Dense(Embedding(domain)))`, per row, so batches may mix domains. The
    domain embedding (size 4 in the fork) and the dense layer are sub-layers created at
    build time.

    Input shape:
        `(batch_size,)` or `(batch_size, 1)` integer domain ids.
    Output shape:
        `(batch_size, num_experts)`, rows summing to one.

    Args:
        n_domains: int, number of domains.
        num_experts: int, number of experts.
        embedding_dim: int, default 4, size of the gate's domain embedding.
    """

    def __init__(self, n_domains: int, num_experts: int, embedding_dim: int = 4, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("n_domains", n_domains), ("num_experts", num_experts), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        self.n_domains = n_domains
        self.num_experts = num_experts
        self.embedding_dim = embedding_dim
        self.domain_embedding = keras.layers.Embedding(
            n_domains, embedding_dim, embeddings_initializer="uniform", name="gate_domain_embedding"
        )
        self.dense = keras.layers.Dense(num_experts, activation="softmax", name="gate_dense")

    def build(self, input_shape):
        self.domain_embedding.build((None,))
        self.dense.build((None, self.embedding_dim))

    def call(self, domain):
        return self.dense(self.domain_embedding(domain_ids(domain)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_experts)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"n_domains": self.n_domains, "num_experts": self.num_experts, "embedding_dim": self.embedding_dim}
        )
        return config
