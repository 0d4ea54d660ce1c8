"""xDeepFM (original-model-zoo.md §2.10): linear + dense-stack + CIN logits.

CIN: layer sizes (128, 128), split-half, ReLU, glorot-uniform kernels, no L2, on the
(B, 3, d) embeddings -> 64 + 128 = 192 features -> its own Dense(1) head *with* bias
(glorot-normal). Deep: the flattened embeddings through the dense stack, then
Dense(1, no bias).

The original never builds this network: its substring routing tests `deepfm` before
`xdeepfm`, so every xDeepFM config builds DeepFM (§0, §8 item 2). With
`ModelConfig.as_shipped=True` this builder reproduces that by delegating to the
registered `deepfm` builder.
"""

from keras import layers

from mlora_tf.layers.interactions import CIN
from mlora_tf.models.registry import get_backbone, register_backbone

CIN_LAYER_SIZE = (128, 128)
# What the original's xDeepFM configs actually build (routing bug).
AS_SHIPPED_BACKBONE = "deepfm"


@register_backbone(
    "xdeepfm",
    "xDeepFM: linear weights + CIN (128,128) + 256-128-64 ReLU stack (as_shipped: DeepFM, as the original).",
    default_lora_reduce=32,
)
def build_xdeepfm(inputs):
    if inputs.config.as_shipped:
        return get_backbone(AS_SHIPPED_BACKBONE).build(inputs)
    fields = inputs.stacked()
    cin = CIN(
        layer_size=CIN_LAYER_SIZE,
        activation="relu",
        split_half=True,
        kernel_initializer="glorot_uniform",
        name="cin",
    )(fields)
    cin_logit = inputs.logit_head(cin, name="cin_logit", use_bias=True)
    deep_logit = inputs.logit_head(inputs.deep(inputs.flat()), name="deep_logit")
    return layers.Add(name="logit_sum")([inputs.linear_logit(), deep_logit, cin_logit])
