"""mlora_tf: multi-domain CTR prediction with low-rank adapters (MLoRA, MoE-MLoRA) in Keras 3."""

__version__ = "0.1.0"

# Importing the package registers every layer with Keras, so a saved `.keras` model
# loads with plain `keras.saving.load_model` (no custom_objects).
from mlora_tf import layers  # noqa: E402,F401
