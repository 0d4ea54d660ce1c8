"""AdaTT, AdaTT-sp and M2M: the fusion- and meta-learning baselines of M3oE's Table 2,
in their multi-domain multi-task (MDMT) form.

Registered in `mlora_tf.models.registry` beside `mlora_tf.models.mdmt`'s baselines,
with the same inputs and outputs (`embed_inputs`: the 113-wide `x` for MovieLens;
`task_outputs`: one logit and probability per task) and sized by the fields of
`M3oEConfig` (`hidden_units` 256, `expert_units` 64, `tower_units` 64,
`num_shared_experts` N = 4, `specific_experts` 1, `embedding_dim` 16, LayerNorm
epsilon 1e-5), every Linear torch-initialised as the M3oE layers are. Neither
baseline is in M3oE's repository (m3oe.md §4): both are written from their papers.

| name | paper row | structure | tower input |
|---|---|---|---|
| `adatt` | AdaTT | 2 fusion levels; per level `m` experts per (d, t) objective + N shared, every objective's gate over all of them, plus its own experts as residual | 64 |
| `adatt_sp` | AdaTT-sp | the same with task-specific experts and units only | 64 |
| `m2m` | M2M | N experts, meta attention per task, meta towers; every meta unit's weights generated from the domain embedding | 64 (meta tower) |

**AdaTT** (Li et al., KDD'23, arXiv:2304.04959; its model section: fusion levels,
task-specific and shared fusion units, NativeExperts residual, AllExperts gate). In
the MDMT setting every (domain, task) objective `k = t * D + d` is one of AdaTT's
tasks: it owns `m = specific_experts` experts and a task-specific fusion unit per
level, and its last-level output feeds tower `k` (`DomainTaskTowers`). At level `l`
objective `k`'s experts read its own fusion output of level `l - 1` (`x` at level 1,
`GroupedExpertBank`); its unit (`AdaTTFusion`) gates on that same input over **all**
experts of the level (every objective's and the shared ones) and adds the linear
combination of its own experts. AdaTT has `N = num_shared_experts` shared experts per
level, read by the shared fusion unit of the level below (`x` at level 1), and that
shared unit at every level but the last (no tower reads it). AdaTT-sp has no shared
experts and no shared unit.

**M2M** (Zhang et al., WSDM'22, arXiv:2201.06814; its backbone's expert and task
views, the scenario knowledge representation, and the meta-learning mechanism's meta
unit, meta attention module and meta tower module). The scenario is the domain:
  - scenario representation `z` = the row's domain embedding (the `domain_embedding`
    table of the input vector, `embedding_dim` wide, so `z` is `x`'s own slice);
  - expert views: `N = num_shared_experts` experts, each LN-MLP
    `113 -> hidden_units -> expert_units` (layers `experts_0`, an `ExpertBank`, and
    `experts_1`, a `GroupedExpertBank` with one expert per group);
  - meta attention (`MetaAttention`, layer `meta_attention`): task views from learned
    task embeddings, `R_t = sum_i softmax_i(v . Meta([E_i; T_t]; z)) E_i`;
  - meta tower per task: `META_TOWER_LAYERS` `MetaUnit(tower_units)` layers with
    `z`, `h <- ReLU(Meta(h; z)) + h` (the residual where the widths agree, always at
    M3oE's sizes), then `Linear(tower_units -> 1)`: task `t`'s logit.
  Each (domain, task) objective is served by task `t`'s tower under the weights its
  meta units generate for domain `d`, so a batch may mix domains.

**Hyper-parameters the papers do not give (ours; for docs/fidelity.md):**

- AdaTT: `ADATT_LEVELS` = 2 fusion levels, of widths `(hidden_units,
  expert_units)` = (256, 64), M3oE's `h` and expert widths; experts are single
  LN-MLP layers (Linear -> LayerNorm -> ReLU, as every MDMT baseline here; the paper's
  experts are MLPs of unstated depth); `m = specific_experts` = 1 native expert per
  objective; `N = num_shared_experts` = 4 shared experts per level (AdaTT only);
  native-expert weights `v` start at ones (the residual is the plain sum at the
  start); gates are torch `Linear + softmax` with no stop-gradient; the towers are
  M3oE's (`Linear(64 -> tower_units)`, LayerNorm, ReLU, `Linear(-> 1)`) per objective.
- M2M: `z` is the domain embedding itself (no scenario MLP; our data has no other
  scenario feature), so at the start (`N(0, 1e-4)` embeddings) every meta unit is
  close to its static part; `N = num_shared_experts` = 4 experts, two LN-MLP layers
  each; task embeddings `embedding_dim` = 16 wide, `N(0, 1)`, task views
  `ReLU(Linear(16 -> expert_units))`; meta-attention width `META_ATTENTION_UNITS` =
  16; `META_TOWER_LAYERS` = 2 meta-unit layers of `tower_units` = 64 per task, with
  residual connections; generators `V_W, V_b` initialised `U(+-1/sqrt(dim z))`; no
  Transformer (the paper's sequence encoder: our inputs have no sequence), no
  auxiliary losses.
"""

from __future__ import annotations

import keras

from mlora_tf.layers.m3oe import (
    AdaTTFusion,
    DomainTaskTowers,
    ExpertBank,
    GroupedExpertBank,
    MetaAttention,
    MetaUnit,
)
from mlora_tf.layers.m3oe._utils import torch_uniform
from mlora_tf.models.mdmt_parts import embed_inputs, task_outputs
from mlora_tf.models.registry import register_multitask_model

