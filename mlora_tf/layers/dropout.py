"""`FastDropout`: inverted dropout that draws only the random bits a decision needs.

Keras' `Dropout` draws one 32-bit Philox number per element; on a CPU that is most of
the cost of a small CTR model's training step. A keep decision with rate `k / 2^b` needs
`b` bits: one bit for 0.5, two for 0.25 or 0.75, ... up to 16; a rate that is no
multiple of 1/65536 is rounded to one (an error below 8e-6). Kept values are scaled by
`1 / (1 - rate)`, as Keras does.

The layer multiplies its input by a float mask (`0` or `1 / (1 - rate)` per element), so
the backward pass is one multiplication by the same mask. With `b <= 8` the mask comes
from the random bytes in one lookup: each byte indexes a constant `(256, 8 / b)` table
of the masks its `8 / b` chunks of `b` bits give.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.layers.FastDropout")
class FastDropout(keras.layers.Layer):
    """Inverted dropout with quantised keep probabilities (see the module docstring).

    Every element is kept, independently, when its own `bits`-bit chunk of random bits
    is at least `threshold` (probability `1 - effective_rate`), and then scaled by
    `1 / (1 - effective_rate)`.

    Input shape: any; the last dimension must be static. Output shape: the same.

    Args:
        rate: float in [0, 1), fraction of units dropped during training.
        seed: optional int seed of the layer's `SeedGenerator`.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate}")
        self.rate = float(rate)
        self.seed = seed
        self.bits = next((b for b in (1, 2, 4, 8) if float(rate * (1 << b)).is_integer()), 16)
        levels = 1 << self.bits
        self.threshold = int(round(rate * levels))
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    @property
    def effective_rate(self) -> float:
        """The rate actually applied (`rate` rounded to the bit resolution)."""
        return self.threshold / float(1 << self.bits)

    @property
    def scale(self) -> float:
        """The factor of a kept element, `1 / (1 - effective_rate)`."""
        return 1.0 / (1.0 - self.effective_rate)

    def byte_table(self) -> np.ndarray:
        """`(256, 8 // bits)` float32: entry `[v, j]` is the mask of chunk `j` (bits
        `j * bits` up) of byte value `v`: `scale` if the chunk is at least `threshold`,
        else 0. Only for `bits <= 8`."""
        per_byte = 8 // self.bits
        values = np.arange(256)[:, None] >> (self.bits * np.arange(per_byte))[None, :]
        chunks = values & ((1 << self.bits) - 1)
        return np.where(chunks >= self.threshold, self.scale, 0.0).astype(np.float32)

    def mask(self, lead_shape, width: int, dtype="float32"):
        """A fresh random mask of shape `lead_shape + (width,)`: `scale` where an element
        is kept, 0 where it is dropped. Advances the seed generator."""
        if width is None:
            raise ValueError("FastDropout needs a static last dimension.")
        width = int(width)
        per_word = 32 // self.bits
        words = -(-width // per_word)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        lead = tf.convert_to_tensor(lead_shape, tf.int32)
        raw = tf.random.stateless_uniform(
            tf.concat([lead, [words]], 0), seed=seed, minval=None, maxval=None, dtype=tf.int32
        )
        if self.bits <= 8:
            # Every byte indexes the masks of its 8 / bits chunks.
            index = tf.cast(tf.bitcast(raw, tf.uint8), tf.int32)  # (..., words, 4)
            mask = tf.gather(tf.constant(self.byte_table(), dtype=dtype), index)  # (..., words, 4, 8 / bits)
        else:
            chunks = tf.cast(tf.bitcast(raw, tf.uint16), tf.int32)  # (..., words, 2)
            mask = tf.cast(chunks >= self.threshold, dtype) * tf.constant(self.scale, dtype)
        mask = tf.reshape(mask, tf.concat([lead, [words * per_word]], 0))
        if words * per_word != width:
            mask = mask[..., :width]
        return mask

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        return inputs * self.mask(tf.shape(inputs)[:-1], inputs.shape[-1], inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


DROPOUT_IMPLS = ("fast", "keras")


def make_dropout(rate: float, seed: int | None = None, impl: str = "fast", name: str | None = None):
    """The dropout layer of a dense stack: `FastDropout` (`impl="fast"`) or Keras'
    `Dropout` (`"keras"`, one 32-bit random number per element, as the original)."""
    if impl == "fast":
        return FastDropout(rate, seed=seed, name=name)
    if impl == "keras":
        return keras.layers.Dropout(rate, seed=seed, name=name)
    raise ValueError(f"`dropout_impl` must be one of {list(DROPOUT_IMPLS)}. Received: dropout_impl={impl!r}")
