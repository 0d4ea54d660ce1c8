"""PNN (original-model-zoo.md §2.7): inner-product PNN, no linear part.

The dense stack's input is [flattened embeddings (3d) | the 3 pairwise inner products
(uid,pid), (uid,domain), (pid,domain)]. The original also creates an outer-product
layer whose output is unused; it has no weights in the model and is left out.
Logit = Dense(1, no bias)(stack output).
"""

from keras import layers

from mlora_tf.layers.interactions import InnerProductInteraction
from mlora_tf.models.registry import register_backbone


@register_backbone(
    "pnn",
    "PNN (inner products): 256-128-64 ReLU stack on [embeddings | pairwise inner products].",
    default_lora_reduce=16,
)
def build_pnn(inputs):
    products = InnerProductInteraction(reduce_sum=True, name="inner_products")(inputs.stacked())
    deep_input = layers.Concatenate(axis=-1, name="pnn_deep_input")([inputs.flat(), products])
    return inputs.logit_head(inputs.deep(deep_input), name="deep_logit")
