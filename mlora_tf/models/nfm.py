"""NFM (original-model-zoo.md §2.5): linear logit + dense-stack logit on the
bi-interaction vector.

Bi-interaction pooling of the (B, 3, d) field embeddings gives a d-vector (the
original's `bi_dropout` is 0, so there is no dropout on it); it is the dense stack's
input. Logit = linear + Dense(1, no bias)(stack output).
"""

from keras import layers

from mlora_tf.layers.interactions import BiInteractionPooling
from mlora_tf.models.registry import register_backbone


@register_backbone(
    "nfm",
    "NFM: linear weights + 256-128-64 ReLU stack on the bi-interaction pooling of the embeddings.",
    default_lora_reduce=4,
)
def build_nfm(inputs):
    pooled = BiInteractionPooling(name="bi_interaction")(inputs.stacked())
    deep_logit = inputs.logit_head(inputs.deep(pooled), name="deep_logit")
    return layers.Add(name="logit_sum")([inputs.linear_logit(), deep_logit])
