"""`LoRADense`: a dense layer with low-rank adapter slots mixed per row.

One formulation serves every adapter variant of the project (DESIGN.md): a layer has a
shared kernel `W` and bias `b`, plus `n_slots` low-rank adapters `(A_s, B_s, c_s)`.
A mixture weight `w` of shape `(batch_size, n_slots)` says how much of each slot a row
uses: a one-hot of the domain for MLoRA, zeros for the backbone alone, a one-hot of an
expert or a softmax gate for MoE-MLoRA.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.dropout import make_dropout

# TF 1.12 / Keras truncated-normal correction: the std of a standard normal truncated
# at two standard deviations.
_TRUNCATION_STD = 0.87962566103423978


def adapter_rank(units: int, lora_reduce: float | None, lora_rank: int | None = None) -> int:
    """The MLoRA rank rule.

    `lora_rank >= 1` wins (the original `lora_r` of `MLoRAFCN`); otherwise
    `r = max(floor(units / lora_reduce), 1)`. `lora_reduce` is the paper's temperature
    alpha: it divides the layer's *output* width, it is not a scale.

    Raises:
        ValueError: if neither gives a rank (`lora_reduce < 1` and no `lora_rank`).
    """
    if lora_rank is not None and lora_rank >= 1:
        return int(lora_rank)
    if lora_reduce is None or lora_reduce < 1:
        raise ValueError(
            "`lora_reduce` must be >= 1 (or `lora_rank` >= 1) to give an adapter rank. "
            f"Received: lora_reduce={lora_reduce}, lora_rank={lora_rank}"
        )
    return max(int(math.floor(units / lora_reduce)), 1)


@mlora_export("mlora_tf.layers.SlotGlorot")
class SlotGlorot(keras.initializers.Initializer):
    """Glorot initializer for a fused adapter matrix `A` of shape `(d_in, n_slots * r)`.

    The original stores `A` as a 3-D tensor `(n_slots, d_in, r)`; TF and Keras compute the
    fans of a 3-D tensor as `fan_in = n_slots * d_in`, `fan_out = n_slots * r`. With
    `fans="stacked"` this initializer reproduces that standard deviation on the fused
    2-D layout; `fans="per_slot"` uses the 2-D fans `(d_in, r)` of one slot (the
    MoE-MLoRA fork's per-expert matrices).

    Args:
        n_slots: int, number of slots fused along the last axis.
        fans: str, `"stacked"` (default) or `"per_slot"`.
        distribution: str, `"truncated_normal"` (glorot-normal, TF 1.12 semantics with
            the 0.8796 correction) or `"uniform"` (glorot-uniform).
        seed: optional int seed.
    """

    def __init__(
        self,
        n_slots: int,
        fans: str = "stacked",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ):
        if n_slots < 1:
            raise ValueError(f"`n_slots` must be >= 1. Received: n_slots={n_slots}")
        if fans not in ("stacked", "per_slot"):
            raise ValueError(f"`fans` must be 'stacked' or 'per_slot'. Received: fans={fans!r}")
        if distribution not in ("truncated_normal", "uniform"):
            raise ValueError(
                "`distribution` must be 'truncated_normal' or 'uniform'. "
                f"Received: distribution={distribution!r}"
            )
        self.n_slots = int(n_slots)
        self.fans = fans
        self.distribution = distribution
        self.seed = seed

    def scale_for(self, shape) -> float:
        """The glorot bound (uniform) or standard deviation (normal) for `shape`."""
        d_in, width = int(shape[0]), int(shape[1])
        rank = width // self.n_slots
        factor = self.n_slots if self.fans == "stacked" else 1
        fan_sum = factor * (d_in + rank)
        if self.distribution == "uniform":
            return math.sqrt(6.0 / fan_sum)
        return math.sqrt(2.0 / fan_sum) / _TRUNCATION_STD

    def __call__(self, shape, dtype=None):
        scale = self.scale_for(shape)
        if self.distribution == "uniform":
            return keras.random.uniform(shape, -scale, scale, dtype=dtype, seed=self.seed)
        return keras.random.truncated_normal(shape, 0.0, scale, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {
            "n_slots": self.n_slots,
            "fans": self.fans,
            "distribution": self.distribution,
            "seed": self.seed,
        }


@mlora_export("mlora_tf.layers.LowRankAdapter")
class LowRankAdapter(keras.layers.Layer):
    """`n_slots` low-rank adapters `(A_s, B_s, c_s)` mixed by a per-row weight `w`.

        delta = sum_s w_s (x @ A_s @ B_s + c_s)
              = ((x @ A) * repeat(w, r)) @ B + w @ c

    with the slots fused: `A` is `(input_dim, n_slots * r)`, `B` is
    `(n_slots * r, units)`, `c` is `(n_slots, units)`. Two dense matmuls, no per-example
    gather, so a batch that mixes domains is exact. No scaling factor (MLoRA has none).
    `B` and `c` start at zero, so the delta starts at zero.

    Input shape:
        `x` of shape `(batch_size, input_dim)`; `mixture` `(batch_size, n_slots)`.
    Output shape:
        `(batch_size, units)`.

    Args:
        units: int, output width.
        n_slots: int, number of slots (domains for MLoRA, experts for MoE-MLoRA).
        rank: int, rank of every slot.
        a_initializer: initializer of the fused `A` (default `SlotGlorot(n_slots)`).
    """

    def __init__(self, units: int, n_slots: int, rank: int, a_initializer=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("n_slots", n_slots), ("rank", rank)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        self.units = units
        self.n_slots = n_slots
        self.rank = rank
        self.a_initializer = keras.initializers.get(
            a_initializer if a_initializer is not None else SlotGlorot(n_slots)
        )

    def build(self, input_shape):
        self.input_dim = int(input_shape[-1])
        width = self.n_slots * self.rank
        self.adapter_kernel_a = self.add_weight(
            name="adapter_kernel_a", shape=(self.input_dim, width), initializer=_clone(self.a_initializer)
        )
        self.adapter_kernel_b = self.add_weight(name="adapter_kernel_b", shape=(width, self.units), initializer="zeros")
        self.adapter_bias = self.add_weight(name="adapter_bias", shape=(self.n_slots, self.units), initializer="zeros")

    def slot_weights(self, slot: int) -> dict:
        """The values of slot `slot` as numpy arrays: `a (d_in, r)`, `b (r, units)`, `bias`."""
        cols = slice(slot * self.rank, (slot + 1) * self.rank)
        return {
            "a": ops.convert_to_numpy(self.adapter_kernel_a)[:, cols],
            "b": ops.convert_to_numpy(self.adapter_kernel_b)[cols, :],
            "bias": ops.convert_to_numpy(self.adapter_bias)[slot],
        }

    def slot_masks(self, slot: int) -> list:
        """Boolean masks of slot `slot`'s entries in `A`, `B` and the slot bias."""
        import numpy as np

        r = self.rank
        a = np.zeros(self.adapter_kernel_a.shape, bool)
        a[:, slot * r : (slot + 1) * r] = True
        b = np.zeros(self.adapter_kernel_b.shape, bool)
        b[slot * r : (slot + 1) * r, :] = True
        c = np.zeros(self.adapter_bias.shape, bool)
        c[slot] = True
        return [a, b, c]

    def slot_parameters(self, slot):
        """Slot `slot`'s factors as tensors: `A_s` `(input_dim, r)` and `[B_s; c_s]`
        `(r + 1, units)` (the slot bias as the last row)."""
        r = self.rank
        slot = ops.cast(slot, "int32")
        start = slot * r
        a = ops.slice(self.adapter_kernel_a, [0, start], [self.input_dim, r])
        b = ops.slice(self.adapter_kernel_b, [start, 0], [r, self.units])
        bias = ops.slice(self.adapter_bias, [slot, 0], [1, self.units])
        return a, ops.concatenate([b, bias], axis=0)

    def call(self, x, mixture=None, slot=None, slot_params=None):
        """`mixture`: per-row weights; or `slot`: a scalar, every row uses that slot
        with weight one (one slot's arithmetic instead of all: the fast path for
        domain-homogeneous batches, equal to `mixture = one_hot(slot)`);
        `slot_params`: that slot's `slot_parameters(slot)`, when already at hand."""
        if slot is not None:
            # [x A_s, 1] @ [B_s; c_s]: the slot bias rides in the second matmul (no
            # separate full-width addition, and its gradient is part of B's).
            a, b = slot_params if slot_params is not None else self.slot_parameters(slot)
            low = ops.matmul(x, a)
            ones = tf.ones(tf.concat([tf.shape(low)[:-1], [1]], 0), dtype=low.dtype)  # no gradient path
            return ops.matmul(ops.concatenate([low, ones], axis=-1), b)
        mixture = ops.cast(mixture, x.dtype)
        low = ops.matmul(x, self.adapter_kernel_a)
        low = low * (ops.repeat(mixture, self.rank, axis=1) if self.rank > 1 else mixture)
        return ops.matmul(low, self.adapter_kernel_b) + ops.matmul(mixture, self.adapter_bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "n_slots": self.n_slots,
                "rank": self.rank,
                "a_initializer": keras.initializers.serialize(self.a_initializer),
            }
        )
        return config


