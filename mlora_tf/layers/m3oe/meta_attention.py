"""M2M's meta attention: per-task, scenario-conditioned attention over the experts."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils
from mlora_tf.layers.m3oe.meta_unit import MetaUnit


@mlora_export("mlora_tf.layers.MetaAttention")
class MetaAttention(keras.layers.Layer):
    """Task views and the meta attention module of M2M.

    Each task `t` has a task view `T_t = ReLU(e_t W_T + b_T)` from a learned task
    embedding `e_t` (M2M's task-view representation). With `E_i` the expert views
    and `z` the row's scenario representation, the task's representation is the
    attention-weighted sum of the experts, scored by a meta unit on each
    (expert, task) pair (Zhang et al. 2022, "Meta Attention Module"):

    $$
    a_{t,i} = v^\\top \\mathrm{Meta}\\big([E_i ; T_t];\\ z\\big), \\qquad
    \\alpha_{t,i} = \\mathrm{softmax}_i(a_{t,i}), \\qquad
    R_t = \\sum_i \\alpha_{t,i} E_i
    $$

    `Meta` is a `MetaUnit(attention_units)` (ReLU), so the attention itself is
    scenario specific: the same experts are weighted differently in each domain.
    Every row uses its own `z` only, so a batch may mix domains.

    Weights: `task_embedding` `(n_tasks, task_embedding_dim)` (`N(0, 1)`, torch's
    `nn.Embedding` default), `task_kernel` `(task_embedding_dim, units)` and
    `task_bias` `(units,)` (torch's `U(+-1/sqrt(task_embedding_dim))`), the meta
    unit's weights (sub-layer `meta_unit`, input `2 * units`), `score_kernel`
    `(attention_units,)` (`U(+-1/sqrt(attention_units))`).

    Args:
        n_tasks: int, number of tasks `T`.
        attention_units: int, default `16`. Output width of the scoring meta unit.
        task_embedding_dim: int, default `16`. Size of each task embedding `e_t`.
        **kwargs: base-layer arguments.

    Input shape:
        `[experts, z]`: `(batch_size, num_experts, units)` and `(batch_size,
        scenario_dim)`.

    Output shape:
        `(batch_size, n_tasks, units)`: `R_t`.

    Example:

    ```python
    attention = mlora_tf.layers.MetaAttention(n_tasks=2)
    r = attention([keras.random.normal((8, 4, 64)), keras.random.normal((8, 16))])
    # (8, 2, 64)
    ```

    References:
        - Zhang et al., "Leaving No One Behind: A Multi-Scenario Multi-Task Meta
          Learning Approach for Advertiser Modeling", WSDM 2022, arXiv:2201.06814.
    """

    def __init__(
        self,
        n_tasks: int,
        attention_units: int = 16,
        task_embedding_dim: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_tasks = _utils.check_positive_int("n_tasks", n_tasks)
        self.attention_units = _utils.check_positive_int("attention_units", attention_units)
        self.task_embedding_dim = _utils.check_positive_int("task_embedding_dim", task_embedding_dim)

    def build(self, input_shape: Any) -> None:
        ok = (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and all(isinstance(s, (list, tuple)) for s in input_shape)
            and len(input_shape[0]) == 3
            and len(input_shape[1]) == 2
            and None not in (input_shape[0][1], input_shape[0][2], input_shape[1][1])
        )
        if not ok:
            raise ValueError(
                "`MetaAttention` expects `[experts, z]` of shapes `(batch_size, num_experts, units)` and "
                f"`(batch_size, scenario_dim)`. Received: input_shape={input_shape}"
            )
        num_experts, units = int(input_shape[0][1]), int(input_shape[0][2])
        scenario_dim = int(input_shape[1][1])
        self.num_experts, self.units = num_experts, units
        self.task_embedding = self.add_weight(
            name="task_embedding",
            shape=(self.n_tasks, self.task_embedding_dim),
            initializer=keras.initializers.RandomNormal(0.0, 1.0),
        )
        self.task_kernel = self.add_weight(
            name="task_kernel",
            shape=(self.task_embedding_dim, units),
            initializer=_utils.torch_uniform(self.task_embedding_dim),
        )
        self.task_bias = self.add_weight(
            name="task_bias", shape=(units,), initializer=_utils.torch_uniform(self.task_embedding_dim)
        )
        self.meta_unit = MetaUnit(self.attention_units, activation="relu", dtype=self.dtype_policy, name="meta_unit")
        self.meta_unit.build([(None, self.n_tasks, num_experts, 2 * units), (None, scenario_dim)])
        self.score_kernel = self.add_weight(
            name="score_kernel", shape=(self.attention_units,), initializer=_utils.torch_uniform(self.attention_units)
        )
        self.built = True

    def task_views(self) -> Any:
        """`T_t` for every task, `(n_tasks, units)`."""
        return ops.relu(ops.matmul(self.task_embedding, self.task_kernel) + self.task_bias)

    def attention_weights(self, experts: Any, z: Any) -> Any:
        """`alpha`, `(batch_size, n_tasks, num_experts)`."""
        shape = (ops.shape(experts)[0], self.n_tasks, self.num_experts, self.units)
        expert_part = ops.broadcast_to(experts[:, None, :, :], shape)
        task_part = ops.broadcast_to(self.task_views()[None, :, None, :], shape)
        pairs = ops.concatenate([expert_part, task_part], axis=-1)  # (B, T, n, 2 units)
        scores = ops.einsum("btnh,h->btn", self.meta_unit([pairs, z]), self.score_kernel)
        return _utils.softmax(scores)

    def call(self, inputs: Any) -> Any:
        experts, z = inputs
        return ops.einsum("btn,bnu->btu", self.attention_weights(experts, z), experts)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0][0], self.n_tasks, input_shape[0][2])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "n_tasks": self.n_tasks,
                "attention_units": self.attention_units,
                "task_embedding_dim": self.task_embedding_dim,
            }
        )
        return config
