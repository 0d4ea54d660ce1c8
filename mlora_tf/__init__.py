"""mlora_tf: multi-domain CTR prediction with low-rank adapters (MLoRA, MoE-MLoRA) in Keras 3."""

__version__ = "0.1.0"
