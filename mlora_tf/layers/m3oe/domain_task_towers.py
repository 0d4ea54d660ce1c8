"""One tower per (domain, task); each row keeps the towers of its own domain."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.DomainTaskTowers")
class DomainTaskTowers(keras.layers.Layer):
    """M3oE's towers: one small MLP per (domain, task), routed by each row's domain.

    For row `i` of domain `d = domain(i)` and task `t` (m3oe.md §2.2, equation 8):

    $$
    \\mathrm{logit}_{i,t} = w_{t,d} \\cdot \\mathrm{ReLU}\\big(\\mathrm{LN}_{t,d}(z_{i,t,d} W_{t,d} + b_{t,d})\\big) + c_{t,d}
    $$

    The original computes all `D * T` towers for every row and keeps the row's own
    domain by a mask; this layer runs only the row's own domain's towers (rows
    partitioned by domain), the same values, so a batch may mix domains. A row whose
    id is outside `[0, n_domains)` gets logit 0 (the original gives probability 0;
    such rows cannot occur there). The paper's tower is Linear,
    ReLU, Linear: the code inserts the LayerNorm (m3oe.md §2.3 item 3), as here.

    The layer returns **logits**; the original applies the sigmoid inside the model
    and trains BCE on probabilities (m3oe.md §5 item 6).

    Weights (tower `k = t * n_domains + d`, the original's task-major index):
    `hidden_kernel` `(K, units, hidden_units)`, `hidden_bias`, LayerNorm `gamma`,
    `beta` `(K, hidden_units)`, `output_kernel` `(K, hidden_units)`, `output_bias`
    `(K,)`. Linear weights and biases default to torch's `U(+-1/sqrt(fan_in))`,
    LayerNorm epsilon to `1e-5`.

    Args:
        hidden_units: int, default `64`. Width of the tower's hidden layer.
        epsilon: float, default `1e-5`. LayerNorm epsilon.
        kernel_initializer: initializer or None (default): None is torch's
            `U(+-1/sqrt(fan_in))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `[(batch_size, n_tasks, n_domains, units), (batch_size,)]`: the fused
        representations `z` and integer domain ids.

    Output shape:
        `(batch_size, n_tasks)` logits.

    Example:

    ```python
    towers = mlora_tf.layers.DomainTaskTowers()
    logits = towers([keras.random.normal((8, 2, 3, 64)),
                     keras.ops.array([0, 1, 2, 0, 1, 2, 0, 1])])  # (8, 2)
    ```

    References:
        - Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
          Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        hidden_units: int = 64,
        epsilon: float = _utils.TORCH_LAYER_NORM_EPSILON,
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = _utils.check_positive_int("hidden_units", hidden_units)
        self.epsilon = _utils.check_epsilon(epsilon)
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    def build(self, input_shape: Any) -> None:
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not isinstance(input_shape[0], (list, tuple))
            or len(input_shape[0]) != 4
            or any(s is None for s in input_shape[0][1:])
        ):
            raise ValueError(
                "`DomainTaskTowers` expects `[z, domain]` of shapes "
                "`(batch_size, n_tasks, n_domains, units)` and `(batch_size,)`. "
                f"Received: input_shape={input_shape}"
            )
        _, n_tasks, n_domains, units = input_shape[0]
        self.n_tasks, self.n_domains, units = int(n_tasks), int(n_domains), int(units)
        n_towers = self.n_tasks * self.n_domains
        hidden = self.hidden_units

        def init(which: str, fan_in: int, seed_offset: int) -> keras.initializers.Initializer:
            given = self.kernel_initializer if which == "kernel" else self.bias_initializer
            return _utils.resolve_initializer(given, _utils.torch_uniform(fan_in), seed_offset)

        self.hidden_kernel = self.add_weight(
            name="hidden_kernel", shape=(n_towers, units, hidden), initializer=init("kernel", units, 0)
        )
        self.hidden_bias = self.add_weight(
            name="hidden_bias", shape=(n_towers, hidden), initializer=init("bias", units, 1)
        )
        self.gamma = self.add_weight(name="gamma", shape=(n_towers, hidden), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(n_towers, hidden), initializer="zeros")
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(n_towers, hidden), initializer=init("kernel", hidden, 2)
        )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(n_towers,), initializer=init("bias", hidden, 3)
        )
        self.built = True

    def all_logits(self, z: Any) -> Any:
        """Every tower on every row: `(batch_size, n_tasks, n_domains)` logits."""
        shape = (self.n_tasks, self.n_domains)
        hidden_kernel = ops.reshape(self.hidden_kernel, shape + tuple(self.hidden_kernel.shape[1:]))
        hidden = ops.einsum("btdu,tduv->btdv", z, hidden_kernel)
        hidden = hidden + ops.reshape(self.hidden_bias, shape + (self.hidden_units,))
        hidden = _utils.layer_norm(
            hidden,
            ops.reshape(self.gamma, shape + (self.hidden_units,)),
            ops.reshape(self.beta, shape + (self.hidden_units,)),
            self.epsilon,
        )
        hidden = ops.relu(hidden)
        logits = ops.sum(hidden * ops.reshape(self.output_kernel, shape + (self.hidden_units,)), axis=-1)
        return logits + ops.reshape(self.output_bias, shape)

    def own_logits(self, d: int, z: Any) -> Any:
        """The towers of domain `d` on rows `z` `(rows, n_tasks, units)`: `(rows, n_tasks)`."""
        towers = [t * self.n_domains + d for t in range(self.n_tasks)]

        def pick(weight):
            return ops.take(weight, towers, axis=0)

        hidden = ops.einsum("ntu,tuv->ntv", z, pick(self.hidden_kernel)) + pick(self.hidden_bias)
        hidden = ops.relu(_utils.layer_norm(hidden, pick(self.gamma), pick(self.beta), self.epsilon))
        return ops.sum(hidden * pick(self.output_kernel), axis=-1) + pick(self.output_bias)

    def call(self, inputs: Any) -> Any:
        z, domain = inputs
        # Each row runs the towers of its own domain only (the other towers' outputs
        # would be masked away): select its domain's slice of `z`, then one product per
        # domain over that domain's rows.
        ids = ops.cast(ops.reshape(domain, (-1,)), "int32")
        own = ops.take_along_axis(
            z, ops.reshape(ops.clip(ids, 0, self.n_domains - 1), (-1, 1, 1, 1)), axis=2
        )[:, :, 0, :]  # (B, T, units)
        return _utils.per_domain(domain, self.n_domains, [own], self.own_logits, (self.n_tasks,), z.dtype)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0][0], input_shape[0][1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "epsilon": self.epsilon,
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config
