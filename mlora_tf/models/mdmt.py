"""Baselines of M3oE's Table 2 in their multi-domain multi-task (MDMT) form.

Registered in `mlora_tf.models.registry`; each is built from shared layers. Every
model has M3oE's inputs and outputs (`embed_inputs`, `task_outputs`: the 113-wide
input vector `x` for MovieLens, one logit and probability per task), ends in
`DomainTaskTowers` (towers `Linear(u -> tower_units)`, LayerNorm, ReLU,
`Linear(tower_units -> 1)`, objective `k = t * D + d`) and is sized by the fields of
`M3oEConfig` (`star_units` 512, `hidden_units` 256, `expert_units` 64,
`tower_units` 64, `num_shared_experts` N = 4, LayerNorm epsilon 1e-5), with torch's
default initialisation where the M3oE layers have it.

| name | paper row | bottom | tower input |
|---|---|---|---|
| `mlp` | MLP | per (d, t): own embeddings, LN-MLP 113 -> 256 -> 64 | 64 |
| `shared_bottom` | ShBot-MDMT | LN-MLP 113 -> 512 -> 256, shared | 256 |
| `mmoe` | MMoE-MDMT | N experts LN-MLP 113 -> 256, one gate per (d, t) | 256 |
| `ple` | PLE-MDMT | one CGC level: N shared + S per (d, t), LN-MLP 113 -> 256 | 256 |
| `star` | STAR (ours: STAR-MDMT) | star-topology FCN 113 -> 512 -> 256 | 256 |
| `mlora_sb` | (ours) | MLoRA `AdaptedDNN` 113 -> 512 -> 256, per-domain LoRA | 256, one tower per task |

The paper's baselines are not in M3oE's repository (m3oe.md §4): these are written
from their papers, in the -MDMT setting (one network for all domains and tasks, the
objectives separated only by their gates and towers). Every row is scored by its own
domain's parameters, so a batch may mix domains and each row's outputs equal those
of a batch of its own domain.
"""

from __future__ import annotations

import keras
from keras import ops

from mlora_tf.layers.adapted_dnn import AdaptedDNN
from mlora_tf.layers.interactions.star_fcn import StarFCN
from mlora_tf.layers.m3oe import CGCGates, DomainTaskTowers, ExpertBank, ExpertGates, LNDense
from mlora_tf.layers.m3oe._utils import xavier_uniform
from mlora_tf.layers.mixture import DomainSelector
from mlora_tf.models.mdmt_parts import embed_inputs, input_vector, task_outputs
from mlora_tf.models.registry import register_multitask_model


def _objective_grid(vectors: list, n_tasks: int, n_domains: int, name: str):
    """`(batch_size, n_tasks, n_domains, units)` from one `(batch_size, units)` vector
    per objective, listed in objective order `k = t * n_domains + d`."""
    units = int(vectors[0].shape[-1])
    flat = vectors[0] if len(vectors) == 1 else keras.layers.Concatenate(axis=-1, name=f"{name}_concat")(vectors)
    # Concatenated position k * units + j is (t, d, j) of a row-major (T, D, units).
    return keras.layers.Reshape((n_tasks, n_domains, units), name=name)(flat)


def _for_every_objective(h, n_tasks: int, n_domains: int, name: str):
    """`h` `(batch_size, units)` repeated as `(batch_size, n_tasks, n_domains, units)`."""
    units = int(h.shape[-1])
    repeated = keras.layers.RepeatVector(n_tasks * n_domains, name=f"{name}_repeat")(h)
    return keras.layers.Reshape((n_tasks, n_domains, units), name=name)(repeated)


def _towers(config, z, domain):
    return DomainTaskTowers(config.tower_units, epsilon=config.layer_norm_epsilon, name="towers")([z, domain])


