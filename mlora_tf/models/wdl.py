"""Wide & Deep (original-model-zoo.md §2.4): linear logit + dense-stack logit."""

from keras import layers

from mlora_tf.models.registry import register_backbone


@register_backbone(
    "wdl",
    "Wide & Deep: per-id linear weights + 256-128-64 ReLU stack on the embeddings.",
    default_lora_reduce=16,
)
def build_wdl(inputs):
    deep_logit = inputs.logit_head(inputs.deep(inputs.flat()))
    return layers.Add(name="logit_sum")([inputs.linear_logit(), deep_logit])
