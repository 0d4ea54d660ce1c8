"""Models: single-task backbones and multi-domain multi-task models, in one registry.
Importing this package registers every model module."""

from mlora_tf.models import (  # noqa: F401  (registration)
    adaptdhm, adasparse, autoint, dcn, deepfm, fibinet, hamur, m2m, mlp, nfm, pepnet, pnn, sarnet, star, wdl, xdeepfm,
)
from mlora_tf.models.builder import (  # noqa: F401
    build_model,
    count_params,
    dense_stack_of,
    resolve_config,
)
from mlora_tf.models.data_spec import DataSpec  # noqa: F401
from mlora_tf.models.groups import variable_groups  # noqa: F401
from mlora_tf.models.registry import (  # noqa: F401
    BackboneSpec,
    ModelSpec,
    MultiTaskModelSpec,
    get_backbone,
    get_model,
    list_backbones,
    list_models,
    register_backbone,
)
from mlora_tf.models.m3oe import M3oEConfig, build_m3oe  # noqa: F401  (multi-task, not a backbone)
from mlora_tf.models.multitask import (  # noqa: F401  (multi-domain multi-task models)
    MultiTaskModelConfig,
    build_multitask_model,
    get_multitask_model,
    is_multitask_model,
    list_multitask_models,
    register_multitask_model,
)
