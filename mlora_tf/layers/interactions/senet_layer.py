"""Squeeze-and-excitation reweighting of fields (FiBiNET)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank, clone_initializer


@mlora_export("mlora_tf.layers.SENETLayer")
class SENETLayer(keras.layers.Layer):
    """FiBiNET's SENET layer: learns one weight per field and rescales it.

    Squeeze each field to its mean, excite through two bias-free ReLU
    layers, and reweight:

    $$
    z_i = \\frac{1}{d} \\sum_{k=1}^{d} e_{ik}, \\qquad
    a = \\operatorname{ReLU}\\big(\\operatorname{ReLU}(z W_1) W_2\\big), \\qquad
    v_i = a_i \\, e_i ,
    $$

    with $W_1 \\in \\mathbb{R}^{F \\times r}$, $W_2 \\in \\mathbb{R}^{r \\times F}$
    and $r = \\max(1, \\lfloor F / \\text{reduction\\_ratio} \\rfloor)$. Each
    kernel gets its own copy of `kernel_initializer` (with an integer seed
    both use the same seed, as in the original).

    Args:
        reduction_ratio: int. Ratio $F / r$ of the bottleneck.
            Defaults to `3`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"glorot_normal"`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, embedding_dim)`.

    Output shape:
        `(batch_size, num_fields, embedding_dim)`.

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    reweighted = mlora_tf.layers.SENETLayer(reduction_ratio=3)(embeddings)
    ```

    References:
        - [Huang et al., 2019](https://arxiv.org/abs/1905.09433)
        - [Hu et al., 2018](https://arxiv.org/abs/1709.01507)
    """

    def __init__(
        self,
        reduction_ratio: int = 3,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(reduction_ratio, int)
            or isinstance(reduction_ratio, bool)
            or reduction_ratio < 1
        ):
            raise ValueError(
                "`reduction_ratio` should be a positive integer. "
                f"Received: reduction_ratio={reduction_ratio}"
            )
        self.reduction_ratio = reduction_ratio
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "SENETLayer",
            "inputs of shape `(batch_size, num_fields, embedding_dim)`",
        )
        num_fields = input_shape[1]
        if num_fields is None:
            raise ValueError(
                "`SENETLayer` needs a known `num_fields`. "
                f"Received: input_shape={input_shape}"
            )
        self.reduction_size = max(1, num_fields // self.reduction_ratio)
        self.squeeze_kernel = self.add_weight(
            name="squeeze_kernel",
            shape=(num_fields, self.reduction_size),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.excitation_kernel = self.add_weight(
            name="excitation_kernel",
            shape=(self.reduction_size, num_fields),
            initializer=clone_initializer(self.kernel_initializer),
        )
        self.built = True

    def call(self, inputs: Any) -> Any:
        z = ops.mean(inputs, axis=-1)  # (B, F)
        a = ops.relu(ops.matmul(z, self.squeeze_kernel))
        a = ops.relu(ops.matmul(a, self.excitation_kernel))
        return inputs * ops.expand_dims(a, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "reduction_ratio": self.reduction_ratio,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
