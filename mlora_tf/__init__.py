"""mlora_tf: multi-domain CTR prediction with low-rank adapters (MLoRA, MoE-MLoRA) in Keras 3."""

__version__ = "0.1.0"

# In the programs (mlora-train, ...), TensorFlow's start-up chatter is hidden unless
# --tf_log is given; this must run before the first TensorFlow import. Nothing happens
# when the package is used as a library.
from mlora_tf.cli.tf_log import quiet_tensorflow_start  # noqa: E402

quiet_tensorflow_start()

# Importing the package registers every layer with Keras, so a saved `.keras` model
# loads with plain `keras.saving.load_model` (no custom_objects).
from mlora_tf import layers  # noqa: E402,F401
