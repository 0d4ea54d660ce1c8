"""`HyperAdapter`: HAMUR's domain-specific adapter whose weights a domain-shared
hyper-network generates per instance."""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.mixture import DomainSelector


@mlora_export("mlora_tf.layers.HyperAdapter")
class HyperAdapter(keras.layers.Layer):
    """HAMUR's adapter cell (Li et al., CIKM'23, Method: "Domain-specific Adapter" and
    "Domain-shared Hyper-network"), inserted after a backbone layer with a residual.

    For a row of domain `d` with backbone output `h` (width `u`) and instance
    representation `z`:

        S_down, S_up = reshape(ReLU(z H_1 + c_1) H_2 + c_2)     # (k, k) each: the
                                                               # domain-shared hyper-network
        W_down = U_down[d] S_down V_down[d]                     # (u, m), rank <= k
        W_up   = U_up[d]   S_up   V_up[d]                       # (m, u)
        a = ReLU(h W_down + b_down[d]) W_up + b_up[d]           # the bottleneck, width m
        y = h + gamma[d] * (a - mean(a)) / sqrt(var(a) + eps) + beta[d]

    The adapter's weights are the low-rank product of domain-specific factors `U, V`
    and an instance-aware core `S` from the hyper-network (HAMUR's low-rank
    decomposition of the generated weights); the last step is the domain
    normalization (a layer norm with per-domain scale and shift) and the residual.
    Each row uses its own domain's factors and its own `S`, so a batch may mix domains.
    The normalization's scale `gamma` starts at zeros and its shift `beta` at zeros, so
    the cell starts as the identity (the usual near-identity start of an adapter; the
    paper gives no initialisation) and learns its correction.

    Input shape:
        `[h, z, domain]`: `h` `(batch_size, units)`, `z` `(batch_size, instance_dim)`,
        integer `domain` `(batch_size,)`.
    Output shape:
        `(batch_size, units)`, as `h`.

    Args:
        n_domains: int, number of domains `D`.
        bottleneck_units: int, the adapter's bottleneck width `m`.
        hyper_rank: int, default 8, the rank `k` of the generated weights (`S` is `k x k`).
        hyper_hidden_units: int, default 64, the hyper-network's hidden width.
        epsilon: float, default 1e-5, the domain normalization's epsilon.
        kernel_initializer: initializer of `H_1, H_2, U, V`, default `"glorot_uniform"`.

    Example:

    >>> adapter = HyperAdapter(3, bottleneck_units=4)
    >>> h, z = keras.random.normal((5, 16)), keras.random.normal((5, 24))
    >>> adapter([h, z, keras.ops.array([0, 1, 2, 0, 1])]).shape
    (5, 16)

    References:
        Li et al., "HAMUR: Hyper Adapter for Multi-Domain Recommendation", CIKM 2023,
        arXiv:2309.06217.
    """

    def __init__(
        self,
        n_domains: int,
        bottleneck_units: int,
        hyper_rank: int = 8,
        hyper_hidden_units: int = 64,
        epsilon: float = 1e-5,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("n_domains", n_domains), ("bottleneck_units", bottleneck_units),
            ("hyper_rank", hyper_rank), ("hyper_hidden_units", hyper_hidden_units),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}")
        self.n_domains = n_domains
        self.bottleneck_units = bottleneck_units
        self.hyper_rank = hyper_rank
        self.hyper_hidden_units = hyper_hidden_units
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(f"HyperAdapter takes `[h, z, domain]`. Received: input_shape={input_shape!r}")
        units, instance_dim = int(input_shape[0][-1]), int(input_shape[1][-1])
        d, m, k = self.n_domains, self.bottleneck_units, self.hyper_rank

        def weight(name, shape, initializer=None):
            init = _clone(self.kernel_initializer) if initializer is None else initializer
            return self.add_weight(name=name, shape=shape, initializer=init)

        self.hyper_kernel = weight("hyper_kernel", (instance_dim, self.hyper_hidden_units))
        self.hyper_bias = weight("hyper_bias", (self.hyper_hidden_units,), "zeros")
        self.core_kernel = weight("core_kernel", (self.hyper_hidden_units, 2 * k * k))
        self.core_bias = weight("core_bias", (2 * k * k,), "zeros")
        self.down_u = weight("down_u", (d, units, k))
        self.down_v = weight("down_v", (d, k, m))
        self.down_bias = weight("down_bias", (d, m), "zeros")
        self.up_u = weight("up_u", (d, m, k))
        self.up_v = weight("up_v", (d, k, units))
        self.up_bias = weight("up_bias", (d, units), "zeros")
        self.norm_gamma = weight("norm_gamma", (d, units), "zeros")
        self.norm_beta = weight("norm_beta", (d, units), "zeros")

    def _cores(self, z):
        """The instance-aware cores `(S_down, S_up)`, each `(batch_size, k, k)`."""
        k = self.hyper_rank
        hidden = ops.relu(ops.matmul(z, self.hyper_kernel) + self.hyper_bias)
        cores = ops.reshape(ops.matmul(hidden, self.core_kernel) + self.core_bias, (-1, 2, k, k))
        return cores[:, 0], cores[:, 1]

    @staticmethod
    def _low_rank(x, u, core, v, one_hot):
        """`x U[d] S V[d]` per row: the domain's factors picked by `one_hot` `(B, D)`."""
        xu = ops.sum(ops.einsum("bi,dik->bdk", x, u) * one_hot[:, :, None], axis=1)
        xus = ops.einsum("bk,bkl->bl", xu, core)
        return ops.sum(ops.einsum("bl,dlj->bdj", xus, v) * one_hot[:, :, None], axis=1)

    def call(self, inputs):
        h, z, domain = inputs
        one_hot = DomainSelector.one_hot(domain, self.n_domains, dtype=h.dtype)
        s_down, s_up = self._cores(ops.cast(z, h.dtype))
        a = ops.relu(self._low_rank(h, self.down_u, s_down, self.down_v, one_hot) + one_hot @ self.down_bias)
        a = self._low_rank(a, self.up_u, s_up, self.up_v, one_hot) + one_hot @ self.up_bias
        mean = ops.mean(a, axis=-1, keepdims=True)
        var = ops.mean(ops.square(a - mean), axis=-1, keepdims=True)
        normed = (a - mean) / ops.sqrt(var + self.epsilon)
        return h + normed * (one_hot @ self.norm_gamma) + one_hot @ self.norm_beta

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_domains": self.n_domains,
                "bottleneck_units": self.bottleneck_units,
                "hyper_rank": self.hyper_rank,
                "hyper_hidden_units": self.hyper_hidden_units,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _clone(initializer):
    """A fresh copy of `initializer`, so a seeded one does not repeat its values."""
    return initializer.__class__.from_config(initializer.get_config())
