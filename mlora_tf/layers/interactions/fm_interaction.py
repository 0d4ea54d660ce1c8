"""Factorization-machine second-order interaction (DeepFM's FM part)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank


@mlora_export("mlora_tf.layers.FMInteraction")
class FMInteraction(keras.layers.Layer):
    """Second-order factorization-machine term over stacked field embeddings.

    For field embeddings $e_1, \\dots, e_F \\in \\mathbb{R}^d$ this computes the
    sum of all pairwise inner products with the $O(Fd)$ identity

    $$
    y = \\frac{1}{2} \\sum_{k=1}^{d} \\Big[ \\big(\\sum_{i} e_{ik}\\big)^2
        - \\sum_{i} e_{ik}^2 \\Big] = \\sum_{i<j} \\langle e_i, e_j \\rangle .
    $$

    The layer has no weights.

    Args:
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, embedding_dim)`.

    Output shape:
        `(batch_size, 1)`.

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    logit = mlora_tf.layers.FMInteraction()(embeddings)  # (32, 1)
    ```

    References:
        - [Rendle, 2010](https://ieeexplore.ieee.org/document/5694074)
        - [Guo et al., 2017](https://arxiv.org/abs/1703.04247)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "FMInteraction",
            "inputs of shape `(batch_size, num_fields, embedding_dim)`",
        )
        self.built = True

    def call(self, inputs: Any) -> Any:
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_square = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * ops.sum(square_of_sum - sum_of_square, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], 1)

    def get_config(self) -> dict[str, Any]:
        return super().get_config()
