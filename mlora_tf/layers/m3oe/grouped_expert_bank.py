"""Groups of LN-MLP experts, each group on its own input."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.GroupedExpertBank")
class GroupedExpertBank(keras.layers.Layer):
    """`num_groups` groups of `experts_per_group` Linear -> LayerNorm -> ReLU experts,
    group `g` reading its own input row `h_g`.

    $$
    E_{g,j}(h_g) = \\mathrm{act}\\big(\\mathrm{LN}_{g,j}(h_g W_{g,j} + b_{g,j})\\big),
    \\qquad g < G,\\ j < m
    $$

    `ExpertBank` runs every expert on one input; here each group has its own, as in
    AdaTT, whose task-specific experts at fusion level `l` read their own task's
    fusion output of level `l - 1` (Li et al. 2023, its fusion units). An input of shape
    `(batch_size, input_dim)` is read by every group (AdaTT's first level, where
    every task's input is the embedding vector `x`).

    Weights: `kernel` `(num_groups, experts_per_group, input_dim, units)`, `bias`
    `(num_groups, experts_per_group, units)` (both torch's `U(+-1/sqrt(input_dim))`
    by default), LayerNorm `gamma` (ones) and `beta` (zeros), like `bias`; LayerNorm
    epsilon `1e-5` (torch).

    Args:
        num_groups: int, number of groups `G`.
        experts_per_group: int, default `1`. Experts `m` of each group.
        units: int, default `64`. Output width of each expert.
        epsilon: float, default `1e-5`. LayerNorm epsilon.
        activation: string or callable, default `"relu"`.
        kernel_initializer: initializer or None (default): None is torch's
            `U(+-1/sqrt(input_dim))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `(batch_size, num_groups, input_dim)` (group `g` reads `[:, g]`) or
        `(batch_size, input_dim)` (every group reads it).

    Output shape:
        `(batch_size, num_groups * experts_per_group, units)`: expert `g * m + j` is
        group `g`'s `j`-th.

    Example:

    ```python
    bank = mlora_tf.layers.GroupedExpertBank(num_groups=6, experts_per_group=2, units=64)
    experts = bank(keras.random.normal((32, 6, 256)))  # (32, 12, 64)
    ```

    References:
        - Li et al., "AdaTT: Adaptive Task-to-Task Fusion Network for Multitask
          Learning in Recommendations", KDD 2023, arXiv:2304.04959.
    """

    def __init__(
        self,
        num_groups: int,
        experts_per_group: int = 1,
        units: int = 64,
        epsilon: float = _utils.TORCH_LAYER_NORM_EPSILON,
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_groups = _utils.check_positive_int("num_groups", num_groups)
        self.experts_per_group = _utils.check_positive_int("experts_per_group", experts_per_group)
        self.units = _utils.check_positive_int("units", units)
        self.epsilon = _utils.check_epsilon(epsilon)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    @property
    def num_experts(self) -> int:
        return self.num_groups * self.experts_per_group

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape) if input_shape is not None else None
        valid = shape is not None and shape[-1] is not None and (
            len(shape) == 2 or (len(shape) == 3 and shape[1] == self.num_groups)
        )
        if not valid:
            raise ValueError(
                "`GroupedExpertBank` expects an input of shape `(batch_size, num_groups, input_dim)` "
                f"with num_groups={self.num_groups}, or `(batch_size, input_dim)`, with a known "
                f"`input_dim`. Received: input_shape={input_shape}"
            )
        input_dim = int(shape[-1])
        groups, per_group = self.num_groups, self.experts_per_group
        self.kernel = self.add_weight(
            name="kernel",
            shape=(groups, per_group, input_dim, self.units),
            initializer=_utils.resolve_initializer(self.kernel_initializer, _utils.torch_uniform(input_dim)),
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(groups, per_group, self.units),
            initializer=_utils.resolve_initializer(self.bias_initializer, _utils.torch_uniform(input_dim), 1),
        )
        self.gamma = self.add_weight(name="gamma", shape=(groups, per_group, self.units), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(groups, per_group, self.units), initializer="zeros")
        self.built = True

    def call(self, inputs: Any) -> Any:
        if len(inputs.shape) == 2:
            z = ops.einsum("bi,gmiu->bgmu", inputs, self.kernel)
        else:
            z = ops.einsum("bgi,gmiu->bgmu", inputs, self.kernel)
        out = self.activation(_utils.layer_norm(z + self.bias, self.gamma, self.beta, self.epsilon))
        return ops.reshape(out, (-1, self.num_experts, self.units))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], self.num_experts, self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_groups": self.num_groups,
                "experts_per_group": self.experts_per_group,
                "units": self.units,
                "epsilon": self.epsilon,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config
