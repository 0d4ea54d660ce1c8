"""DCN (original-model-zoo.md §2.8): cross network and dense stack on the same
flattened embeddings, one head on both, plus the linear logit.

Cross network: 2 layers, vector parameterisation, glorot-normal kernels with L2 1e-5
(kernels only), zero biases. Logit = linear + Dense(1, no bias)([cross 3d | deep 64]).
"""

import keras
from keras import layers

from mlora_tf.layers.interactions import CrossNetwork
from mlora_tf.models.registry import register_backbone

CROSS_NUM = 2
L2_REG_CROSS = 1e-5


@register_backbone(
    "dcn",
    "Deep & Cross: 2 vector cross layers + 256-128-64 ReLU stack on the embeddings, linear weights.",
    default_lora_reduce=16,
)
def build_dcn(inputs):
    x0 = inputs.flat()
    cross = CrossNetwork(
        num_layers=CROSS_NUM,
        kernel_initializer="glorot_normal",
        kernel_regularizer=keras.regularizers.L2(L2_REG_CROSS),
        name="cross_network",
    )(x0)
    deep = inputs.deep(x0)
    stack = layers.Concatenate(axis=-1, name="cross_deep_concat")([cross, deep])
    deep_logit = inputs.logit_head(stack, name="deep_logit")
    return layers.Add(name="logit_sum")([inputs.linear_logit(), deep_logit])
