"""Bilinear field-pair interaction (FiBiNET)."""

from __future__ import annotations

import itertools
from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank, clone_initializer

_BILINEAR_TYPES = ("all", "each", "interaction")


@mlora_export("mlora_tf.layers.BilinearInteraction")
class BilinearInteraction(keras.layers.Layer):
    """FiBiNET bilinear interaction of all field pairs.

    For pairs $(i, j)$, $i < j$, in the order
    $(0,1), (0,2), \\dots, (0,F-1), (1,2), \\dots$:

    $$
    p_{ij} = (v_i W) \\odot v_j ,
    $$

    where $W \\in \\mathbb{R}^{d \\times d}$ is

    - `"all"`: one matrix shared by every pair (`kernel`);
    - `"each"`: one matrix per left field $i$, $W = W_i$, for
      $i = 0, \\dots, F-2$ (`kernel_{i}`; the last field is never a left
      field, so it has none);
    - `"interaction"`: one matrix per pair, $W = W_{ij}$ (`kernel_{i}_{j}`).

    Each matrix is a separate 2-D weight with its own copy of
    `kernel_initializer` (so glorot fans are $d, d$; with an integer seed
    all matrices start equal, as in the original).

    Args:
        bilinear_type: string, one of `"all"`, `"each"`, `"interaction"`.
            Defaults to `"interaction"`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"glorot_normal"`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, embedding_dim)`, `num_fields >= 2`.

    Output shape:
        `(batch_size, num_pairs, embedding_dim)` with
        `num_pairs = num_fields * (num_fields - 1) / 2`.

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    pairs = mlora_tf.layers.BilinearInteraction()(embeddings)  # (32, 3, 8)
    ```

    References:
        - [Huang et al., 2019](https://arxiv.org/abs/1905.09433)
    """

    def __init__(
        self,
        bilinear_type: str = "interaction",
        kernel_initializer: str | keras.initializers.Initializer = "glorot_normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bilinear_type not in _BILINEAR_TYPES:
            raise ValueError(
                f"`bilinear_type` should be one of {_BILINEAR_TYPES}. "
                f"Received: bilinear_type={bilinear_type!r}"
            )
        self.bilinear_type = bilinear_type
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "BilinearInteraction",
            "inputs of shape `(batch_size, num_fields, embedding_dim)`",
        )
        num_fields, embedding_dim = input_shape[1], input_shape[2]
        if num_fields is None or embedding_dim is None or num_fields < 2:
            raise ValueError(
                "`BilinearInteraction` needs known `num_fields >= 2` and "
                f"`embedding_dim`. Received: input_shape={input_shape}"
            )
        self._pairs = list(itertools.combinations(range(num_fields), 2))
        self._left = [i for i, _ in self._pairs]
        self._right = [j for _, j in self._pairs]
        shape = (embedding_dim, embedding_dim)

        def make(name: str) -> Any:
            return self.add_weight(
                name=name, shape=shape,
                initializer=clone_initializer(self.kernel_initializer),
            )

        if self.bilinear_type == "all":
            self.kernels = [make("kernel")]
        elif self.bilinear_type == "each":
            self.kernels = [make(f"kernel_{i}") for i in range(num_fields - 1)]
        else:
            self.kernels = [make(f"kernel_{i}_{j}") for i, j in self._pairs]
        self.built = True

    def call(self, inputs: Any) -> Any:
        right = ops.take(inputs, self._right, axis=1)  # (B, P, d)
        if self.bilinear_type == "all":
            projected = ops.take(ops.matmul(inputs, self.kernels[0]), self._left, axis=1)
        elif self.bilinear_type == "each":
            num_left = len(self.kernels)
            kernels = ops.stack(  # (F-1, d, d)
                [kernel.value for kernel in self.kernels], axis=0
            )
            projected = ops.einsum("bfd,fde->bfe", inputs[:, :num_left, :], kernels)
            projected = ops.take(projected, self._left, axis=1)
        else:
            kernels = ops.stack(  # (P, d, d)
                [kernel.value for kernel in self.kernels], axis=0
            )
            left = ops.take(inputs, self._left, axis=1)
            projected = ops.einsum("bpd,pde->bpe", left, kernels)
        return projected * right

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        num_fields = input_shape[1]
        return (input_shape[0], num_fields * (num_fields - 1) // 2, input_shape[2])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "bilinear_type": self.bilinear_type,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
