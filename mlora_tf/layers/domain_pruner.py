"""`DomainPruner`: AdaSparse's domain-aware pruner, neuron-level weighting factors."""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.api import mlora_export

FORMS = ("binarization", "scaling", "fusion")


@mlora_export("mlora_tf.layers.DomainPruner")
class DomainPruner(keras.layers.Layer):
    """Domain-aware pruner (AdaSparse, Section "Domain-aware Pruner"): a lightweight
    network (one dense layer) that turns a hidden layer's output and the domain-aware
    features into one weighting factor per neuron, and multiplies that layer's output
    by it (a factor of 0 prunes the neuron for the row).

        z = (h ⊕ context) W + b                          # (batch_size, units)
        binarization: pi = 1[z > 0]                       # {0, 1}
        scaling:      pi = beta * sigmoid(z)              # (0, beta)
        fusion:       pi = max(beta * sigmoid(z) - epsilon, 0)   # [0, beta - epsilon)
        out = h * pi

    Binarization's step has no gradient; it trains with a straight-through estimator:
    the forward value is the step, the gradient that of `sigmoid(alpha * z)`. Fusion
    (the paper's best form) is the scaling factor under a soft threshold: factors below
    `epsilon` are exactly zero (pruned), the others are shifted down by `epsilon`
    (the soft-thresholding operator), so the factor is continuous in `z` and trains
    without an estimator.

    Input shape:
        `[h, context]`: the hidden layer's output `h` `(batch_size, units)` and the
        domain-aware features `context` `(batch_size, context_dim)`.
    Output shape:
        `(batch_size, units)`: `h` weighted by its factors (`weighting_factors`
        gives the factors alone).

    Args:
        form: str, `"binarization"`, `"scaling"` or `"fusion"` (default).
        beta: float, default 2.0, the bound of the scaling and fusion factors.
        epsilon: float, default 0.25, fusion's soft threshold (`0 <= epsilon < beta`).
        alpha: float, default 1.0, the slope of binarization's surrogate gradient.
        kernel_initializer: default `"glorot_uniform"`.
        bias_initializer: default `"zeros"`.

    Example:

    >>> pruner = DomainPruner(form="fusion")
    >>> h, context = keras.random.normal((4, 16)), keras.random.normal((4, 8))
    >>> pruner([h, context]).shape
    (4, 16)

    References:
        Yang et al., "AdaSparse: Learning Adaptively Sparse Structures for
        Multi-Domain Click-Through Rate Prediction", CIKM 2022, arXiv:2206.13108.
    """

    def __init__(
        self,
        form: str = "fusion",
        beta: float = 2.0,
        epsilon: float = 0.25,
        alpha: float = 1.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if form not in FORMS:
            raise ValueError(f"`form` must be one of {FORMS}. Received: form={form!r}")
        for name, value in (("beta", beta), ("alpha", alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon < beta:
            raise ValueError(f"`epsilon` must be in [0, beta={beta}). Received: epsilon={epsilon!r}")
        self.form = form
        self.beta = float(beta)
        self.epsilon = float(epsilon)
        self.alpha = float(alpha)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @staticmethod
    def _shapes(input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(f"DomainPruner takes `[h, context]`. Received: input_shape={input_shape!r}")
        return input_shape

    def build(self, input_shape):
        h_shape, context_shape = self._shapes(input_shape)
        units = int(h_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(units + int(context_shape[-1]), units),
            initializer=_clone(self.kernel_initializer),
        )
        self.bias = self.add_weight(name="bias", shape=(units,), initializer=_clone(self.bias_initializer))

    def weighting_factors(self, inputs):
        """The factors `pi` `(batch_size, units)` of `[h, context]`."""
        h, context = inputs
        z = ops.matmul(ops.concatenate([h, ops.cast(context, h.dtype)], axis=-1), self.kernel) + self.bias
        if self.form == "binarization":
            soft = ops.sigmoid(self.alpha * z)
            hard = ops.cast(z > 0, soft.dtype)
            return soft + ops.stop_gradient(hard - soft)
        scaled = self.beta * ops.sigmoid(z)
        if self.form == "scaling":
            return scaled
        return ops.relu(scaled - self.epsilon)

    def call(self, inputs):
        return inputs[0] * self.weighting_factors(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(self._shapes(input_shape)[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "form": self.form,
                "beta": self.beta,
                "epsilon": self.epsilon,
                "alpha": self.alpha,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


def _clone(initializer):
    """A fresh copy of `initializer`, so a seeded one does not repeat its values."""
    return initializer.__class__.from_config(initializer.get_config())
