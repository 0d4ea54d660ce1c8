"""One softmax gate per (domain, task) over a bank of experts."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.ExpertGates")
class ExpertGates(keras.layers.Layer):
    """Per-(domain, task) softmax gates mixing a bank of experts.

    For every task `t` and domain `d` (m3oe.md §2.2, equation 4):

    $$
    g_{t,d} = \\mathrm{softmax}\\big(\\mathrm{sg}(h)\\,G_{t,d} + c_{t,d}\\big) \\in \\mathbb{R}^{n},
    \\qquad S_{t,d} = \\sum_e g_{t,d,e}\\, E_e
    $$

    where `sg` is a stop-gradient: as in the original code (not in the paper, m3oe.md
    §2.3 item 5) the gates see a copy of `h` that sends no gradient to the bottom
    layers; `stop_gradient=False` lets it through. Each gate is torch's `Linear(h ->
    n)` (weight and bias `U(+-1/sqrt(input_dim))` by default) and a softmax.

    All `T * D` gates are evaluated for every row (the row's own domain is picked by
    the towers), so a batch may mix domains. In M3oE the bank is the `N` shared
    experts; the "fully gated" ablation gates over shared, domain and task experts
    together.

    Weights: `kernel` `(n_tasks * n_domains, input_dim, num_experts)` and `bias`
    `(n_tasks * n_domains, num_experts)`, gate `k = t * n_domains + d` (the
    original's task-major objective index).

    Args:
        n_domains: int, number of domains `D`.
        n_tasks: int, number of tasks `T`.
        stop_gradient: bool, default `True`. Gate on `stop_gradient(h)`.
        kernel_initializer: initializer or None (default): None is torch's
            `U(+-1/sqrt(input_dim))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `[(batch_size, input_dim), (batch_size, num_experts, units)]`: the gate input
        `h` and the stacked expert outputs.

    Output shape:
        `(batch_size, n_tasks, n_domains, units)`: `S[:, t, d]`.

    Example:

    ```python
    gates = mlora_tf.layers.ExpertGates(n_domains=3, n_tasks=2)
    s = gates([keras.random.normal((8, 256)), keras.random.normal((8, 4, 64))])
    # (8, 2, 3, 64)
    ```

    References:
        - Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
          Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        n_domains: int,
        n_tasks: int,
        stop_gradient: bool = True,
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_domains = _utils.check_positive_int("n_domains", n_domains)
        self.n_tasks = _utils.check_positive_int("n_tasks", n_tasks)
        if not isinstance(stop_gradient, bool):
            raise ValueError(
                f"`stop_gradient` must be a bool. Received: stop_gradient={stop_gradient!r}"
            )
        self.stop_gradient = stop_gradient
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    def build(self, input_shape: Any) -> None:
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or len(input_shape[0]) != 2
            or len(input_shape[1]) != 3
            or input_shape[0][-1] is None
            or input_shape[1][1] is None
        ):
            raise ValueError(
                "`ExpertGates` expects `[h, experts]` of shapes `(batch_size, input_dim)` and "
                f"`(batch_size, num_experts, units)`. Received: input_shape={input_shape}"
            )
        self._add_gate_weights(int(input_shape[0][-1]), int(input_shape[1][1]))
        self.built = True

    def _add_gate_weights(self, input_dim: int, num_experts: int) -> None:
        """`kernel` `(T * D, input_dim, num_experts)` and `bias` `(T * D, num_experts)`."""
        self.num_experts = num_experts
        n_gates = self.n_tasks * self.n_domains
        self.kernel = self.add_weight(
            name="kernel",
            shape=(n_gates, input_dim, num_experts),
            initializer=_utils.resolve_initializer(
                self.kernel_initializer, _utils.torch_uniform(input_dim)
            ),
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(n_gates, num_experts),
            initializer=_utils.resolve_initializer(
                self.bias_initializer, _utils.torch_uniform(input_dim), 1
            ),
        )

    def gate_weights(self, h: Any) -> Any:
        """Softmax gate weights `(batch_size, n_tasks, n_domains, num_experts)`."""
        if self.stop_gradient:
            h = ops.stop_gradient(h)
        logits = ops.einsum("bi,kie->bke", h, self.kernel) + self.bias
        # With one expert (the paper's N = 1) every weight is 1, as the original computes;
        # `_utils.softmax` skips Keras' warning about a size-1 softmax axis.
        weights = _utils.softmax(logits)
        return ops.reshape(weights, (-1, self.n_tasks, self.n_domains, self.num_experts))

    def call(self, inputs: Any) -> Any:
        h, experts = inputs
        return ops.einsum("btde,beu->btdu", self.gate_weights(h), experts)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0][0], self.n_tasks, self.n_domains, input_shape[1][-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "n_domains": self.n_domains,
                "n_tasks": self.n_tasks,
                "stop_gradient": self.stop_gradient,
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config
