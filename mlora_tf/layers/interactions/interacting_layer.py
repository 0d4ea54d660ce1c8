"""Multi-head self-attention over fields (AutoInt interacting layer)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank, clone_initializer


def _check_positive_int(value: Any, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{name}` should be a positive integer. Received: {name}={value}"
        )


@mlora_export("mlora_tf.layers.InteractingLayer")
class InteractingLayer(keras.layers.Layer):
    """AutoInt interacting layer: multi-head self-attention across fields.

    For input $X \\in \\mathbb{R}^{F \\times d_{in}}$ (per example) and heads
    $h = 1, \\dots, H$ of size $a$ = `att_embedding_size`:

    $$
    Q = XW_Q,\\; K = XW_K,\\; V = XW_V \\in \\mathbb{R}^{F \\times Ha},
    \\qquad
    O_h = \\operatorname{softmax}\\!\\Big(\\frac{Q_h K_h^\\top}{s}\\Big) V_h ,
    $$

    with the softmax over the key axis, $s = \\sqrt{a}$ if `scaling` else
    $1$, and $Q_h$ the columns $[ha, (h+1)a)$ of $Q$. The heads are
    concatenated in order and

    $$
    Y = \\operatorname{ReLU}\\big([O_1 \\dots O_H] + XW_{Res}\\big),
    $$

    where the residual term is only present if `use_res`.

    Each kernel gets its own copy of `kernel_initializer`. If it has an
    integer seed $s_0$, $W_Q$, $W_K$, $W_V$, $W_{Res}$ use seeds $s_0$,
    $s_0 + 1$, $s_0 + 2$, $s_0$ (so $W_{Res}$ starts equal to $W_Q$, as in
    the original).

    Args:
        att_embedding_size: int. Size $a$ of each attention head.
            Defaults to `8`.
        head_num: int. Number of heads $H$. Defaults to `2`.
        use_res: bool. Whether to add the residual projection $XW_{Res}$.
            Defaults to `True`.
        scaling: bool. Whether to divide the scores by $\\sqrt{a}$.
            Defaults to `False`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"truncated_normal"`, i.e.
            `keras.initializers.TruncatedNormal(mean=0.0, stddev=0.05)`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, input_dim)`.

    Output shape:
        `(batch_size, num_fields, att_embedding_size * head_num)`.

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    layer = mlora_tf.layers.InteractingLayer(att_embedding_size=8, head_num=4)
    y = layer(embeddings)  # (32, 3, 32)
    ```

    References:
        - [Song et al., 2019](https://arxiv.org/abs/1810.11921)
    """

    def __init__(
        self,
        att_embedding_size: int = 8,
        head_num: int = 2,
        use_res: bool = True,
        scaling: bool = False,
        kernel_initializer: str | keras.initializers.Initializer = "truncated_normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_positive_int(att_embedding_size, "att_embedding_size")
        _check_positive_int(head_num, "head_num")
        if not isinstance(use_res, bool):
            raise ValueError(f"`use_res` should be a bool. Received: use_res={use_res}")
        if not isinstance(scaling, bool):
            raise ValueError(f"`scaling` should be a bool. Received: scaling={scaling}")
        self.att_embedding_size = att_embedding_size
        self.head_num = head_num
        self.use_res = use_res
        self.scaling = scaling
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "InteractingLayer",
            "inputs of shape `(batch_size, num_fields, input_dim)`",
        )
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "`InteractingLayer` needs a known last dimension. "
                f"Received: input_shape={input_shape}"
            )
        shape = (input_dim, self.att_embedding_size * self.head_num)
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=shape,
            initializer=clone_initializer(self.kernel_initializer, 0),
        )
        self.key_kernel = self.add_weight(
            name="key_kernel", shape=shape,
            initializer=clone_initializer(self.kernel_initializer, 1),
        )
        self.value_kernel = self.add_weight(
            name="value_kernel", shape=shape,
            initializer=clone_initializer(self.kernel_initializer, 2),
        )
        if self.use_res:
            self.residual_kernel = self.add_weight(
                name="residual_kernel", shape=shape,
                initializer=clone_initializer(self.kernel_initializer, 0),
            )
        self.built = True

    def call(self, inputs: Any) -> Any:
        # The attention as broadcast products summed over the small axes: with a
        # handful of fields, (F x a) by (a x F) batched matmuls per row and head
        # cost more in per-matrix overhead (forward and backward) than these
        # elementwise ops.
        num_fields, input_dim = inputs.shape[1], inputs.shape[-1]
        heads, size = self.head_num, self.att_embedding_size
        rows = ops.reshape(inputs, (-1, input_dim))

        def project(kernel):  # (B, F, H, a); head h holds columns [h*a, (h+1)*a)
            return ops.reshape(ops.matmul(rows, kernel), (-1, num_fields, heads, size))

        query, key, value = project(self.query_kernel), project(self.key_kernel), project(self.value_kernel)
        # scores[b, i, j, h] = <Q_h[i], K_h[j]>; softmax over the key fields j.
        scores = ops.sum(ops.expand_dims(query, 2) * ops.expand_dims(key, 1), axis=-1)
        if self.scaling:
            scores = scores / math.sqrt(size)
        weights = ops.softmax(scores, axis=2)
        # outputs[b, i, h, :] = sum_j weights[b, i, j, h] V_h[j]
        outputs = ops.sum(ops.expand_dims(weights, -1) * ops.expand_dims(value, 1), axis=2)
        outputs = ops.reshape(outputs, (-1, num_fields, heads * size))
        if self.use_res:
            outputs = outputs + ops.reshape(ops.matmul(rows, self.residual_kernel), (-1, num_fields, heads * size))
        return ops.relu(outputs)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (
            input_shape[0],
            input_shape[1],
            self.att_embedding_size * self.head_num,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "att_embedding_size": self.att_embedding_size,
                "head_num": self.head_num,
                "use_res": self.use_res,
                "scaling": self.scaling,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
