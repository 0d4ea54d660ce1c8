"""Feature-interaction and multi-domain layers of the CTR model zoo."""

from mlora_tf.layers.interactions.auxiliary_net import AuxiliaryNet
from mlora_tf.layers.interactions.bi_interaction_pooling import BiInteractionPooling
from mlora_tf.layers.interactions.bilinear_interaction import BilinearInteraction
from mlora_tf.layers.interactions.cin import CIN
from mlora_tf.layers.interactions.cross_network import CrossNetwork
from mlora_tf.layers.interactions.fm_interaction import FMInteraction
from mlora_tf.layers.interactions.inner_product_interaction import (
    InnerProductInteraction,
)
from mlora_tf.layers.interactions.interacting_layer import InteractingLayer
from mlora_tf.layers.interactions.partitioned_norm import PartitionedNorm
from mlora_tf.layers.interactions.senet_layer import SENETLayer
from mlora_tf.layers.interactions.star_fcn import StarFCN

__all__ = [
    "AuxiliaryNet",
    "BiInteractionPooling",
    "BilinearInteraction",
    "CIN",
    "CrossNetwork",
    "FMInteraction",
    "InnerProductInteraction",
    "InteractingLayer",
    "PartitionedNorm",
    "SENETLayer",
    "StarFCN",
]
