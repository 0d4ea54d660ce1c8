"""PLE's customized gate control (CGC): one gate per (domain, task) over shared and own experts."""

from __future__ import annotations

from typing import Any

from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils
from mlora_tf.layers.m3oe.expert_gates import ExpertGates


@mlora_export("mlora_tf.layers.CGCGates")
class CGCGates(ExpertGates):
    """Per-objective softmax gates over the shared experts and the objective's own.

    One CGC extraction level of PLE in its multi-domain multi-task form: every
    objective `k = t * n_domains + d` (task-major, as `ExpertGates` and
    `DomainTaskTowers`) owns `S` specific experts and sees the `N` shared ones. Its
    gate mixes exactly those `N + S` experts:

    $$
    g_k = \\mathrm{softmax}\\big(\\mathrm{sg}(h)\\,G_k + c_k\\big) \\in \\mathbb{R}^{N + S},
    \\qquad
    S_k = \\sum_{n < N} g_{k,n}\\, E^{sh}_n + \\sum_{s < S} g_{k,N+s}\\, E^{sp}_{k S + s}
    $$

    `sg` is a stop-gradient applied only with `stop_gradient=True` (PLE has none; the
    flag mirrors `ExpertGates`). Each gate is torch's `Linear(h -> N + S)` (weight
    and bias `U(+-1/sqrt(input_dim))` by default) and a softmax.

    The specific experts come as one bank of `n_tasks * n_domains * S` experts (an
    `ExpertBank`), objective `k` owning experts `k*S .. k*S + S - 1`; `S` is read
    from the bank's size. All gates are evaluated for every row (the towers pick the
    row's domain), so a batch may mix domains.

    Weights: `kernel` `(n_tasks * n_domains, input_dim, N + S)` and `bias`
    `(n_tasks * n_domains, N + S)`, the first `N` columns for the shared experts.

    Args:
        n_domains: int, number of domains `D`.
        n_tasks: int, number of tasks `T`.
        stop_gradient: bool, default `False`. Gate on `stop_gradient(h)`.
        kernel_initializer: initializer or None (default): None is torch's
            `U(+-1/sqrt(input_dim))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `[(batch_size, input_dim), (batch_size, N, units),
        (batch_size, n_tasks * n_domains * S, units)]`: the gate input `h`, the
        shared experts and the specific experts.

    Output shape:
        `(batch_size, n_tasks, n_domains, units)`: `S[:, t, d]`.

    Example:

    ```python
    gates = mlora_tf.layers.CGCGates(n_domains=3, n_tasks=2)
    s = gates([keras.random.normal((8, 113)),
               keras.random.normal((8, 4, 256)),     # 4 shared experts
               keras.random.normal((8, 6, 256))])    # 1 expert per objective
    # (8, 2, 3, 256)
    ```

    References:
        - Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
          Learning (MTL) Model for Personalized Recommendations", RecSys 2020.
    """

    def __init__(self, n_domains: int, n_tasks: int, stop_gradient: bool = False, **kwargs: Any) -> None:
        super().__init__(n_domains, n_tasks, stop_gradient=stop_gradient, **kwargs)

    @property
    def n_objectives(self) -> int:
        return self.n_tasks * self.n_domains

    def build(self, input_shape: Any) -> None:
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 3
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
            or len(input_shape[0]) != 2
            or len(input_shape[1]) != 3
            or len(input_shape[2]) != 3
            or input_shape[0][-1] is None
            or any(s is None for s in tuple(input_shape[1][1:]) + tuple(input_shape[2][1:]))
        ):
            raise ValueError(
                "`CGCGates` expects `[h, shared, specific]` of shapes `(batch_size, input_dim)`, "
                "`(batch_size, num_shared, units)` and `(batch_size, n_tasks * n_domains * "
                f"specific_experts, units)`. Received: input_shape={input_shape}"
            )
        input_dim = int(input_shape[0][-1])
        n_shared, units = int(input_shape[1][1]), int(input_shape[1][2])
        n_specific, specific_units = int(input_shape[2][1]), int(input_shape[2][2])
        if specific_units != units:
            raise ValueError(
                "Shared and specific experts must have the same width. "
                f"Received: input_shape={input_shape}"
            )
        if n_specific < self.n_objectives or n_specific % self.n_objectives:
            raise ValueError(
                f"The specific bank must hold a positive multiple of n_tasks * n_domains = "
                f"{self.n_objectives} experts. Received: {n_specific} specific experts"
            )
        self.num_shared = n_shared
        self.specific_experts = n_specific // self.n_objectives
        self._add_gate_weights(input_dim, n_shared + self.specific_experts)
        self.built = True

    def call(self, inputs: Any) -> Any:
        h, shared, specific = inputs
        weights = ops.reshape(self.gate_weights(h), (-1, self.n_objectives, self.num_experts))
        units = ops.shape(shared)[-1]
        own = ops.reshape(specific, (-1, self.n_objectives, self.specific_experts, units))
        mixed = ops.einsum("bkn,bnu->bku", weights[:, :, : self.num_shared], shared)
        mixed = mixed + ops.einsum("bks,bksu->bku", weights[:, :, self.num_shared :], own)
        return ops.reshape(mixed, (-1, self.n_tasks, self.n_domains, units))
