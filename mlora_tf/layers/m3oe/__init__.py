"""Layers of M3oE (SIGIR'24), the multi-domain multi-task mixture of experts.

Forward order (m3oe.md §2): `DomainRepresentation` (f_DR, W_c, f_DA) -> three
`ExpertBank`s (shared, domain, task experts) -> `ExpertGates` (one gate per
(domain, task) over the shared experts) -> `ExpertFusion` (beta-balanced mixes,
alpha-weighted sum) -> `DomainTaskTowers` (one tower per (domain, task)).
`LNDense` is the Linear -> LayerNorm -> ReLU block they share. `CGCGates` (PLE's
gates over shared and per-objective experts) serves the PLE-MDMT baseline;
`GroupedExpertBank` and `AdaTTFusion` the AdaTT baselines; `MetaUnit` and
`MetaAttention` the M2M baseline.
"""

from mlora_tf.layers.m3oe.adatt_fusion import AdaTTFusion
from mlora_tf.layers.m3oe.cgc_gates import CGCGates
from mlora_tf.layers.m3oe.domain_representation import DomainRepresentation
from mlora_tf.layers.m3oe.domain_task_towers import DomainTaskTowers
from mlora_tf.layers.m3oe.expert_bank import ExpertBank
from mlora_tf.layers.m3oe.expert_fusion import COMBINE_MODES, FUSION_MODES, ExpertFusion
from mlora_tf.layers.m3oe.expert_gates import ExpertGates
from mlora_tf.layers.m3oe.grouped_expert_bank import GroupedExpertBank
from mlora_tf.layers.m3oe.ln_dense import LNDense
from mlora_tf.layers.m3oe.meta_attention import MetaAttention
from mlora_tf.layers.m3oe.meta_unit import MetaUnit

__all__ = [
    "COMBINE_MODES",
    "FUSION_MODES",
    "AdaTTFusion",
    "CGCGates",
    "DomainRepresentation",
    "DomainTaskTowers",
    "ExpertBank",
    "ExpertFusion",
    "ExpertGates",
    "GroupedExpertBank",
    "LNDense",
    "MetaAttention",
    "MetaUnit",
]
