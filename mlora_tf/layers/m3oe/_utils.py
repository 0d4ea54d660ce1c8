"""Private helpers of the M3oE layers: PyTorch-default initialisers and checks."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from mlora_tf.layers.interactions._utils import clone_initializer
from mlora_tf.layers.mixture import domain_ids

TORCH_LAYER_NORM_EPSILON = 1e-5
"""`torch.nn.LayerNorm`'s default epsilon (Keras's default is 1e-3)."""


def torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: torch's default for `nn.Linear` weight and bias.

    A fresh (unseeded) initializer each call, so no two weights share values.
    """
    limit = 1.0 / math.sqrt(max(int(fan_in), 1))
    return keras.initializers.RandomUniform(minval=-limit, maxval=limit)


def xavier_uniform(fan_in: int, fan_out: int) -> keras.initializers.Initializer:
    """`U(-a, a)`, `a = sqrt(6 / (fan_in + fan_out))`, for one matrix.

    Unlike Keras's `GlorotUniform` on a stacked `(n, fan_in, fan_out)` weight (whose
    fans are multiplied by `n`), this is torch's `xavier_uniform_` applied to each
    `(fan_in, fan_out)` matrix separately.
    """
    limit = math.sqrt(6.0 / (int(fan_in) + int(fan_out)))
    return keras.initializers.RandomUniform(minval=-limit, maxval=limit)


def resolve_initializer(
    initializer: keras.initializers.Initializer | None,
    default: keras.initializers.Initializer,
    seed_offset: int = 0,
) -> keras.initializers.Initializer:
    """`default` when `initializer` is None, else a fresh copy of `initializer`."""
    if initializer is None:
        return default
    return clone_initializer(initializer, seed_offset)


def get_initializer(value: Any) -> keras.initializers.Initializer | None:
    """`keras.initializers.get`, keeping None (= the layer's torch default)."""
    return None if value is None else keras.initializers.get(value)


def serialize_initializer(value: keras.initializers.Initializer | None) -> Any:
    return None if value is None else keras.initializers.serialize(value)


def check_positive_int(name: str, value: Any) -> int:
    """Raises ValueError unless `value` is a positive int (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def check_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}")
    return float(epsilon)


def _sum_to_shape(t, shape):
    """Sums `t` over the axes along which a tensor of static `shape` was broadcast to it."""
    rank = len(shape)
    if len(t.shape) > rank:
        t = tf.reduce_sum(t, axis=list(range(len(t.shape) - rank)))
    axes = [i for i, size in enumerate(shape) if size == 1 and t.shape[i] != 1]
    return tf.reduce_sum(t, axis=axes, keepdims=True) if axes else t


def layer_norm(x, gamma, beta, epsilon: float):
    """LayerNorm over the last axis with biased variance (as torch), gain and bias.

    `y = x_hat * gamma + beta`, `x_hat = (x - mean) / sqrt(variance + epsilon)`, with
    `gamma` and `beta` broadcastable to `x`. The gradient is written out
    (`dx = r (g - mean(g) - x_hat mean(g x_hat))`, `g = dy gamma`, `r` the reciprocal
    standard deviation) instead of differentiating the forward ops one by one: the
    same values up to float rounding, in about half the passes over `x` (M3oE's
    LayerNorms run on `(40960, 256)` batches).
    """
    gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
    gamma_shape, beta_shape = tuple(gamma.shape), tuple(beta.shape)

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centered = x - mean
        rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon)
        x_hat = centered * rstd

        def grad(dy):
            g = dy * gamma
            dx = rstd * (
                g
                - tf.reduce_mean(g, axis=-1, keepdims=True)
                - x_hat * tf.reduce_mean(g * x_hat, axis=-1, keepdims=True)
            )
            return dx, _sum_to_shape(dy * x_hat, gamma_shape), _sum_to_shape(dy, beta_shape)

        return x_hat * gamma + beta, grad

    return normalize(tf.convert_to_tensor(x), gamma, beta)


def per_domain(domain, n_domains: int, inputs, fn, output_shape, dtype):
    """Applies `fn(d, *rows_of_d)` to each domain's rows and puts the results back in
    row order: each row computed with its own domain's weights only.

    Args:
        domain: `(batch_size,)` or `(batch_size, 1)` integer ids.
        n_domains: number of domains.
        inputs: tensors with `batch_size` leading rows, partitioned alike.
        fn: `fn(d, *parts) -> (rows_d, *output_shape)`.
        output_shape: the per-row output shape.
        dtype: the output dtype.

    Returns:
        `(batch_size, *output_shape)`; a row whose id is outside `[0, n_domains)` gets
        zeros.
    """
    domain = domain_ids(domain)
    valid = tf.logical_and(domain >= 0, domain < n_domains)
    part = tf.where(valid, domain, n_domains)  # out-of-range rows: an extra part, all zeros
    rows = tf.dynamic_partition(tf.range(tf.shape(domain)[0]), part, n_domains + 1)
    parts = [tf.dynamic_partition(x, part, n_domains + 1) for x in inputs]
    outputs = [fn(d, *(p[d] for p in parts)) for d in range(n_domains)]
    outputs.append(tf.zeros([tf.shape(rows[n_domains])[0], *output_shape], dtype))
    return tf.dynamic_stitch(rows, outputs)


def softmax(logits):
    """Softmax over the last axis, also for a size-1 axis (where it is 1)."""
    logits = logits - ops.max(logits, axis=-1, keepdims=True)
    weights = ops.exp(logits)
    return weights / ops.sum(weights, axis=-1, keepdims=True)
