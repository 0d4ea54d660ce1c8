"""Backbones. Importing this package registers every backbone module."""

from mlora_tf.models import autoint, dcn, deepfm, fibinet, mlp, nfm, pnn, star, wdl, xdeepfm  # noqa: F401  (registration)
from mlora_tf.models.builder import (  # noqa: F401
    DataSpec,
    build_model,
    count_params,
    dense_stack_of,
    variable_groups,
)
from mlora_tf.models.registry import get_backbone, list_backbones, register_backbone  # noqa: F401
from mlora_tf.models.m3oe import M3oEConfig, MultiTaskDataSpec, build_m3oe  # noqa: F401  (multi-task, not a backbone)
from mlora_tf.models.multitask import (  # noqa: F401  (multi-domain multi-task models)
    MultiTaskModelConfig,
    build_multitask_model,
    get_multitask_model,
    is_multitask_model,
    list_multitask_models,
    register_multitask_model,
)
