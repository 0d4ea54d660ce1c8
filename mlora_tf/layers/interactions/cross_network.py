"""Cross network of DCN (vector parameterisation)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank, clone_initializer


@mlora_export("mlora_tf.layers.CrossNetwork")
class CrossNetwork(keras.layers.Layer):
    """Stack of DCN cross layers with vector weights.

    Starting from $x_0$, each of the `num_layers` cross layers computes

    $$
    x_{l+1} = x_0 \\, (x_l^\\top w_l) + b_l + x_l ,
    $$

    with $w_l, b_l \\in \\mathbb{R}^n$. Every kernel gets its own copy of
    `kernel_initializer` (with an integer seed, all kernels start equal, as
    in the original where every kernel used seed 1024).

    Args:
        num_layers: int. Number of cross layers. Defaults to `2`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Initializer of each $w_l$. Defaults to `"glorot_normal"`.
        bias_initializer: string or `keras.initializers.Initializer`.
            Initializer of each $b_l$. Defaults to `"zeros"`.
        kernel_regularizer: string, `keras.regularizers.Regularizer` or
            `None`. Regularizer of each $w_l$ (not the biases). Defaults to
            `None`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, input_dim)`.

    Output shape:
        `(batch_size, input_dim)`.

    Example:

    ```python
    x0 = keras.random.normal((32, 24))
    cross = mlora_tf.layers.CrossNetwork(
        num_layers=2, kernel_regularizer=keras.regularizers.L2(1e-5)
    )
    y = cross(x0)  # (32, 24)
    ```

    References:
        - [Wang et al., 2017](https://arxiv.org/abs/1708.05123)
    """

    def __init__(
        self,
        num_layers: int = 2,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_normal",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_regularizer: str | None | keras.regularizers.Regularizer = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(
                "`num_layers` should be a positive integer. "
                f"Received: num_layers={num_layers}"
            )
        self.num_layers = num_layers
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 2, "CrossNetwork", "inputs of shape `(batch_size, input_dim)`"
        )
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "`CrossNetwork` needs a known last dimension. "
                f"Received: input_shape={input_shape}"
            )
        self.kernels = []
        self.biases = []
        for i in range(self.num_layers):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{i}",
                    shape=(input_dim,),
                    initializer=clone_initializer(self.kernel_initializer),
                    regularizer=self.kernel_regularizer,
                )
            )
            self.biases.append(
                self.add_weight(
                    name=f"bias_{i}",
                    shape=(input_dim,),
                    initializer=clone_initializer(self.bias_initializer),
                )
            )
        self.built = True

    def call(self, inputs: Any) -> Any:
        x0 = inputs
        x = inputs
        for kernel, bias in zip(self.kernels, self.biases):
            scale = ops.sum(x * kernel, axis=-1, keepdims=True)
            x = x0 * scale + bias + x
        return x

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
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
