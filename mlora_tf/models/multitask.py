"""Multi-domain multi-task (MDMT) models: one registry, shared inputs and outputs.

Every model here maps the same inputs to the same outputs, so one trainer
(`mlora_tf.training.multitask.MultiTaskTrainer`), one exporter and one driver serve
them all:

- **Inputs** (a dict): one int64 `(batch_size,)` tensor per sparse feature of
  `config.sparse_features` (`domain` among them: an embedded feature and the routing
  key) and one float32 `(batch_size,)` tensor per dense feature.
- **Outputs** (a flat dict): `"<task>"` the probability and `"<task>_logit"` the
  logit, `(batch_size,)` each, for every task of the data, each row scored by the
  heads of its own domain.

MDMT models are entries of kind `"multi_task"` in the one model registry
(`mlora_tf.models.registry`, beside the single-task CTR backbones, which know nothing
about tasks). Register one with `@register_multitask_model(name, ...)` (from there) on
a `build(config, data, name) -> keras.Model`, `data` a `DataSpec` with its tasks.
"""

from __future__ import annotations

import keras

from mlora_tf.config import MultiTaskModelConfig  # noqa: F401  (defined there)
from mlora_tf.models import mdmt  # noqa: F401  (registers the baselines)
from mlora_tf.models import mdmt_fusion  # noqa: F401  (registers AdaTT, AdaTT-sp, M2M)
from mlora_tf.models.data_spec import DataSpec
from mlora_tf.models.m3oe import build_m3oe
from mlora_tf.models.mdmt_parts import check_data, embed_inputs, input_vector, task_outputs  # noqa: F401
from mlora_tf.models.registry import (  # noqa: F401  (the one registry lives there)
    MultiTaskModelSpec,
    get_multitask_model,
    is_multitask_model,
    list_multitask_models,
    register_multitask_model,
)


def build_multitask_model(config: MultiTaskModelConfig, data: DataSpec) -> keras.Model:
    """Builds the registered model `config.name` for `data`.

    Raises:
        ValueError: an unknown name, or M3oE ablation flags on another model.
    """
    spec = get_multitask_model(config.name)
    if not spec.ablations and config.m3oe_ablations_set:
        raise ValueError(
            f"{config.m3oe_ablations_set} are ablations of M3oE; model {config.name!r} has no such part. "
            f"Received: model={config.name!r}"
        )
    return spec.build(config, data, name=config.name)


register_multitask_model(
    "m3oe",
    "M3oE (SIGIR'24): domain representation, shared/domain/task experts, fusion scalars, per-(domain, task) towers",
    paper_name="M3oE",
    ablations=True,
)(build_m3oe)
