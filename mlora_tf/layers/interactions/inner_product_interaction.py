"""Pairwise inner products of field embeddings (PNN)."""

from __future__ import annotations

import itertools
from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank


@mlora_export("mlora_tf.layers.InnerProductInteraction")
class InnerProductInteraction(keras.layers.Layer):
    """Inner products of all field pairs (the inner-product part of PNN).

    For fields $e_1, \\dots, e_F$ and pairs $(i, j)$, $i < j$, in the order
    $(0,1), (0,2), \\dots, (0,F-1), (1,2), \\dots$:

    $$
    p_{ij} = \\langle e_i, e_j \\rangle = \\sum_k e_{ik} e_{jk}
    $$

    With `reduce_sum=False` the elementwise products $e_i \\odot e_j$ are
    returned instead. The layer has no weights.

    Args:
        reduce_sum: bool. Whether to sum each product over the embedding
            axis. Defaults to `True`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, embedding_dim)`, `num_fields >= 2`.

    Output shape:
        `(batch_size, num_pairs)` if `reduce_sum`, else
        `(batch_size, num_pairs, embedding_dim)`, with
        `num_pairs = num_fields * (num_fields - 1) / 2`.

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    products = mlora_tf.layers.InnerProductInteraction()(embeddings)  # (32, 3)
    ```

    References:
        - [Qu et al., 2016](https://arxiv.org/abs/1611.00144)
    """

    def __init__(self, reduce_sum: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(reduce_sum, bool):
            raise ValueError(
                f"`reduce_sum` should be a bool. Received: reduce_sum={reduce_sum}"
            )
        self.reduce_sum = reduce_sum

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "InnerProductInteraction",
            "inputs of shape `(batch_size, num_fields, embedding_dim)`",
        )
        num_fields = input_shape[1]
        if num_fields is None or num_fields < 2:
            raise ValueError(
                "`InnerProductInteraction` needs a known `num_fields >= 2`. "
                f"Received: input_shape={input_shape}"
            )
        pairs = list(itertools.combinations(range(num_fields), 2))
        self._left = [i for i, _ in pairs]
        self._right = [j for _, j in pairs]
        self.built = True

    def call(self, inputs: Any) -> Any:
        left = ops.take(inputs, self._left, axis=1)
        right = ops.take(inputs, self._right, axis=1)
        products = left * right
        if self.reduce_sum:
            return ops.sum(products, axis=-1)
        return products

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        num_fields = input_shape[1]
        num_pairs = num_fields * (num_fields - 1) // 2
        if self.reduce_sum:
            return (input_shape[0], num_pairs)
        return (input_shape[0], num_pairs, input_shape[2])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"reduce_sum": self.reduce_sum})
        return config
