"""DeepFM (original-model-zoo.md §2.9): linear + FM + dense-stack logits.

FM: second-order factorization machine over the (B, 3, d) embeddings (all three
features in one group; FM is always on). Deep: the flattened embeddings through the
dense stack, then Dense(1, no bias).
"""

from keras import layers

from mlora_tf.layers.interactions import FMInteraction
from mlora_tf.models.registry import register_backbone


@register_backbone(
    "deepfm",
    "DeepFM: linear weights + FM over the embeddings + 256-128-64 ReLU stack.",
    default_lora_reduce=32,
)
def build_deepfm(inputs):
    fm_logit = FMInteraction(name="fm")(inputs.stacked())
    deep_logit = inputs.logit_head(inputs.deep(inputs.flat()), name="deep_logit")
    return layers.Add(name="logit_sum")([inputs.linear_logit(), fm_logit, deep_logit])
