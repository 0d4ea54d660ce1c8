"""Bi-interaction pooling (NFM)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank


@mlora_export("mlora_tf.layers.BiInteractionPooling")
class BiInteractionPooling(keras.layers.Layer):
    """Bi-interaction pooling of stacked field embeddings (NFM).

    Elementwise sum of all pairwise products of field embeddings:

    $$
    y = \\frac{1}{2} \\Big[ \\big(\\sum_{i} e_i\\big)^2 - \\sum_{i} e_i^2 \\Big]
      = \\sum_{i<j} e_i \\odot e_j ,
    $$

    with squares taken elementwise. The result is returned flat, i.e. the
    `(batch_size, 1, embedding_dim)` tensor of the original is flattened.
    The layer has no weights.

    Args:
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, embedding_dim)`.

    Output shape:
        `(batch_size, embedding_dim)`.

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    pooled = mlora_tf.layers.BiInteractionPooling()(embeddings)  # (32, 8)
    ```

    References:
        - [He and Chua, 2017](https://arxiv.org/abs/1708.05027)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "BiInteractionPooling",
            "inputs of shape `(batch_size, num_fields, embedding_dim)`",
        )
        self.built = True

    def call(self, inputs: Any) -> Any:
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_square = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * (square_of_sum - sum_of_square)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return super().get_config()
