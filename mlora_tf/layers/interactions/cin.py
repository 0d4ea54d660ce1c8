"""Compressed interaction network (xDeepFM)."""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_rank, clone_initializer


@mlora_export("mlora_tf.layers.CIN")
class CIN(keras.layers.Layer):
    """xDeepFM's compressed interaction network.

    Let $X^0 \\in \\mathbb{R}^{m \\times d}$ be the field embeddings and
    $X^{k-1} \\in \\mathbb{R}^{H_{k-1} \\times d}$ the maps fed to layer $k$
    ($X^0$ itself for the first layer). Layer $k$ forms, for each embedding
    coordinate $c$, all products of base fields and previous maps, flattened
    base-field-major (row $i H_{k-1} + j$), and mixes them with a width-1
    convolution (a matmul) plus bias:

    $$
    Z^k_{iH_{k-1}+j,\\,c} = X^0_{i,c} X^{k-1}_{j,c}, \\qquad
    X^k_{h,c} = \\sigma\\Big(\\sum_{f} W^k_{f,h} Z^k_{f,c} + b^k_h\\Big),
    $$

    with $W^k \\in \\mathbb{R}^{m H_{k-1} \\times \\text{layer\\_size}[k]}$.
    With `split_half`, every layer but the last sends its first half of maps
    to the next layer and its second half to the output; the last layer (and
    every layer without `split_half`) sends all its maps to the output and,
    without `split_half`, also all of them to the next layer. The output maps
    are summed over the embedding axis and concatenated:
    $y = [\\sum_c X^k_{h,c}]_{k,h}$.

    Each kernel gets its own copy of `kernel_initializer`; with an integer
    seed $s_0$, layer $k$ (0-based) uses seed $s_0 + k$, as in the
    original.

    Args:
        layer_size: sequence of int. Number of maps of each layer.
            Defaults to `(128, 128)`.
        activation: string or callable. Activation $\\sigma$.
            Defaults to `"relu"`.
        split_half: bool. Whether to split the maps of every layer but the
            last between the next layer and the output. Requires every size
            but the last to be even. Defaults to `True`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"glorot_uniform"`.
        bias_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"zeros"`.
        kernel_regularizer: string, `keras.regularizers.Regularizer` or
            `None`. Regularizer of the kernels. Defaults to `None`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `(batch_size, num_fields, embedding_dim)`.

    Output shape:
        `(batch_size, output_dim)` with `output_dim = sum(layer_size[:-1]) / 2
        + layer_size[-1]` if `split_half`, else `sum(layer_size)`
        (192 for the default).

    Example:

    ```python
    embeddings = keras.random.normal((32, 3, 8))
    features = mlora_tf.layers.CIN(layer_size=(128, 128))(embeddings)  # (32, 192)
    ```

    References:
        - [Lian et al., 2018](https://arxiv.org/abs/1803.05170)
    """

    def __init__(
        self,
        layer_size: Sequence[int] = (128, 128),
        activation: str | Any = "relu",
        split_half: bool = True,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_regularizer: str | None | keras.regularizers.Regularizer = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(layer_size, int) or not layer_size:
            raise ValueError(
                "`layer_size` should be a non-empty sequence of positive "
                f"integers. Received: layer_size={layer_size}"
            )
        layer_size = tuple(layer_size)
        if any(
            not isinstance(size, int) or isinstance(size, bool) or size < 1
            for size in layer_size
        ):
            raise ValueError(
                "`layer_size` should be a non-empty sequence of positive "
                f"integers. Received: layer_size={layer_size}"
            )
        if not isinstance(split_half, bool):
            raise ValueError(
                f"`split_half` should be a bool. Received: split_half={split_half}"
            )
        if split_half and any(size % 2 for size in layer_size[:-1]):
            raise ValueError(
                "With `split_half=True`, every entry of `layer_size` but the "
                f"last should be even. Received: layer_size={layer_size}"
            )
        self.layer_size = layer_size
        self.activation = keras.activations.get(activation)
        self.split_half = split_half
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _widths(self) -> tuple[list[int], list[int]]:
        """Maps fed forward and sent to the output, per layer."""
        forward, direct = [], []
        last = len(self.layer_size) - 1
        for k, size in enumerate(self.layer_size):
            if self.split_half and k != last:
                forward.append(size // 2)
                direct.append(size // 2)
            else:
                forward.append(size)
                direct.append(size)
        return forward, direct

    def build(self, input_shape: Any) -> None:
        check_rank(
            input_shape, 3, "CIN",
            "inputs of shape `(batch_size, num_fields, embedding_dim)`",
        )
        num_fields = input_shape[1]
        if num_fields is None:
            raise ValueError(
                f"`CIN` needs a known `num_fields`. Received: input_shape={input_shape}"
            )
        forward, _ = self._widths()
        self.kernels = []
        self.biases = []
        previous = num_fields
        for k, size in enumerate(self.layer_size):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{k}",
                    shape=(num_fields * previous, size),
                    initializer=clone_initializer(self.kernel_initializer, k),
                    regularizer=self.kernel_regularizer,
                )
            )
            self.biases.append(
                self.add_weight(
                    name=f"bias_{k}",
                    shape=(size,),
                    initializer=clone_initializer(self.bias_initializer),
                )
            )
            previous = forward[k]
        self.built = True

    def call(self, inputs: Any) -> Any:
        # Embedding-coordinate-major layout: every (row, coordinate) pair is one row
        # of a 2-D matrix, so the width-1 convolution is a single matmul and no
        # batched einsum (with its transposes, forward and backward) is needed.
        num_fields = inputs.shape[1]
        embedding_dim = ops.shape(inputs)[2]
        base = ops.reshape(ops.transpose(inputs, (0, 2, 1)), (-1, num_fields))  # (B*d, m)
        last = len(self.layer_size) - 1
        hidden = base
        outputs = []
        for k, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            previous = hidden.shape[-1]
            # Row i * previous + j of a coordinate's products: base field i times map j.
            products = ops.reshape(
                ops.expand_dims(base, 2) * ops.expand_dims(hidden, 1), (-1, num_fields * previous)
            )
            maps = self.activation(ops.matmul(products, kernel) + bias)  # (B*d, size)
            if self.split_half and k != last:
                hidden, direct = ops.split(maps, 2, axis=-1)
            else:
                hidden, direct = maps, maps
            outputs.append(direct)
        maps = ops.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
        return ops.sum(ops.reshape(maps, (-1, embedding_dim, maps.shape[-1])), axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        _, direct = self._widths()
        return (input_shape[0], sum(direct))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "layer_size": list(self.layer_size),
                "activation": keras.activations.serialize(self.activation),
                "split_half": self.split_half,
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