@register_multitask_model(
    "mlp",
    "MLP: an independent network per (domain, task): own embeddings, LN-MLP bottom and tower",
    paper_name="MLP",
)
def build_mlp(config, data, name: str = "mlp") -> keras.Model:
    """The MLP row: `D * T` independent networks, one per (domain, task) objective.

    Objective `k = (d, t)` has its own embedding tables (layers `<task>_d<d>_<feature>
    _embedding`), its own bottom `LNDense(hidden_units)` -> `LNDense(expert_units)`
    (`<task>_d<d>_bottom_0/1`, 113 -> 256 -> 64) and its own tower (`towers`, slot
    `k`): nothing is shared. A row of domain `d` is scored for task `t` by network
    `(d, t)` only.

    Trained jointly under one summed loss, each network receives gradient only from
    its own task's loss on its own domain's rows, so this is equivalent to `D * T`
    separately trained MLPs except for the joint early stopping and the shared batch
    loop (a batch's other-domain rows still count in the mean and still step the
    optimizer's moments). The paper's MLP row is exactly that: one model per domain
    per task.
    """
    n_domains, tasks = data.n_domains, data.tasks
    eps = config.layer_norm_epsilon
    inputs, domain, bottoms = None, None, []
    for task in tasks:
        for d in range(n_domains):
            prefix = f"{task}_d{d}_"
            if inputs is None:
                inputs, x, domain = embed_inputs(config, data, prefix)
            else:
                x = input_vector(config, data, inputs, prefix)
            h = LNDense(config.hidden_units, epsilon=eps, name=f"{prefix}bottom_0")(x)
            bottoms.append(LNDense(config.expert_units, epsilon=eps, name=f"{prefix}bottom_1")(h))
    z = _objective_grid(bottoms, len(tasks), n_domains, "objective_bottoms")
    return keras.Model(inputs, task_outputs(_towers(config, z, domain), tasks), name=name)


@register_multitask_model(
    "shared_bottom",
    "Shared-Bottom MDMT: one LN-MLP bottom for every (domain, task), per-(domain, task) towers",
    paper_name="ShBot-MDMT",
)
def build_shared_bottom(config, data, name: str = "shared_bottom") -> keras.Model:
    """ShBot-MDMT: `x` -> `LNDense(star_units)` -> `LNDense(hidden_units)` (113 -> 512
    -> 256, layers `bottom_0/1`), the same vector fed to every (domain, task) tower."""
    n_domains, tasks = data.n_domains, data.tasks
    eps = config.layer_norm_epsilon
    inputs, x, domain = embed_inputs(config, data)
    h = LNDense(config.star_units, epsilon=eps, name="bottom_0")(x)
    h = LNDense(config.hidden_units, epsilon=eps, name="bottom_1")(h)
    z = _for_every_objective(h, len(tasks), n_domains, "objective_inputs")
    return keras.Model(inputs, task_outputs(_towers(config, z, domain), tasks), name=name)


@register_multitask_model(
    "mmoe",
    "MMoE-MDMT: N shared LN-MLP experts on the input, one softmax gate per (domain, task)",
    paper_name="MMoE-MDMT",
)
def build_mmoe(config, data, name: str = "mmoe") -> keras.Model:
    """MMoE-MDMT: `N = num_shared_experts` experts `LN-MLP(113 -> hidden_units)`
    (`ExpertBank`, layer `experts`) on `x`; one gate `softmax(Linear(x -> N))` per
    (domain, task) objective (`ExpertGates`, layer `gates`, gradient flowing into the
    embeddings: MMoE has no stop-gradient); the mix of objective `k` feeds tower `k`."""
    n_domains, tasks = data.n_domains, data.tasks
    inputs, x, domain = embed_inputs(config, data)
    experts = ExpertBank(
        config.num_shared_experts, config.hidden_units, epsilon=config.layer_norm_epsilon, name="experts"
    )(x)
    z = ExpertGates(n_domains, len(tasks), stop_gradient=False, name="gates")([x, experts])
    return keras.Model(inputs, task_outputs(_towers(config, z, domain), tasks), name=name)


@register_multitask_model(
    "ple",
    "PLE-MDMT: one CGC level, N shared experts plus specific experts per (domain, task)",
    paper_name="PLE-MDMT",
)
def build_ple(config, data, name: str = "ple") -> keras.Model:
    """PLE-MDMT: one customized-gate-control (CGC) extraction level.

    `N = num_shared_experts` shared experts (layer `shared_experts`) and
    `S = specific_experts` experts owned by each (domain, task) objective (layer
    `specific_experts`, `T * D * S` of them, objective `k` owning `k*S .. k*S+S-1`),
    all `LN-MLP(113 -> hidden_units)` on `x`. Objective `k`'s gate (`CGCGates`,
    layer `gates`) is `softmax(Linear(x -> N + S))` over the shared experts and its
    own; its mix feeds tower `k`. Multi-level PLE (stacked extraction networks with
    shared gates) is not built: one level is the CGC model of the PLE paper.
    """
    n_domains, tasks = data.n_domains, data.tasks
    eps = config.layer_norm_epsilon
    inputs, x, domain = embed_inputs(config, data)
    shared = ExpertBank(config.num_shared_experts, config.hidden_units, epsilon=eps, name="shared_experts")(x)
    specific = ExpertBank(
        len(tasks) * n_domains * config.specific_experts, config.hidden_units, epsilon=eps, name="specific_experts"
    )(x)
    z = CGCGates(n_domains, len(tasks), name="gates")([x, shared, specific])
    return keras.Model(inputs, task_outputs(_towers(config, z, domain), tasks), name=name)


