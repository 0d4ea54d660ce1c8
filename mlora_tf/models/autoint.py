"""AutoInt (original-model-zoo.md §2.6): self-attention over fields in parallel with
the dense stack, one head on both, plus the linear logit.

Three interacting layers (attention size 8, 4 heads, residual, unscaled softmax,
TruncatedNormal(0.05) kernels, no L2) on the (B, 3, d) embeddings, flattened to
3 * 32 = 96 features. The flattened embeddings go through the dense stack (-> 64).
Logit = linear + Dense(1, no bias)([attention 96 | deep 64]).
"""

from keras import layers

from mlora_tf.layers.interactions import InteractingLayer
from mlora_tf.models.registry import register_backbone

ATT_LAYER_NUM = 3
ATT_EMBEDDING_SIZE = 8
ATT_HEAD_NUM = 4  # passed explicitly by both original classes (deepctr's default is 2)


@register_backbone(
    "autoint",
    "AutoInt: 3 multi-head self-attention layers over fields + 256-128-64 ReLU stack, linear weights.",
    default_lora_reduce=4,
)
def build_autoint(inputs):
    attention = inputs.stacked()
    for i in range(ATT_LAYER_NUM):
        attention = InteractingLayer(
            att_embedding_size=ATT_EMBEDDING_SIZE,
            head_num=ATT_HEAD_NUM,
            use_res=True,
            scaling=False,
            kernel_initializer="truncated_normal",  # Keras default std 0.05, as TF 1.12
            name=f"interacting_layer_{i}",
        )(attention)
    attention = layers.Flatten(name="attention_flatten")(attention)
    deep = inputs.deep(inputs.flat())
    stack = layers.Concatenate(axis=-1, name="attention_deep_concat")([attention, deep])
    deep_logit = inputs.logit_head(stack, name="deep_logit")
    return layers.Add(name="logit_sum")([inputs.linear_logit(), deep_logit])
