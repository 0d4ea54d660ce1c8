"""FiBiNET (original-model-zoo.md §2.11): SENET + bilinear interactions -> dense stack,
plus the linear logit.

SENET (reduction ratio 3) reweights the 3 fields. Two separate bilinear layers of type
"interaction" (one d x d matrix per field pair): one on the SENET output, one on the
raw embeddings, each (B, 3, d). They are concatenated on the last axis, (B, 3, 2d), and
flattened (per pair: SENET-bilinear, then raw-bilinear) into the dense stack's 6d input.
No L2 on the SENET or bilinear weights. Logit = linear + Dense(1, no bias)(stack output).
"""

from keras import layers

from mlora_tf.layers.interactions import BilinearInteraction, SENETLayer
from mlora_tf.models.registry import register_backbone

REDUCTION_RATIO = 3
BILINEAR_TYPE = "interaction"


@register_backbone(
    "fibinet",
    "FiBiNET: SENET + pairwise bilinear interactions -> 256-128-64 ReLU stack, linear weights.",
    default_lora_reduce=32,
)
def build_fibinet(inputs):
    fields = inputs.stacked()
    reweighted = SENETLayer(reduction_ratio=REDUCTION_RATIO, kernel_initializer="glorot_normal", name="senet")(fields)
    senet_pairs = BilinearInteraction(
        bilinear_type=BILINEAR_TYPE, kernel_initializer="glorot_normal", name="bilinear_senet"
    )(reweighted)
    raw_pairs = BilinearInteraction(
        bilinear_type=BILINEAR_TYPE, kernel_initializer="glorot_normal", name="bilinear_raw"
    )(fields)
    pairs = layers.Concatenate(axis=-1, name="bilinear_concat")([senet_pairs, raw_pairs])
    deep_input = layers.Flatten(name="bilinear_flatten")(pairs)
    deep_logit = inputs.logit_head(inputs.deep(deep_input), name="deep_logit")
    return layers.Add(name="logit_sum")([inputs.linear_logit(), deep_logit])