@register_multitask_model(
    "star",
    "STAR-MDMT: star-topology FCN bottom (shared x per-domain kernels), per-(domain, task) towers",
    paper_name="STAR",
)
def build_star_mdmt(config, data, name: str = "star") -> keras.Model:
    """STAR-MDMT: the star-topology fully connected network as the bottom.

    Two `StarFCN` layers (`star_fcn_0/1`, 113 -> `star_units` -> `hidden_units`, ReLU):
    row of domain `d` computes `ReLU(h (W_sh * W_d) + b_sh + b_d)`, each kernel drawn
    per-matrix Xavier-uniform and the biases zero, as M3oE's own star projection
    `f_DR` (m3oe.md §2.1 row 2). The bottom's output feeds every (domain, task)
    tower.

    The paper's STAR row is trained **per task** (one STAR per task, its domains
    shared); this is one network for both tasks (STAR-MDMT), the tasks separated only
    by their towers. STAR's partitioned normalisation and auxiliary network are not
    built: the per-(domain, task) towers already hold domain-specific parameters.
    """
    n_domains, tasks = data.n_domains, data.tasks
    inputs, x, domain = embed_inputs(config, data)
    one_hot = DomainSelector(n_domains, name="domain_one_hot")(domain)
    h = x
    for i, units in enumerate((config.star_units, config.hidden_units)):
        fan_in = int(h.shape[-1])
        h = StarFCN(
            units, activation="relu", kernel_initializer=xavier_uniform(fan_in, units), name=f"star_fcn_{i}"
        )([h, one_hot])
    z = _for_every_objective(h, len(tasks), n_domains, "objective_inputs")
    return keras.Model(inputs, task_outputs(_towers(config, z, domain), tasks), name=name)


@register_multitask_model(
    "mlora_sb",
    "ours: MLoRA adapters on a Shared-Bottom MDMT network (per-domain LoRA in every hidden layer, "
    "one tower per task)",
    paper_name=None,
    ours=True,
)
def build_mlora_shared_bottom(config, data, name: str = "mlora_sb") -> keras.Model:
    """MLoRA-SB: a Shared-Bottom whose bottom carries MLoRA's per-domain adapters.

    The bottom is `AdaptedDNN` in `"mlora"` mode (layer `mlora_bottom`): hidden units
    `(star_units, hidden_units)` (113 -> 512 -> 256), each layer `ReLU(h W + b +
    h A_d B_d + c_d)` with the row's domain `d`, rank `max(units // lora_reduce, 1)`
    (128 and 64 at `lora_reduce=4`), `B` and `c` starting at zero. Its kernels are
    torch's `U(+-1/sqrt(fan_in))` (as `VarianceScaling(1/3, fan_in, uniform)`), its
    biases zero (`AdaptedDNN` has no bias initializer), and it has no LayerNorm, unlike
    `shared_bottom`'s `LNDense` blocks.

    Domain specificity lives in the adapters only: the towers are one per task,
    shared by the domains. They are a `DomainTaskTowers` on `(batch_size, T, 1,
    units)` routed by a constant pseudo-domain 0, so tower `t` is task `t`'s. A row
    whose domain id is outside `[0, D)` gets no adapter (the towers still score it).
    """
    n_domains, tasks = data.n_domains, data.tasks
    inputs, x, domain = embed_inputs(config, data)
    h = AdaptedDNN(
        hidden_units=(config.star_units, config.hidden_units),
        mode="mlora",
        n_domains=n_domains,
        lora_reduce=config.lora_reduce,
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        name="mlora_bottom",
    )([x, domain])
    z = _for_every_objective(h, len(tasks), 1, "task_inputs")
    logits = _towers(config, z, ops.zeros_like(domain))
    return keras.Model(inputs, task_outputs(logits, tasks), name=name)