ADATT_LEVELS = 2
"""AdaTT's fusion levels, of widths `(hidden_units, expert_units)`."""
META_ATTENTION_UNITS = 16
"""Width of the meta unit that scores each (expert, task) pair in M2M's meta attention."""
META_TOWER_LAYERS = 2
"""Meta-unit layers in each of M2M's task towers."""


def _level_widths(config) -> tuple[int, ...]:
    return (config.hidden_units, config.expert_units)[:ADATT_LEVELS]


def _adatt(config, data, name: str, shared: bool) -> keras.Model:
    """AdaTT (`shared=True`: shared experts and units) or AdaTT-sp on every (d, t) objective."""
    n_domains, tasks = data.n_domains, data.tasks
    n_objectives = len(tasks) * n_domains
    per_objective, n_shared = config.specific_experts, (config.num_shared_experts if shared else 0)
    eps = config.layer_norm_epsilon
    inputs, x, domain = embed_inputs(config, data)
    widths = _level_widths(config)
    fused = None  # the fusion output of the level below: (B, K [+ 1], width)
    for level, units in enumerate(widths):
        shared_unit = shared and level < len(widths) - 1  # no tower reads the last shared unit
        task_inputs = x if fused is None else fused[:, :n_objectives]
        experts = GroupedExpertBank(
            n_objectives, per_objective, units, epsilon=eps, name=f"level_{level}_task_experts"
        )(task_inputs)
        if n_shared:
            shared_input = x if fused is None else fused[:, n_objectives]
            shared_experts = ExpertBank(n_shared, units, epsilon=eps, name=f"level_{level}_shared_experts")(
                shared_input
            )
            experts = keras.layers.Concatenate(axis=1, name=f"level_{level}_experts")([experts, shared_experts])
        # Every unit gates on its own input: `x` at the first level, else its fusion output below.
        if fused is None:
            unit_inputs = x
        else:
            unit_inputs = fused if shared_unit else fused[:, :n_objectives]
        fused = AdaTTFusion(
            n_objectives, native_experts=per_objective, shared_unit=shared_unit, name=f"level_{level}_fusion"
        )([unit_inputs, experts])
    z = keras.layers.Reshape((len(tasks), n_domains, widths[-1]), name="objective_outputs")(fused)
    logits = DomainTaskTowers(config.tower_units, epsilon=eps, name="towers")([z, domain])
    return keras.Model(inputs, task_outputs(logits, tasks), name=name)


@register_multitask_model(
    "adatt",
    "AdaTT (KDD'23) MDMT: per-(domain, task) and shared experts, adaptive task-to-task fusion units "
    "with a native-expert residual, 2 levels",
    paper_name="AdaTT",
)
def build_adatt(config, data, name: str = "adatt") -> keras.Model:
    """AdaTT: task-specific experts of every (domain, task) objective and shared
    experts, fused by AdaTT's gated units at two levels (module docstring)."""
    return _adatt(config, data, name, shared=True)


@register_multitask_model(
    "adatt_sp",
    "AdaTT-sp (KDD'23) MDMT: AdaTT with task-specific experts and fusion units only, one per (domain, task)",
    paper_name="AdaTT-sp",
)
def build_adatt_sp(config, data, name: str = "adatt_sp") -> keras.Model:
    """AdaTT-sp: AdaTT without shared experts or shared fusion units."""
    return _adatt(config, data, name, shared=False)


def _domain_embedding(config, x):
    """The domain's embedding, `(batch_size, embedding_dim)`: its slice of `x`."""
    start = config.sparse_features.index("domain") * config.embedding_dim
    return x[:, start : start + config.embedding_dim]


@register_multitask_model(
    "m2m",
    "M2M (WSDM'22) MDMT: experts, meta attention and residual meta towers whose weights are "
    "generated from the domain embedding",
    paper_name="M2M",
)
def build_m2m(config, data, name: str = "m2m") -> keras.Model:
    """M2M: expert views, per-task meta attention and meta towers conditioned on the
    domain embedding (module docstring)."""
    tasks = data.tasks
    eps = config.layer_norm_epsilon
    inputs, x, _ = embed_inputs(config, data)  # routed by `z`, not by the towers
    z = _domain_embedding(config, x)
    n_experts = config.num_shared_experts
    experts = ExpertBank(n_experts, config.hidden_units, epsilon=eps, name="experts_0")(x)
    experts = GroupedExpertBank(n_experts, 1, config.expert_units, epsilon=eps, name="experts_1")(experts)
    represented = MetaAttention(
        len(tasks), attention_units=META_ATTENTION_UNITS, task_embedding_dim=config.embedding_dim,
        name="meta_attention",
    )([experts, z])
    logits = []
    for t, task in enumerate(tasks):
        h = represented[:, t]
        for layer in range(META_TOWER_LAYERS):
            out = MetaUnit(config.tower_units, activation="relu", name=f"{task}_meta_tower_{layer}")([h, z])
            if h.shape[-1] == out.shape[-1]:
                out = keras.layers.Add(name=f"{task}_meta_residual_{layer}")([out, h])
            h = out
        width = int(h.shape[-1])
        logits.append(
            keras.layers.Dense(
                1, kernel_initializer=torch_uniform(width), bias_initializer=torch_uniform(width), name=f"{task}_output"
            )(h)
        )
    logits = logits[0] if len(logits) == 1 else keras.layers.Concatenate(axis=-1, name="task_logits")(logits)
    return keras.Model(inputs, task_outputs(logits, tasks), name=name)
