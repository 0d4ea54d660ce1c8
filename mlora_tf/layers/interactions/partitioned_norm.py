"""Partitioned normalisation (STAR)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.interactions._utils import check_domain_inputs


def _compute_dtype(dtype: Any) -> str:
    """float32 for half-precision inputs, else the input dtype."""
    return keras.backend.result_type(dtype, "float32")


@mlora_export("mlora_tf.layers.PartitionedNorm")
class PartitionedNorm(keras.layers.Layer):
    """STAR partitioned normalisation with per-row domain routing.

    Inputs are `[x, mixture]` where `mixture` holds each row's domain as a
    one-hot vector. Row $b$ of domain $k$ is normalised as

    $$
    y_b = (\\gamma_{sh} \\odot \\Gamma_k)
          \\frac{x_b - \\mu_k}{\\sqrt{\\sigma_k^2 + \\epsilon}}
          + (\\beta_{sh} + \\mathrm{B}_k),
    $$

    where the per-row scale, shift and statistics are picked by
    `mixture @ table`, so a batch may mix domains.

    - Training: $\\mu_k$ and the biased variance $\\sigma_k^2$ are computed
      over the rows of domain $k$ in the batch (for a single-domain batch,
      the plain batch statistics). Each domain present in the batch updates
      its moving statistics with a zero-debiased EMA, as TF 1's
      `assign_moving_average(zero_debias=True)`:
      $s_t = m s_{t-1} + (1 - m) v_t$ (with $s_0 = 0$) and the stored
      statistic is $s_t / (1 - m^{t})$, $t$ counting that domain's updates.
      Absent domains are left unchanged.
    - Inference: $\\mu_k, \\sigma_k^2$ are domain $k$'s moving statistics.

    Weights: trainable `gamma_shared` (ones) and `beta_shared` (zeros) of
    shape `(input_dim,)`, `gamma_domain` (ones) and `beta_domain` (zeros) of
    shape `(num_domains, input_dim)`; non-trainable `moving_mean` (zeros),
    `moving_variance` (ones), their debias accumulators
    `moving_mean_biased`/`moving_variance_biased` (zeros), all
    `(num_domains, input_dim)`, and `num_updates` `(num_domains,)` (zeros).
    `num_domains` is taken from the last dimension of `mixture`. Weights are
    never autocast; half-precision inputs are normalised in float32 and the
    result is cast back to the input dtype.

    Args:
        momentum: float in `[0, 1)`. EMA momentum $m$. Defaults to `0.99`.
        epsilon: float, positive. Added to the variance. Defaults to `1e-3`.
        **kwargs: Args to pass to the base class.

    Input shape:
        `[(batch_size, input_dim), (batch_size, num_domains)]`; `mixture` is a
        float one-hot row per example.

    Output shape:
        `(batch_size, input_dim)`.

    Example:

    ```python
    x = keras.random.normal((32, 384))
    mixture = keras.ops.one_hot(keras.random.randint((32,), 0, 3), 3)
    y = mlora_tf.layers.PartitionedNorm()([x, mixture], training=True)
    ```

    References:
        - [Sheng et al., 2021](https://arxiv.org/abs/2101.11427)
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            not isinstance(momentum, (int, float))
            or isinstance(momentum, bool)
            or not 0.0 <= momentum < 1.0
        ):
            raise ValueError(
                f"`momentum` should be a float in [0, 1). Received: momentum={momentum}"
            )
        if (
            not isinstance(epsilon, (int, float))
            or isinstance(epsilon, bool)
            or not epsilon > 0.0
        ):
            raise ValueError(
                f"`epsilon` should be a positive float. Received: epsilon={epsilon}"
            )
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:
        input_dim, num_domains = check_domain_inputs(input_shape, "PartitionedNorm")
        self.input_dim = input_dim
        self.num_domains = num_domains
        vec, table = (input_dim,), (num_domains, input_dim)

        def param(name: str, shape: tuple[int, ...], initializer: str) -> Any:
            return self.add_weight(
                name=name, shape=shape, initializer=initializer, autocast=False
            )

        def state(name: str, shape: tuple[int, ...], initializer: str) -> Any:
            return self.add_weight(
                name=name, shape=shape, initializer=initializer,
                trainable=False, autocast=False,
            )

        self.gamma_shared = param("gamma_shared", vec, "ones")
        self.beta_shared = param("beta_shared", vec, "zeros")
        self.gamma_domain = param("gamma_domain", table, "ones")
        self.beta_domain = param("beta_domain", table, "zeros")
        self.moving_mean = state("moving_mean", table, "zeros")
        self.moving_variance = state("moving_variance", table, "ones")
        self.moving_mean_biased = state("moving_mean_biased", table, "zeros")
        self.moving_variance_biased = state("moving_variance_biased", table, "zeros")
        self.num_updates = state("num_updates", (num_domains,), "zeros")
        self.built = True

    def _update_moving_stats(self, mean: Any, variance: Any, present: Any) -> None:
        """Zero-debiased EMA update of the domains in `present` (D,) bool."""
        m = self.momentum
        present_rows = ops.expand_dims(present, axis=-1)
        steps = ops.where(present, self.num_updates + 1.0, self.num_updates)
        debias = ops.expand_dims(1.0 - ops.power(m, ops.maximum(steps, 1.0)), axis=-1)
        for biased, stored, value in (
            (self.moving_mean_biased, self.moving_mean, mean),
            (self.moving_variance_biased, self.moving_variance, variance),
        ):
            new_biased = ops.where(present_rows, m * biased + (1.0 - m) * value, biased)
            biased.assign(new_biased)
            stored.assign(ops.where(present_rows, new_biased / debias, stored))
        self.num_updates.assign(steps)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x, mixture = inputs
        input_dtype = x.dtype
        # Statistics in float16/bfloat16 overflow easily: compute in float32.
        dtype = _compute_dtype(input_dtype)
        x = ops.cast(x, dtype)
        mixture = ops.cast(mixture, dtype)
        if training:
            counts = ops.sum(mixture, axis=0)  # (D,)
            safe = ops.expand_dims(ops.maximum(counts, 1.0), axis=-1)
            domain_mean = ops.matmul(ops.transpose(mixture), x) / safe  # (D, n)
            row_mean = ops.matmul(mixture, domain_mean)
            centered = x - row_mean
            domain_var = ops.matmul(ops.transpose(mixture), ops.square(centered)) / safe
            row_var = ops.matmul(mixture, domain_var)
            self._update_moving_stats(
                ops.cast(domain_mean, self.moving_mean.dtype),
                ops.cast(domain_var, self.moving_variance.dtype),
                counts > 0,
            )
        else:
            row_mean = ops.matmul(mixture, ops.cast(self.moving_mean, dtype))
            row_var = ops.matmul(mixture, ops.cast(self.moving_variance, dtype))
            centered = x - row_mean
        gamma = ops.cast(self.gamma_shared, dtype) * ops.matmul(
            mixture, ops.cast(self.gamma_domain, dtype)
        )
        beta = ops.cast(self.beta_shared, dtype) + ops.matmul(
            mixture, ops.cast(self.beta_domain, dtype)
        )
        outputs = gamma * centered * ops.rsqrt(row_var + self.epsilon) + beta
        return ops.cast(outputs, input_dtype)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape[0])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config
