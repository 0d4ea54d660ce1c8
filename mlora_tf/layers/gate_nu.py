"""`GateNU`: PEPNet's Gate Neural Unit, a scale vector in `(0, gamma)` from prior features."""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.layers.GateNU")
class GateNU(keras.layers.Layer):
    """Gate Neural Unit (PEPNet, Methodology, "Gate NU"): two dense layers that turn
    personalised prior information into element-wise scales.

        x' = ReLU(x W + b)
        delta = gamma * sigmoid(x' W' + b')        # in (0, gamma)

    `x` is the prior alone, or the prior concatenated with a general input behind a
    stop-gradient (the paper's `prior ⊕ ∅(E)`: the gate learns from the general
    embeddings without sending its gradient into them). With `gamma = 2` a gate whose
    pre-activation is 0 scales by exactly 1.

    Input shape:
        `prior` of shape `(batch_size, prior_dim)`, or `[prior, general]` with
        `general` of shape `(batch_size, general_dim)` (stop-gradient applied here).
    Output shape:
        `(batch_size, units)`.

    Args:
        units: int, width of the scale vector (the width of what it multiplies).
        hidden_units: optional int, width of the first (ReLU) layer; None (default):
            the width of the gate's input `x`.
        gamma: float, default 2.0 (the paper's value), the scale bound (its scaling factor).
        kernel_initializer: initializer of both kernels, default `"glorot_uniform"`.
        bias_initializer: initializer of both biases, default `"zeros"`.

    Example:

    >>> gate = GateNU(24, gamma=2.0)
    >>> prior = keras.random.normal((4, 8))
    >>> general = keras.random.normal((4, 24))
    >>> gate([prior, general]).shape
    (4, 24)

    References:
        Chang et al., "PEPNet: Parameter and Embedding Personalized Network for
        Infusing with Personalized Prior Information", KDD 2023, arXiv:2302.01115.
    """

    def __init__(
        self,
        units: int,
        hidden_units: int | None = None,
        gamma: float = 2.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        if hidden_units is not None and (
            isinstance(hidden_units, bool) or not isinstance(hidden_units, int) or hidden_units < 1
        ):
            raise ValueError(
                f"`hidden_units` must be a positive integer or None. Received: hidden_units={hidden_units}"
            )
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
            raise ValueError(f"`gamma` must be a positive number. Received: gamma={gamma}")
        self.units = units
        self.hidden_units = hidden_units
        self.gamma = float(gamma)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @staticmethod
    def _split(inputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise ValueError(f"GateNU takes `prior` or `[prior, general]`. Received: {len(inputs)} inputs")
            return inputs[0], inputs[1]
        return inputs, None

    def build(self, input_shape):
        nested = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        shapes = list(input_shape) if nested else [input_shape]
        if len(shapes) not in (1, 2):
            raise ValueError(f"GateNU takes `prior` or `[prior, general]`. Received: {len(shapes)} inputs")
        input_dim = sum(int(shape[-1]) for shape in shapes)
        hidden = self.hidden_units or input_dim
        self.hidden_kernel = self.add_weight(
            name="hidden_kernel", shape=(input_dim, hidden), initializer=_clone(self.kernel_initializer)
        )
        self.hidden_bias = self.add_weight(
            name="hidden_bias", shape=(hidden,), initializer=_clone(self.bias_initializer)
        )
        self.gate_kernel = self.add_weight(
            name="gate_kernel", shape=(hidden, self.units), initializer=_clone(self.kernel_initializer)
        )
        self.gate_bias = self.add_weight(
            name="gate_bias", shape=(self.units,), initializer=_clone(self.bias_initializer)
        )

    def call(self, inputs):
        prior, general = self._split(inputs)
        x = prior if general is None else ops.concatenate([prior, ops.stop_gradient(general)], axis=-1)
        hidden = ops.relu(ops.matmul(x, self.hidden_kernel) + self.hidden_bias)
        return self.gamma * ops.sigmoid(ops.matmul(hidden, self.gate_kernel) + self.gate_bias)

    def compute_output_shape(self, input_shape):
        nested = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        prior_shape = input_shape[0] if nested else input_shape
        return tuple(prior_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "hidden_units": self.hidden_units,
                "gamma": self.gamma,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


def _clone(initializer):
    """A fresh copy of `initializer`, so a seeded one does not repeat its values."""
    return initializer.__class__.from_config(initializer.get_config())
