"""SAR-Net's per-scenario layers: `ScenarioLinear` (the scenario-specific linear
transformation) and `ScenarioExperts` (scenario-shared and scenario-specific experts
fused by a multi-scenario gate)."""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.mixture import DomainSelector


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


@mlora_export("mlora_tf.layers.ScenarioLinear")
class ScenarioLinear(keras.layers.Layer):
    """Scenario-specific linear transformation (SAR-Net, "scenario-specific transform
    layer"): an element-wise affine map with its own scale and shift per scenario.

        y = x * gamma[d] + beta[d]        # d the row's scenario (domain) id

    `gamma` starts at ones and `beta` at zeros, so the layer starts as the identity.
    Each row uses its own scenario's parameters (a one-hot product, no gather by the
    batch's first row), so batches may mix scenarios.

    Input shape:
        `[x, domain]`: `x` of shape `(batch_size, dim)`, integer `domain` of shape
        `(batch_size,)`.
    Output shape:
        `(batch_size, dim)`.

    Args:
        n_domains: int, number of scenarios.

    References:
        Shen et al., "SAR-Net", CIKM 2021, arXiv:2110.06475.
    """

    def __init__(self, n_domains: int, **kwargs):
        super().__init__(**kwargs)
        _positive_int("n_domains", n_domains)
        self.n_domains = n_domains

    def build(self, input_shape):
        dim = int(input_shape[0][-1])
        self.scale = self.add_weight(name="scale", shape=(self.n_domains, dim), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(self.n_domains, dim), initializer="zeros")

    def call(self, inputs):
        x, domain = inputs
        one_hot = DomainSelector.one_hot(domain, self.n_domains, dtype=x.dtype)
        return x * ops.matmul(one_hot, self.scale) + ops.matmul(one_hot, self.shift)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config["n_domains"] = self.n_domains
        return config


@mlora_export("mlora_tf.layers.ScenarioExperts")
class ScenarioExperts(keras.layers.Layer):
    """Scenario-shared and scenario-specific experts fused by a multi-scenario gate
    (SAR-Net, "debias expert networks" and "multi-scenario gating module").

        shared_s(x)   = act(x Ws_s + bs_s)              s = 1..num_shared
        specific_d(x) = act(x Wd_d + bd_d)              d = 1..n_domains
        g = softmax(gate_input Wg + bg)                 # (batch_size, num_shared + 1)
        out = sum_s g_s shared_s(x) + g_last specific_{d(row)}(x)

    Every row mixes the shared experts with its own scenario's expert only; the
    specific experts are selected per row by a one-hot product, so batches may mix
    scenarios.

    Input shape:
        `[x, domain, gate_input]`: `x` `(batch_size, input_dim)`, integer `domain`
        `(batch_size,)`, `gate_input` `(batch_size, gate_dim)` (the scenario's
        features).
    Output shape:
        `(batch_size, units)`.

    Args:
        units: int, width of every expert.
        n_domains: int, number of scenarios (one specific expert each).
        num_shared: int, default 2, number of scenario-shared experts.
        activation: default `"relu"`.
        kernel_initializer: default `"glorot_uniform"` (all expert and gate kernels).

    References:
        Shen et al., "SAR-Net", CIKM 2021, arXiv:2110.06475.
    """

    def __init__(
        self,
        units: int,
        n_domains: int,
        num_shared: int = 2,
        activation="relu",
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("n_domains", n_domains), ("num_shared", num_shared)):
            _positive_int(name, value)
        self.units = units
        self.n_domains = n_domains
        self.num_shared = num_shared
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(
                f"ScenarioExperts takes `[x, domain, gate_input]`. Received: input_shape={input_shape!r}"
            )
        input_dim, gate_dim = int(input_shape[0][-1]), int(input_shape[2][-1])

        def weight(name, shape, initializer):
            init = keras.initializers.get(initializer)
            return self.add_weight(name=name, shape=shape, initializer=init.__class__.from_config(init.get_config()))

        kernel = keras.initializers.serialize(self.kernel_initializer)
        self.shared_kernel = weight("shared_kernel", (self.num_shared, input_dim, self.units), kernel)
        self.shared_bias = weight("shared_bias", (self.num_shared, self.units), "zeros")
        self.specific_kernel = weight("specific_kernel", (self.n_domains, input_dim, self.units), kernel)
        self.specific_bias = weight("specific_bias", (self.n_domains, self.units), "zeros")
        self.gate_kernel = weight("gate_kernel", (gate_dim, self.num_shared + 1), kernel)
        self.gate_bias = weight("gate_bias", (self.num_shared + 1,), "zeros")

    def gate(self, gate_input):
        """The gate `(batch_size, num_shared + 1)`: shared experts, then the specific one."""
        return ops.softmax(ops.matmul(gate_input, self.gate_kernel) + self.gate_bias, axis=-1)

    def call(self, inputs):
        x, domain, gate_input = inputs
        shared = self.activation(ops.einsum("bi,siu->bsu", x, self.shared_kernel) + self.shared_bias)
        specific_all = self.activation(ops.einsum("bi,diu->bdu", x, self.specific_kernel) + self.specific_bias)
        one_hot = DomainSelector.one_hot(domain, self.n_domains, dtype=x.dtype)
        specific = ops.sum(specific_all * ops.expand_dims(one_hot, -1), axis=1)
        experts = ops.concatenate([shared, ops.expand_dims(specific, 1)], axis=1)  # (b, num_shared + 1, units)
        return ops.sum(experts * ops.expand_dims(self.gate(gate_input), -1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "n_domains": self.n_domains,
                "num_shared": self.num_shared,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
