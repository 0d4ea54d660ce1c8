"""Linear -> LayerNorm -> ReLU, M3oE's basic block."""

from __future__ import annotations

from typing import Any

import keras

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.LNDense")
class LNDense(keras.layers.Layer):
    """A dense layer followed by LayerNorm and an activation: M3oE's `MLP_N` block.

    $$
    y = \\mathrm{act}\\big(\\mathrm{LN}(x W + b)\\big)
    $$

    in exactly that order (the original's "LN-MLP", m3oe.md §2). M3oE uses it for
    `W_c` (512 -> 256) and for the domain-agnostic branch `f_DA` (113 -> 256).

    Keras defaults that differ from PyTorch are set to torch's: LayerNorm epsilon
    `1e-5` (Keras: 1e-3) and, when no initializer is given, weight and bias drawn
    from `U(-1/sqrt(input_dim), 1/sqrt(input_dim))` (Keras: Glorot and zeros).
    LayerNorm starts at gain 1 and bias 0.

    Args:
        units: int. Output width.
        epsilon: float, default `1e-5`. LayerNorm epsilon.
        activation: string or callable, default `"relu"`.
        kernel_initializer: initializer or None (default): None is torch's
            `U(+-1/sqrt(input_dim))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `(batch_size, input_dim)`.

    Output shape:
        `(batch_size, units)`.

    Example:

    ```python
    block = mlora_tf.layers.LNDense(256)
    y = block(keras.random.normal((32, 512)))  # (32, 256)
    ```

    References:
        - Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
          Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        units: int,
        epsilon: float = _utils.TORCH_LAYER_NORM_EPSILON,
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = _utils.check_positive_int("units", units)
        self.epsilon = _utils.check_epsilon(epsilon)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    def build(self, input_shape: Any) -> None:
        if input_shape is None or len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "`LNDense` expects an input of shape `(batch_size, input_dim)` with a known "
                f"`input_dim`. Received: input_shape={input_shape}"
            )
        input_dim = int(input_shape[-1])
        self.dense = keras.layers.Dense(
            self.units,
            kernel_initializer=_utils.resolve_initializer(
                self.kernel_initializer, _utils.torch_uniform(input_dim)
            ),
            bias_initializer=_utils.resolve_initializer(
                self.bias_initializer, _utils.torch_uniform(input_dim)
            ),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.dense.build((None, input_dim))
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.layer_norm.build((None, self.units))
        self.built = True

    def call(self, inputs: Any) -> Any:
        # The sub-layer holds gamma and beta; the normalisation is `_utils.layer_norm`
        # (the same formula as Keras's, with a hand-written gradient).
        norm = self.layer_norm
        return self.activation(_utils.layer_norm(self.dense(inputs), norm.gamma, norm.beta, norm.epsilon))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "epsilon": self.epsilon,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config
