"""Keras layers of mlora_tf."""

from mlora_tf.layers.adapted_dnn import AdaptedDNN, Routing  # noqa: F401
from mlora_tf.layers.cluster_router import ClusterRouter  # noqa: F401
from mlora_tf.layers.core import GlobalBias, LinearLogit  # noqa: F401
from mlora_tf.layers.domain_pruner import DomainPruner  # noqa: F401
from mlora_tf.layers.gate_nu import GateNU  # noqa: F401
from mlora_tf.layers.hyper_adapter import HyperAdapter  # noqa: F401
from mlora_tf.layers.lora_dense import LoRADense, LowRankAdapter, MoELoRADense, SlotGlorot, adapter_rank  # noqa: F401
from mlora_tf.layers.mixture import DomainSelector, GatingHead  # noqa: F401
from mlora_tf.layers.scenario_attention import ScenarioAttention  # noqa: F401
from mlora_tf.layers.scenario_experts import ScenarioExperts, ScenarioLinear  # noqa: F401
from mlora_tf.layers import interactions  # noqa: F401  (registers the interaction layers)
from mlora_tf.layers.interactions import *  # noqa: F401,F403
from mlora_tf.layers import m3oe  # noqa: F401  (registers the M3oE layers)
from mlora_tf.layers.m3oe import (  # noqa: F401
    AdaTTFusion,
    CGCGates,
    DomainRepresentation,
    DomainTaskTowers,
    ExpertBank,
    ExpertFusion,
    ExpertGates,
    GroupedExpertBank,
    LNDense,
    MetaAttention,
    MetaUnit,
)
