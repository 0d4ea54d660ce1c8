"""A bank of LN-MLP experts applied to one input, stacked on a new axis."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.ExpertBank")
class ExpertBank(keras.layers.Layer):
    """`num_experts` independent Linear -> LayerNorm -> ReLU experts on the same input.

    $$
    E_e(h) = \\mathrm{act}\\big(\\mathrm{LN}_e(h W_e + b_e)\\big), \\qquad e = 0..n-1
    $$

    M3oE has three banks on `h` (m3oe.md §2.1, rows 6-8): `N` shared experts, one
    domain expert per domain and one task expert per task, each `LN-MLP(256 -> 64)`.
    Every row goes through every expert (which expert matters is decided later, by
    gates and the fusion), so the bank is one einsum over stacked weights.

    Weights: `kernel` `(num_experts, input_dim, units)`, `bias` `(num_experts, units)`
    (both torch's `U(+-1/sqrt(input_dim))` by default), LayerNorm `gamma` (ones) and
    `beta` (zeros), `(num_experts, units)`; LayerNorm epsilon `1e-5` (torch).

    Args:
        num_experts: int, number of experts.
        units: int, default `64`. Output width of each expert.
        epsilon: float, default `1e-5`. LayerNorm epsilon.
        activation: string or callable, default `"relu"`.
        kernel_initializer: initializer or None (default): None is torch's
            `U(+-1/sqrt(input_dim))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `(batch_size, input_dim)`.

    Output shape:
        `(batch_size, num_experts, units)`.

    Example:

    ```python
    bank = mlora_tf.layers.ExpertBank(num_experts=4, units=64)
    experts = bank(keras.random.normal((32, 256)))  # (32, 4, 64)
    ```

    References:
        - Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
          Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        num_experts: int,
        units: int = 64,
        epsilon: float = _utils.TORCH_LAYER_NORM_EPSILON,
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_experts = _utils.check_positive_int("num_experts", num_experts)
        self.units = _utils.check_positive_int("units", units)
        self.epsilon = _utils.check_epsilon(epsilon)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    def build(self, input_shape: Any) -> None:
        if input_shape is None or len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "`ExpertBank` expects an input of shape `(batch_size, input_dim)` with a known "
                f"`input_dim`. Received: input_shape={input_shape}"
            )
        input_dim = int(input_shape[-1])
        shape = (self.num_experts, self.units)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_experts, input_dim, self.units),
            initializer=_utils.resolve_initializer(
                self.kernel_initializer, _utils.torch_uniform(input_dim)
            ),
        )
        self.bias = self.add_weight(
            name="bias",
            shape=shape,
            initializer=_utils.resolve_initializer(
                self.bias_initializer, _utils.torch_uniform(input_dim), 1
            ),
        )
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros")
        self.built = True

    def call(self, inputs: Any) -> Any:
        z = ops.einsum("bi,eiu->beu", inputs, self.kernel) + self.bias
        return self.activation(_utils.layer_norm(z, self.gamma, self.beta, self.epsilon))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], self.num_experts, self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_experts": self.num_experts,
                "units": self.units,
                "epsilon": self.epsilon,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config
