"""AdaTT's fusion units: adaptive task-to-task fusion of every expert, plus a residual of
each task's own experts."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.AdaTTFusion")
class AdaTTFusion(keras.layers.Layer):
    """One fusion level of AdaTT: a task-specific fusion unit per task, and optionally
    a shared fusion unit.

    At one level, with `E` the stacked outputs of every expert of the level (the
    `m` native experts of each of the `K` tasks, task `k` owning experts
    `k*m .. k*m + m - 1`, then `N >= 0` shared experts) and `f_k` the input of unit
    `k` (its own fusion output of the level below; the embedding vector `x` at the
    first level), unit `k` computes (Li et al. 2023, the task-specific and shared
    fusion units of its model section):

    $$
    f'_k = \\underbrace{\\mathrm{softmax}(f_k W_k + c_k)\\, E}_{\\text{AllExperts: task-to-task fusion}}
         + \\underbrace{\\sum_{j < m} v_{k,j}\\, E_{k m + j}}_{\\text{NativeExperts: residual}}
    $$

    The gate of each task mixes **all** experts, its own, the other tasks' and the
    shared ones (adaptive task-to-task fusion); the linear combination `v_k` of the
    task's own experts is the residual that keeps task-specific knowledge. With
    `shared_unit=True` the level also has AdaTT's shared fusion unit, whose output
    (the input of the next level's shared experts) is gated the same way over all
    experts, without residual:

    $$
    f'_s = \\mathrm{softmax}(f_s W_s + c_s)\\, E
    $$

    AdaTT-sp is the variant with task-specific units only (`N = 0` and no shared
    unit); AdaTT adds shared experts and, below the last level, the shared unit. In
    the multi-domain multi-task setting every (domain, task) objective is one of
    the `K` tasks (`k = t * n_domains + d`, as `DomainTaskTowers`).

    Weights: `gate_kernel` `(n_units, input_dim, num_experts)` and `gate_bias`
    `(n_units, num_experts)` (torch's `U(+-1/sqrt(input_dim))` by default),
    `native_weights` `(n_tasks, native_experts)` (ones: at the start the residual is
    the plain sum of the task's own experts). `n_units = n_tasks + shared_unit`, the
    shared unit last.

    Args:
        n_tasks: int, number of task-specific fusion units `K`.
        native_experts: int, default `1`. Experts `m` owned by each task.
        shared_unit: bool, default `False`. Add the shared fusion unit.
        kernel_initializer: initializer or None (default) for the gates: None is
            torch's `U(+-1/sqrt(input_dim))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `[unit_inputs, experts]`: `unit_inputs` `(batch_size, n_units, input_dim)`
        (unit `u` gates on `[:, u]`) or `(batch_size, input_dim)` (every unit gates on
        it); `experts` `(batch_size, n_tasks * native_experts + N, units)`.

    Output shape:
        `(batch_size, n_units, units)`: the task units' outputs in task order, then
        the shared unit's.

    Example:

    ```python
    fusion = mlora_tf.layers.AdaTTFusion(n_tasks=6, shared_unit=True)
    f = fusion([keras.random.normal((8, 113)),        # the first level gates on x
                keras.random.normal((8, 6 + 4, 256))])  # 6 native + 4 shared experts
    # (8, 7, 256)
    ```

    References:
        - Li et al., "AdaTT: Adaptive Task-to-Task Fusion Network for Multitask
          Learning in Recommendations", KDD 2023, arXiv:2304.04959.
    """

    def __init__(
        self,
        n_tasks: int,
        native_experts: int = 1,
        shared_unit: bool = False,
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_tasks = _utils.check_positive_int("n_tasks", n_tasks)
        self.native_experts = _utils.check_positive_int("native_experts", native_experts)
        if not isinstance(shared_unit, bool):
            raise ValueError(f"`shared_unit` must be a bool. Received: shared_unit={shared_unit!r}")
        self.shared_unit = shared_unit
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    @property
    def n_units(self) -> int:
        return self.n_tasks + int(self.shared_unit)

    def build(self, input_shape: Any) -> None:
        ok = (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and all(isinstance(s, (list, tuple)) for s in input_shape)
            and (len(input_shape[0]) == 2 or (len(input_shape[0]) == 3 and input_shape[0][1] == self.n_units))
            and len(input_shape[1]) == 3
            and input_shape[0][-1] is not None
            and input_shape[1][1] is not None
        )
        if not ok:
            raise ValueError(
                "`AdaTTFusion` expects `[unit_inputs, experts]` of shapes `(batch_size, n_units, input_dim)` "
                f"(n_units={self.n_units}) or `(batch_size, input_dim)`, and `(batch_size, num_experts, units)`. "
                f"Received: input_shape={input_shape}"
            )
        input_dim, num_experts = int(input_shape[0][-1]), int(input_shape[1][1])
        native = self.n_tasks * self.native_experts
        if num_experts < native:
            raise ValueError(
                f"The experts must start with n_tasks * native_experts = {native} native experts. "
                f"Received: {num_experts} experts"
            )
        self.num_experts = num_experts
        self.num_shared = num_experts - native
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(self.n_units, input_dim, num_experts),
            initializer=_utils.resolve_initializer(self.kernel_initializer, _utils.torch_uniform(input_dim)),
        )
        self.gate_bias = self.add_weight(
            name="gate_bias",
            shape=(self.n_units, num_experts),
            initializer=_utils.resolve_initializer(self.bias_initializer, _utils.torch_uniform(input_dim), 1),
        )
        self.native_weights = self.add_weight(
            name="native_weights", shape=(self.n_tasks, self.native_experts), initializer="ones"
        )
        self.built = True

    def gate_weights(self, unit_inputs: Any) -> Any:
        """Softmax weights over all experts, `(batch_size, n_units, num_experts)`."""
        if len(unit_inputs.shape) == 2:
            logits = ops.einsum("bi,uie->bue", unit_inputs, self.gate_kernel)
        else:
            logits = ops.einsum("bui,uie->bue", unit_inputs, self.gate_kernel)
        return _utils.softmax(logits + self.gate_bias)

    def call(self, inputs: Any) -> Any:
        unit_inputs, experts = inputs
        fused = ops.einsum("bue,bed->bud", self.gate_weights(unit_inputs), experts)
        units = ops.shape(experts)[-1]
        native = ops.reshape(
            experts[:, : self.n_tasks * self.native_experts], (-1, self.n_tasks, self.native_experts, units)
        )
        residual = ops.einsum("bkjd,kj->bkd", native, self.native_weights)
        if self.shared_unit:
            residual = ops.concatenate([residual, ops.zeros_like(residual[:, :1])], axis=1)
        return fused + residual

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[1][0], self.n_units, input_shape[1][-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "n_tasks": self.n_tasks,
                "native_experts": self.native_experts,
                "shared_unit": self.shared_unit,
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config
