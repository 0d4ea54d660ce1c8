"""Domain-specific dense layer (STAR auxiliary network)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_domain_inputs, clone_initializer


@mlora_export("mlora_tf.layers.AuxiliaryNet")
class AuxiliaryNet(keras.layers.Layer):
    """STAR auxiliary network: one dense layer per domain.

    Inputs are `[x, mixture]` where `mixture` holds each row's domain as a
    one-hot vector. Row $b$ of domain $k$ computes

    $$
    y_b = \\sigma\\big(x_b W_k + b_k\\big),
    $$

    with `kernel` $(D, \\text{in}, \\text{units})$ and `bias`
    $(D, \\text{units})$. All domains are computed in one einsum and each
    row's result is selected through `mixture`, so a batch may mix domains.
    Keras glorot fans for the 3-D kernel are multiplied by `num_domains`
    (limit $\\sqrt{6 / (D(\\text{in} + \\text{units}))}$), as in the
    original. `num_domains` is the last dimension of `mixture`.

    Args:
        units: int. Output width (STAR's `auxiliary_dim`). Must be positive.
        activation: string or callable. Defaults to `"relu"`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"glorot_uniform"`.
        bias_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"zeros"`.
        kernel_regularizer: string, `keras.regularizers.Regularizer` or
            `None`. Defaults to `None`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `[(batch_size, input_dim), (batch_size, num_domains)]`.

    Output shape:
        `(batch_size, units)`.

    Example:

    ```python
    x = keras.random.normal((32, 384))
    mixture = keras.ops.one_hot(keras.random.randint((32,), 0, 3), 3)
    y = mlora_tf.layers.AuxiliaryNet(64)([x, mixture])  # (32, 64)
    ```

    References:
        - [Sheng et al., 2021](https://arxiv.org/abs/2101.11427)
    """

    def __init__(
        self,
        units: int,
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_regularizer: str | None | keras.regularizers.Regularizer = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                f"`units` should be a positive integer. Received: units={units}"
            )
        self.units = units
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape: Any) -> None:
        input_dim, num_domains = check_domain_inputs(input_shape, "AuxiliaryNet")
        self.num_domains = num_domains
        self.kernel = self.add_weight(
            name="kernel",
            shape=(num_domains, input_dim, self.units),
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(num_domains, self.units),
            initializer=clone_initializer(self.bias_initializer),
        )
        self.built = True

    def call(self, inputs: Any) -> Any:
        x, mixture = inputs
        mixture = ops.cast(mixture, x.dtype)
        per_domain = ops.einsum("bi,diu->bdu", x, self.kernel)  # (B, D, units)
        outputs = ops.einsum("bdu,bd->bu", per_domain, mixture)
        outputs = outputs + ops.matmul(mixture, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0][0], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config
