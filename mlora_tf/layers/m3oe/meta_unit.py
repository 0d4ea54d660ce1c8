"""M2M's meta unit: a dense layer whose weights are generated from the scenario."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils


@mlora_export("mlora_tf.layers.MetaUnit")
class MetaUnit(keras.layers.Layer):
    """A scenario-conditioned dense layer: kernel and bias are linear functions of
    each row's scenario representation `z`.

    For a row with input `h` and scenario knowledge representation `z`
    (Zhang et al. 2022, the "Meta Unit" of its meta-learning mechanism):

    $$
    W(z) = \\mathrm{reshape}(z V_W) + C_W \\in \\mathbb{R}^{d_{in} \\times u}, \\qquad
    b(z) = z V_b + c_b, \\qquad
    y = \\mathrm{act}\\big(h\\, W(z) + b(z)\\big)
    $$

    so every scenario (in the multi-domain setting: every domain) gets its own dense
    layer, produced by one meta-learned generator shared by all scenarios. With
    `z = 0` the layer is a plain dense layer `act(h C_W + c_b)`.

    `h` may carry middle axes, `(batch_size, ..., input_dim)`: every position of a
    row uses that row's `W(z)` (M2M's meta attention scores every (task, expert) pair
    with one meta unit). The per-row kernels are never all materialised when that
    is larger than the alternative: `h W(z) = sum_j z_j (h V_j) + h C_W` is computed
    as `(h V) . z` when `positions * scenario_dim < input_dim`, else through the
    `(batch_size, input_dim, units)` per-row kernels; the same values either way.
    Each row depends on its own `h` and `z` only, so a batch may mix scenarios.

    Weights: `scenario_kernel` `V_W` `(scenario_dim, input_dim, units)`, `kernel`
    `C_W` `(input_dim, units)`, `scenario_bias` `V_b` `(scenario_dim, units)`,
    `bias` `c_b` `(units,)`. By default `C_W` and `c_b` are torch's
    `U(+-1/sqrt(input_dim))` (a torch `Linear(input_dim -> units)`), `V_W` and `V_b`
    `U(+-1/sqrt(scenario_dim))` (the generator as a torch `Linear(scenario_dim ->
    input_dim * units + units)`).

    Args:
        units: int. Output width `u`.
        activation: string or callable, default `"relu"` (None: linear).
        kernel_initializer: initializer or None (default) for `C_W`.
        bias_initializer: initializer or None (default) for `c_b`.
        generator_initializer: initializer or None (default) for `V_W` and `V_b`.
        **kwargs: base-layer arguments.

    Input shape:
        `[h, z]`: `h` `(batch_size, ..., input_dim)`, `z` `(batch_size,
        scenario_dim)`.

    Output shape:
        `(batch_size, ..., units)`.

    Example:

    ```python
    meta = mlora_tf.layers.MetaUnit(64)
    y = meta([keras.random.normal((8, 64)), keras.random.normal((8, 16))])  # (8, 64)
    ```

    References:
        - Zhang et al., "Leaving No One Behind: A Multi-Scenario Multi-Task Meta
          Learning Approach for Advertiser Modeling", WSDM 2022, arXiv:2201.06814.
    """

    def __init__(
        self,
        units: int,
        activation: str | Any = "relu",
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        generator_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = _utils.check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)
        self.generator_initializer = _utils.get_initializer(generator_initializer)

    def build(self, input_shape: Any) -> None:
        ok = (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and all(isinstance(s, (list, tuple)) for s in input_shape)
            and len(input_shape[0]) >= 2
            and len(input_shape[1]) == 2
            and all(s is not None for s in tuple(input_shape[0][1:]) + (input_shape[1][1],))
        )
        if not ok:
            raise ValueError(
                "`MetaUnit` expects `[h, z]` of shapes `(batch_size, ..., input_dim)` (known sizes after the "
                f"batch axis) and `(batch_size, scenario_dim)`. Received: input_shape={input_shape}"
            )
        input_dim, scenario_dim = int(input_shape[0][-1]), int(input_shape[1][1])
        self.positions = math.prod(int(s) for s in input_shape[0][1:-1])
        units = self.units

        def init(given, default, offset):
            return _utils.resolve_initializer(given, default, offset)

        self.scenario_kernel = self.add_weight(
            name="scenario_kernel",
            shape=(scenario_dim, input_dim, units),
            initializer=init(self.generator_initializer, _utils.torch_uniform(scenario_dim), 0),
        )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, units),
            initializer=init(self.kernel_initializer, _utils.torch_uniform(input_dim), 1),
        )
        self.scenario_bias = self.add_weight(
            name="scenario_bias",
            shape=(scenario_dim, units),
            initializer=init(self.generator_initializer, _utils.torch_uniform(scenario_dim), 2),
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(units,),
            initializer=init(self.bias_initializer, _utils.torch_uniform(input_dim), 3),
        )
        self.built = True

    def scenario_weights(self, z: Any) -> tuple[Any, Any]:
        """The generated `W(z)` `(batch_size, input_dim, units)` and `b(z)` `(batch_size, units)`."""
        scenario_dim, input_dim = self.scenario_kernel.shape[0], self.kernel.shape[0]
        generated = ops.matmul(z, ops.reshape(self.scenario_kernel, (scenario_dim, input_dim * self.units)))
        kernel = ops.reshape(generated, (-1, input_dim, self.units)) + self.kernel
        return kernel, ops.matmul(z, self.scenario_bias) + self.bias

    def call(self, inputs: Any) -> Any:
        h, z = inputs
        input_dim, scenario_dim = self.kernel.shape[0], self.scenario_kernel.shape[0]
        middle = tuple(h.shape[1:-1])
        if self.positions * scenario_dim < input_dim:
            # sum_j z_j (h V_j) + h C_W, through one matmul with `V` as `(input_dim, scenario_dim *
            # units)`: `(batch_size * positions, scenario_dim * units)` intermediates.
            rows = ops.reshape(h, (-1, input_dim))
            kernel = ops.reshape(ops.transpose(self.scenario_kernel, (1, 0, 2)), (input_dim, scenario_dim * self.units))
            per_scenario = ops.reshape(ops.matmul(rows, kernel), (-1, self.positions, scenario_dim, self.units))
            linear = ops.sum(per_scenario * z[:, None, :, None], axis=2)
            linear = linear + ops.reshape(ops.matmul(rows, self.kernel), (-1, self.positions, self.units))
        else:
            # h W(z) with the per-row kernels, `(batch_size, input_dim, units)`.
            kernel, _ = self.scenario_weights(z)
            linear = ops.matmul(ops.reshape(h, (-1, self.positions, input_dim)), kernel)
        out = linear + (ops.matmul(z, self.scenario_bias) + self.bias)[:, None, :]
        return self.activation(ops.reshape(out, (-1,) + middle + (self.units,)))

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape[0][:-1]) + (self.units,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
                "generator_initializer": _utils.serialize_initializer(self.generator_initializer),
            }
        )
        return config
