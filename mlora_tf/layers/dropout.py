"""`FastDropout`: inverted dropout that draws only the random bits a decision needs.

Keras' `Dropout` draws one 32-bit Philox number per element; on a CPU that is most of
the cost of a small CTR model's training step. A keep decision with rate `k / 2^b` needs
`b` bits: one bit for 0.5, two for 0.25 or 0.75, ... up to 16; a rate that is no
multiple of 1/65536 is rounded to one (an error below 8e-6). Kept values are scaled by
`1 / (1 - rate)`, as Keras does.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.layers.FastDropout")
class FastDropout(keras.layers.Layer):
    """Inverted dropout with quantised keep probabilities (see the module docstring).

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

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        shape = tf.shape(inputs)
        width = inputs.shape[-1]
        per_word = 32 // self.bits
        words = -(-width // per_word)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        raw = tf.random.stateless_uniform(
            tf.concat([shape[:-1], [words]], 0), seed=seed, minval=None, maxval=None, dtype=tf.int32
        )
        if self.bits >= 8:
            chunks = tf.cast(tf.bitcast(raw, tf.uint8 if self.bits == 8 else tf.uint16), tf.int32)
        else:
            shifts = tf.range(0, 32, self.bits, dtype=tf.int32)
            chunks = tf.bitwise.bitwise_and(tf.bitwise.right_shift(raw[..., None], shifts), (1 << self.bits) - 1)
        chunks = tf.reshape(chunks, tf.concat([shape[:-1], [words * per_word]], 0))[..., :width]
        keep = chunks >= self.threshold
        scale = 1.0 / (1.0 - self.effective_rate)
        return tf.where(keep, inputs * tf.cast(scale, inputs.dtype), tf.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
