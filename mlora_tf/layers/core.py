"""Small layers every backbone shares: the linear (wide) logit and the global bias."""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.api import mlora_export


@mlora_export("mlora_tf.layers.LinearLogit")
class LinearLogit(keras.layers.Layer):
    """The "wide" part: one scalar weight per id of every categorical feature.

    `logit = sum_f w_f[id_f]`, DeepCTR's `get_linear_logit` for sparse features:
    zero-initialised 1-d tables, L2 over the whole tables, no bias.

    Input shape:
        a list of integer tensors, each `(batch_size,)`, one per feature.
    Output shape:
        `(batch_size, 1)`.

    Args:
        vocab_sizes: list of ints, one vocabulary size per feature.
        l2: float, default 1e-5, L2 factor on the tables.
        trainable_tables: optional list of bools, one per feature (frozen pretrained
            features keep their linear weight at zero, as the original).
    """

    def __init__(self, vocab_sizes, l2: float = 1e-5, trainable_tables=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        if not self.vocab_sizes or min(self.vocab_sizes) < 1:
            raise ValueError(f"`vocab_sizes` must be positive integers. Received: vocab_sizes={vocab_sizes}")
        self.l2 = float(l2)
        self.trainable_tables = (
            [bool(t) for t in trainable_tables] if trainable_tables is not None else [True] * len(self.vocab_sizes)
        )
        if len(self.trainable_tables) != len(self.vocab_sizes):
            raise ValueError(
                "`trainable_tables` needs one entry per feature. "
                f"Received: {len(self.trainable_tables)} for {len(self.vocab_sizes)} features"
            )

    def build(self, input_shape):
        regularizer = keras.regularizers.L2(self.l2) if self.l2 else None
        self.tables = [
            self.add_weight(
                name=f"linear_table_{i}",
                shape=(size, 1),
                initializer="zeros",
                regularizer=regularizer,
                trainable=trainable,
            )
            for i, (size, trainable) in enumerate(zip(self.vocab_sizes, self.trainable_tables))
        ]

    def call(self, inputs):
        if len(inputs) != len(self.tables):
            raise ValueError(f"Expected {len(self.tables)} id tensors. Received: {len(inputs)}")
        terms = [ops.take(table, ops.cast(ids, "int32"), axis=0) for table, ids in zip(self.tables, inputs)]
        return ops.sum(ops.stack(terms, axis=0), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"vocab_sizes": self.vocab_sizes, "l2": self.l2, "trainable_tables": self.trainable_tables}
        )
        return config


@mlora_export("mlora_tf.layers.GlobalBias")
class GlobalBias(keras.layers.Layer):
    """Adds one trainable scalar (zero-initialised) to a logit: DeepCTR's `PredictionLayer`
    without the sigmoid (the model applies it, so it can also return the logit).

    Input shape: `(batch_size, 1)`. Output shape: `(batch_size, 1)`.
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="global_bias", shape=(1,), initializer="zeros")

    def call(self, logit):
        return logit + self.bias

    def compute_output_shape(self, input_shape):
        return input_shape
