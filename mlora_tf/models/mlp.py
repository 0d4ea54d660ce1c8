"""MLP: embeddings -> dense stack -> logit (original-model-zoo.md §2.3, §3.6).

Base is DeepCTR's plain MLP (`mlp_single`). MLP+MLoRA follows the original's only
runnable MLoRA-MLP, the MovieLens `mlora.json` (`MLoRA` class with `MLoRAFCN` layers,
trained jointly): uniform(+-0.05) embeddings, no L2, glorot-uniform layers. The two
differ only by the profile the factory hands over.
"""

from mlora_tf.models.registry import register_backbone


@register_backbone(
    "mlp",
    "Embeddings -> 256-128-64 ReLU stack -> logit (the MLoRA paper's MLP).",
    default_lora_reduce=16,
    adapted_profile="mlora_class",
    adapters=("none", "mlora"),
)
def build_mlp(inputs):
    return inputs.logit_head(inputs.deep(inputs.flat()))
