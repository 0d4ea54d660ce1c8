"""Domain-specific dense layer (STAR auxiliary network)."""

from __future__ import annotations

from typing import Any


from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions.star_fcn import StarFCN


@mlora_export("mlora_tf.layers.AuxiliaryNet")
class AuxiliaryNet(StarFCN):
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

    def __init__(self, units: int, **kwargs: Any) -> None:
        kwargs.pop("shared", None)
        super().__init__(units, shared=False, **kwargs)

    @property
    def kernel(self):
        return self.domain_kernel

    @property
    def bias(self):
        return self.domain_bias

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("shared")
        return config