@mlora_export("mlora_tf.layers.LoRADense")
class LoRADense(keras.layers.Layer):
    """Dense layer with `n_slots` low-rank adapters mixed by a per-row weight.

    For a row `x` with mixture weight `w` (one value per slot):

        u = Dropout(x @ W + b)                         # shared path only
        h = activation(u + sum_s w_s (x @ A_s @ B_s + c_s))

    The adapter term is a `LowRankAdapter` (two dense matmuls over the fused slots).
    Rank `r = max(floor(units / lora_reduce), 1)` unless `lora_rank >= 1` is given.
    At initialisation `B = 0` and `c = 0`, so the layer equals its shared path.

    Input shape:
        `[x, w]` with `x` of shape `(batch_size, input_dim)` and `w` of shape
        `(batch_size, n_slots)`; `x` alone means "shared path only".
    Output shape:
        `(batch_size, units)`.

    Args:
        units: int, output width.
        n_slots: int, number of adapter slots (domains for MLoRA, experts for MoE).
        lora_reduce: float, the paper's temperature alpha (divides `units` to give the
            rank). Never a scale.
        lora_rank: optional int; an explicit rank that overrides `lora_reduce`.
        activation: activation applied after adding the adapter delta.
        dropout: float in [0, 1), dropout rate on the shared pre-activation.
        use_bias: bool, whether the shared path has a bias.
        kernel_initializer: initializer of `W`.
        bias_initializer: initializer of `b`.
        adapter_a_initializer: initializer of the fused `A`; default `SlotGlorot`
            (the original's 3-D glorot-normal standard deviation).
        kernel_regularizer: optional regularizer of `W`.
        seed: optional int seed for the dropout.
        dropout_impl: `"fast"` (`FastDropout`, default) or `"keras"` (Keras' `Dropout`).

    Example:

    >>> layer = LoRADense(256, n_slots=2, lora_reduce=16, activation="relu")
    >>> x = keras.random.normal((4, 24))
    >>> w = keras.ops.one_hot(keras.ops.array([0, 1, 1, 0]), 2)
    >>> layer([x, w]).shape
    (4, 256)

    References:
        Yang et al., "MLoRA: Multi-Domain Low-Rank Adaptive Network for CTR
        Prediction", RecSys 2024.
    """

    def __init__(
        self,
        units: int,
        n_slots: int,
        lora_reduce: float | None = None,
        lora_rank: int | None = None,
        activation=None,
        dropout: float = 0.0,
        use_bias: bool = True,
        kernel_initializer="glorot_normal",
        bias_initializer="zeros",
        adapter_a_initializer=None,
        kernel_regularizer=None,
        seed: int | None = None,
        dropout_impl: str = "fast",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive integer. Received: units={units}")
        if not isinstance(n_slots, int) or n_slots < 1:
            raise ValueError(f"`n_slots` must be a positive integer. Received: n_slots={n_slots}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.units = units
        self.n_slots = n_slots
        self.lora_reduce = lora_reduce
        self.lora_rank = lora_rank
        self.rank = adapter_rank(units, lora_reduce, lora_rank)
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed = seed
        self.dropout_impl = dropout_impl
        self.dropout_layer = make_dropout(self.dropout, seed, dropout_impl) if self.dropout else None
        self.adapter = LowRankAdapter(units, n_slots, self.rank, a_initializer=adapter_a_initializer, name="adapter")
        self.adapter_a_initializer = self.adapter.a_initializer

    def build(self, input_shape):
        nested = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        x_shape = input_shape[0] if nested else input_shape
        self.input_dim = int(x_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.input_dim, self.units),
            initializer=_clone(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.units,), initializer=_clone(self.bias_initializer))
            if self.use_bias
            else None
        )
        self.adapter.build((None, self.input_dim))

    # The adapter's variables, under the names Keras' LoRA users expect.
    adapter_kernel_a = property(lambda self: self.adapter.adapter_kernel_a)
    adapter_kernel_b = property(lambda self: self.adapter.adapter_kernel_b)
    adapter_bias = property(lambda self: self.adapter.adapter_bias)

    @property
    def backbone_weights(self) -> list:
        """The shared kernel and bias."""
        return [w for w in (self.kernel, self.bias) if w is not None]

    @property
    def adapter_weights(self) -> list:
        """`A`, `B` and the per-slot bias, all slots."""
        return [self.adapter_kernel_a, self.adapter_kernel_b, self.adapter_bias]

    def slot_weights(self, slot: int) -> dict:
        return self.adapter.slot_weights(slot)

    def adapter_delta(self, x, mixture):
        """`((x @ A) * repeat(w, r)) @ B + w @ c`, shape `(batch_size, units)`."""
        return self.adapter(x, mixture=mixture)

    def call(self, inputs, training=None, slot=None, slot_params=None):
        """Args: inputs `[x, w]` or `x`; `slot`: optional scalar, every row uses that
        slot with weight one (then `w` is ignored); `slot_params`: optional, the
        adapter's `slot_parameters(slot)` when already at hand."""
        if isinstance(inputs, (list, tuple)):
            x, mixture = inputs
        else:
            x, mixture = inputs, None
        shared = ops.matmul(x, self.kernel)
        adapted = slot is not None or mixture is not None
        if self.bias is not None:
            bias = ops.cast(self.bias, shared.dtype)
            if adapted and not (self.dropout_layer is not None and training):
                # `+`, the same elementwise sum as BiasAdd: with no dropout between
                # them, TF 2.21's remapper (oneDNN on) fuses MatMul, BiasAdd, the
                # adapter's Add and the ReLU into a node with no kernel, and the whole
                # function (every prediction) then runs without graph optimisations.
                shared = shared + bias
            else:
                # BiasAdd: fused into the matmul, and its gradient is one BiasAddGrad.
                shared = tf.nn.bias_add(shared, bias)
        if self.dropout_layer is not None:
            shared = self.dropout_layer(shared, training=training)
        if adapted:
            shared = self.adapter(x, mixture=mixture, slot=slot, slot_params=slot_params) + shared
        return self.activation(shared)

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return tuple(x_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "n_slots": self.n_slots,
                "lora_reduce": self.lora_reduce,
                "lora_rank": self.lora_rank,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "adapter_a_initializer": keras.initializers.serialize(self.adapter_a_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "seed": self.seed,
                "dropout_impl": self.dropout_impl,
            }
        )
        return config


