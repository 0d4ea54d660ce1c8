"""M3oE (SIGIR'24): the multi-domain multi-task mixture-of-experts model.

`build_m3oe(config, data_spec)` returns a functional Keras model:

- **Inputs** (a dict): one int64 `(batch_size,)` tensor per sparse feature of
  `config.sparse_features` (default `uid, pid, gender, occupation, zip, cate_id,
  domain`, the reference's `user_id, movie_id, ...`, `domain_indicator`), and one
  float32 `(batch_size,)` tensor per dense feature (default `age`, min-max scaled).
  The `domain` input is both an embedded feature and the routing key.
- **Outputs** (a flat dict, one entry per task and kind, so a SavedModel signature
  can return it as it is): `"<task>"` is the probability and `"<task>_logit"` the
  logit, both `(batch_size,)`, e.g. `{"click", "like", "click_logit",
  "like_logit"}`. Train on the logits (`from_logits=True`); the original trains BCE
  on probabilities (m3oe.md §5 item 6).

Forward pass (m3oe.md §2): 16-d embeddings `N(0, 1e-4)` of the sparse features,
flattened in `sparse_features` order, then the dense features -> `x` (113 wide for
MovieLens) -> `DomainRepresentation` (`h`, 256) -> shared, domain and task
`ExpertBank`s (64 each) -> per-(domain, task) `ExpertGates` over the shared experts
-> `ExpertFusion` -> `DomainTaskTowers` -> one logit per task, each row routed by
its own domain.

M3oE is multi-task: its registry entry (`mlora_tf.models.multitask`) has kind
`"multi_task"`, and a multi-task trainer builds it with `build_m3oe` and gives
`fusion_variables(model)` their own optimizer (`variable_groups(model)`).

Ablations of the paper's Table 3 are `M3oEConfig` flags: `fusion="fixed"`
("w/o AutoML"), `concat_modules`, `fully_gated`, `domain_experts=False` ("w/o
domain"), `task_experts=False` ("w/o task"), both False ("w/o domain & task").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from mlora_tf.config import DEFAULT_DENSE_FEATURES, DEFAULT_SPARSE_FEATURES, M3oEConfig  # noqa: F401  (defined there)
from mlora_tf.models.data_spec import DataSpec
from mlora_tf.models.groups import variable_groups as _variable_groups
from mlora_tf.models.mdmt_parts import embed_inputs, task_outputs
from mlora_tf.models.registry import MULTI_TASK
from mlora_tf.layers.m3oe import (
    DomainRepresentation,
    DomainTaskTowers,
    ExpertBank,
    ExpertFusion,
    ExpertGates,
)

FUSION_LAYER_NAME = "expert_fusion"


def build_m3oe(config: M3oEConfig, data: DataSpec, name: str = "m3oe") -> keras.Model:
    """Builds M3oE for `data`.

    Args:
        config: the hyper-parameters and ablation flags.
        data: vocabularies, number of domains, tasks and dense features.
        name: the model name.

    Returns:
        A functional `keras.Model`; inputs and outputs as in the module docstring.

    Raises:
        ValueError: a configured feature the data lacks, or a domain vocabulary
            that differs from `data.n_domains`.
    """
    n_domains, tasks = data.n_domains, data.tasks
    inputs, x, domain = embed_inputs(config, data)

    eps = config.layer_norm_epsilon
    h = DomainRepresentation(
        n_domains,
        star_units=config.star_units,
        units=config.hidden_units,
        epsilon=eps,
        name="domain_representation",
    )([x, domain])
    shared = ExpertBank(config.num_shared_experts, config.expert_units, epsilon=eps, name="shared_experts")(h)
    domain_experts = (
        ExpertBank(n_domains, config.expert_units, epsilon=eps, name="domain_experts")(h)
        if config.domain_experts
        else None
    )
    task_experts = (
        ExpertBank(len(tasks), config.expert_units, epsilon=eps, name="task_experts")(h)
        if config.task_experts
        else None
    )
    gates = ExpertGates(n_domains, len(tasks), stop_gradient=config.gate_stop_gradient, name="gates")
    if config.fully_gated:
        bank = [shared] + [e for e in (domain_experts, task_experts) if e is not None]
        bank = keras.layers.Concatenate(axis=1, name="all_experts")(bank) if len(bank) > 1 else shared
        z = gates([h, bank])
    else:
        mixed = gates([h, shared])
        a_d, a_t, b_d, b_t = config.fusion_init
        z = ExpertFusion(
            use_domain=config.domain_experts,
            use_task=config.task_experts,
            combine="concat" if config.concat_modules else "sum",
            fusion=config.fusion,
            alpha_domain_init=float(a_d),
            alpha_task_init=float(a_t),
            beta_domain_init=float(b_d),
            beta_task_init=float(b_t),
            name=FUSION_LAYER_NAME,
        )([mixed] + [e for e in (domain_experts, task_experts) if e is not None])
    logits = DomainTaskTowers(config.tower_units, epsilon=eps, name="towers")([z, domain])

    outputs = task_outputs(logits, tasks)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def fusion_layer(model: keras.Model) -> ExpertFusion | None:
    """The model's `ExpertFusion` layer (None for the fully gated ablation)."""
    for layer in model.layers:
        if isinstance(layer, ExpertFusion):
            return layer
    return None


def fusion_variables(model: keras.Model) -> list[Any]:
    """The trainable fusion scalars of an M3oE model (empty if fixed or fully gated)."""
    layer = fusion_layer(model)
    return [] if layer is None else list(layer.fusion_variables)


def variable_groups(model: keras.Model) -> dict[str, list[Any]]:
    """The trainable variables in two groups: `"fusion"` (the scalars) and `"main"` (the
    rest): `mlora_tf.models.variable_groups(model, kind="multi_task")`, which says how
    a trainer uses them."""
    return _variable_groups(model, kind=MULTI_TASK)


def fusion_weights(model: keras.Model) -> dict[str, float]:
    """The current sigmoid values of the fusion scalars (empty if fully gated)."""
    layer = fusion_layer(model)
    return {} if layer is None else layer.fusion_weights()


def model_inputs(columns: Mapping[str, Any], config: M3oEConfig) -> dict[str, Any]:
    """Picks and casts the model inputs from a split's columns (int64 ids, float32 dense)."""
    import numpy as np

    missing = [f for f in config.sparse_features + config.dense_features if f not in columns]
    if missing:
        raise ValueError(f"The columns lack model input(s) {missing}. Received: {sorted(columns)}")
    out = {f: np.asarray(columns[f], dtype=np.int64) for f in config.sparse_features}
    out.update({f: np.asarray(columns[f], dtype=np.float32) for f in config.dense_features})
    return out


def stack_logits(outputs: Mapping[str, Any], tasks: Sequence[str]) -> Any:
    """`(batch_size, n_tasks)` logits from the model's output dict."""
    return ops.stack([outputs[f"{t}_logit"] for t in tasks], axis=-1)
