"""Star-topology fully connected layer (STAR)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_domain_inputs, clone_initializer


@mlora_export("mlora_tf.layers.StarFCN")
class StarFCN(keras.layers.Layer):
    """STAR fully connected layer: shared kernel times a per-domain kernel.

    Inputs are `[x, mixture]` where `mixture` holds each row's domain as a
    one-hot vector. Row $b$ of domain $k$ computes

    $$
    y_b = \\sigma\\big(x_b (W_{sh} \\odot W_k) + b_{sh} + b_k\\big).
    $$

    All domains' pre-activations are computed in one einsum and each row's
    is selected through `mixture`, so a batch may mix domains (cost grows
    linearly with `num_domains`).

    `shared_kernel` is `(input_dim, units)` and `domain_kernel`
    `(num_domains, input_dim, units)`; both use (separate copies of)
    `kernel_initializer`. For a 3-D weight Keras glorot fans are
    `num_domains * input_dim` and `num_domains * units`, i.e. the glorot
    uniform limit is $\\sqrt{6 / (D(\\text{in} + \\text{units}))}$, as in the
    original. `num_domains` is the last dimension of `mixture`.

    Args:
        units: int. Output width. Must be positive.
        activation: string or callable. Defaults to `"relu"`.
        kernel_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"glorot_uniform"`.
        bias_initializer: string or `keras.initializers.Initializer`.
            Defaults to `"zeros"`.
        kernel_regularizer: string, `keras.regularizers.Regularizer` or
            `None`. Applied to both kernels. Defaults to `None`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `[(batch_size, input_dim), (batch_size, num_domains)]`.

    Output shape:
        `(batch_size, units)`.

    Example:

    ```python
    x = keras.random.normal((32, 384))
    mixture = keras.ops.one_hot(keras.random.randint((32,), 0, 3), 3)
    y = mlora_tf.layers.StarFCN(256)([x, mixture])  # (32, 256)
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
        shared: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shared = bool(shared)
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
        input_dim, num_domains = check_domain_inputs(input_shape, "StarFCN")
        self.num_domains = num_domains
        prefix = "domain_" if self.shared else ""
        if self.shared:
            self.shared_kernel = self.add_weight(
                name="shared_kernel",
                shape=(input_dim, self.units),
                initializer=clone_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer,
            )
        self.domain_kernel = self.add_weight(
            name=prefix + "kernel",
            shape=(num_domains, input_dim, self.units),
            initializer=clone_initializer(self.kernel_initializer, 1 if self.shared else 0),
            regularizer=self.kernel_regularizer,
        )
        if self.shared:
            self.shared_bias = self.add_weight(
                name="shared_bias",
                shape=(self.units,),
                initializer=clone_initializer(self.bias_initializer),
            )
        self.domain_bias = self.add_weight(
            name=prefix + "bias",
            shape=(num_domains, self.units),
            initializer=clone_initializer(self.bias_initializer),
        )
        self.built = True

    def call(self, inputs: Any, slot: Any = None) -> Any:
        """`slot`: optional scalar; when given every row is of that domain and only its
        kernel is formed (the fast path for domain-homogeneous batches; `mixture` is
        then ignored)."""
        x, mixture = inputs
        if slot is not None:
            slot = ops.cast(slot, "int32")
            kernel = ops.take(self.domain_kernel, slot, axis=0)
            if self.shared:
                kernel = self.shared_kernel * kernel
            outputs = ops.matmul(x, kernel) + ops.take(self.domain_bias, slot, axis=0)
        else:
            mixture = ops.cast(mixture, x.dtype)
            kernels = self.domain_kernel
            if self.shared:
                kernels = ops.expand_dims(self.shared_kernel, axis=0) * kernels
            per_domain = ops.einsum("bi,diu->bdu", x, kernels)  # (B, D, units)
            outputs = ops.einsum("bdu,bd->bu", per_domain, mixture) + ops.matmul(mixture, self.domain_bias)
        if self.shared:
            outputs = outputs + self.shared_bias
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
                "shared": self.shared,
            }
        )
        return config