@mlora_export("mlora_tf.layers.MoELoRADense")
class MoELoRADense(LoRADense):
    """`LoRADense` whose slots are MoE-MLoRA experts.

    The arithmetic is `LoRADense`'s; only the defaults follow the MoE-MLoRA fork:
    glorot-uniform shared kernel and per-expert 2-D glorot-uniform `A`. Expert `e`
    belongs to domain `e mod n_domains`; the mixture weight comes from a `GatingHead`
    (or zeros / a one-hot of one expert during phased training).

    Args:
        units: int, output width.
        num_experts: int, number of expert slots (`experts_per_domain * n_domains`).
        **kwargs: as `LoRADense`.
    """

    def __init__(self, units: int, num_experts: int, **kwargs):
        kwargs.pop("n_slots", None)
        kwargs.setdefault("kernel_initializer", "glorot_uniform")
        if kwargs.get("adapter_a_initializer") is None:
            kwargs["adapter_a_initializer"] = SlotGlorot(
                num_experts, fans="per_slot", distribution="uniform"
            )
        super().__init__(units, n_slots=num_experts, **kwargs)

    @property
    def num_experts(self) -> int:
        return self.n_slots

    def get_config(self):
        config = super().get_config()
        config["num_experts"] = config.pop("n_slots")
        return config


def _clone(initializer):
    """A fresh copy of `initializer`, so a seeded one does not repeat its values."""
    return initializer.__class__.from_config(initializer.get_config())
