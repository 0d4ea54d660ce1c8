"""Initializer profiles: how the original initialised each family of models.

The original builds Base and adapted variants through different classes, which use
different initialisers (original-model-zoo.md §1.2, §1.3, §3, §8 item 6). A backbone
does not know which variant it is; the factory hands it the profile's initializers.
"""

from __future__ import annotations

import dataclasses

import keras

from mlora_tf.layers.lora_dense import SlotGlorot


@dataclasses.dataclass(frozen=True)
class VariantProfile:
    """Initializers and regularisation of one family of models.

    Attributes:
        name: profile name.
        id_embedding: initializer config of the uid/pid tables.
        domain_embedding: initializer config of the domain table.
        embedding_l2: whether the backbone's `l2_reg_embedding` applies.
        dense_kernel: initializer of the dense stack's shared kernels.
        adapter_fans / adapter_distribution: `SlotGlorot` settings of the adapter `A`.
        head: initializer of the logit head(s).
        op_seeds: the original's explicit op seeds, `(initializer, seed)` pairs for
            `id_embedding`, `domain_embedding`, `dense_kernel`, `head`, `adapter` and
            `dropout` (layer i: seed + i); initializers absent here were unseeded in
            the original (seeded from its graph seed). Used by `with_op_seeds`.
        adapter_seed: seed of the adapter `A` initializer (None: the run's draws).
        dropout_seed: seed of the dense stack's dropout (None: the run's draws).
    """

    name: str
    id_embedding: dict
    domain_embedding: dict
    embedding_l2: bool
    dense_kernel: str | dict
    adapter_fans: str
    adapter_distribution: str
    head: str | dict
    op_seeds: tuple = ()
    adapter_seed: int | None = None
    dropout_seed: int | None = None

    def initializer(self, which: str):
        value = getattr(self, which)
        return keras.initializers.get(dict(value) if isinstance(value, dict) else value)

    def adapter_initializer(self, n_slots: int) -> SlotGlorot:
        return SlotGlorot(n_slots, fans=self.adapter_fans, distribution=self.adapter_distribution, seed=self.adapter_seed)

    def with_op_seeds(self, graph_seed: int) -> "VariantProfile":
        """This profile with the original's op seeds (`--init_seeds=original`).

        TF 1 draws an initializer with op seed `s` under graph seed `g` from `(g, s)`
        alone, so two same-shaped weights with one op seed start identical (DeepCTR's
        DNN kernels, logit heads and `A`: 1024; embeddings: 2020). Here the op seed
        becomes `s + offset(graph_seed)`: the same structure within a run, other values
        for another run seed.
        """
        offset = graph_seed_offset(graph_seed)
        changes = {}
        for which, seed in self.op_seeds:
            if which == "adapter":
                changes["adapter_seed"] = seed + offset
            elif which == "dropout":
                changes["dropout_seed"] = seed + offset
            else:
                config = keras.initializers.serialize(self.initializer(which))
                config["config"] = dict(config["config"], seed=seed + offset)
                changes[which] = config
        return dataclasses.replace(self, **changes)


# `ModelConfig.init_seeds`: the run's own draws, or the original's op seeds (`with_op_seeds`).
INIT_SEEDS = ("independent", "original")


def graph_seed_offset(graph_seed: int) -> int:
    """The shift `with_op_seeds` adds to the original's op seeds for a run seed."""
    return (int(graph_seed) * 7919) % (1 << 20) * 4096


def _normal(std):
    return {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": std}}


# DeepCTR 0.9.0's seeds (original-model-zoo.md §1.2, §2.1, §3.1).
_DEEPCTR_SEEDS = (
    ("id_embedding", 2020), ("domain_embedding", 2020), ("dense_kernel", 1024), ("head", 1024),
    ("adapter", 1024), ("dropout", 1024),
)
# The fork's MloraMoE: unseeded W and A; DeepCTR's embeddings, heads and dropout seeds (§7.2).
_MOE_FORK_SEEDS = (("id_embedding", 2020), ("domain_embedding", 2020), ("head", 1024), ("dropout", 1024))

_UNIFORM = {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}}

PROFILES = {
    # deepctr 0.9.0 models (`*_single` configs): Normal(0, 1e-4) embeddings, L2 1e-5.
    "deepctr": VariantProfile(
        "deepctr", _normal(1e-4), _normal(1e-4), True, "glorot_normal", "stacked", "truncated_normal", "glorot_normal",
        _DEEPCTR_SEEDS,
    ),
    # The `*_lora` classes: uid/pid tables Normal(0, 0.01), domain table unchanged;
    # `Mlora`'s A is glorot-normal over the 3-D (D, in, r) tensor.
    "deepctr_lora": VariantProfile(
        "deepctr_lora", _normal(1e-2), _normal(1e-4), True, "glorot_normal", "stacked", "truncated_normal", "glorot_normal",
        _DEEPCTR_SEEDS,
    ),
    # The `MLoRA` and `Star` classes: Keras-default uniform(+-0.05) embeddings, no L2,
    # glorot-uniform dense layers, `MLoRAFCN`'s A glorot-uniform with 3-D fans.
    "mlora_class": VariantProfile(
        "mlora_class", _UNIFORM, _UNIFORM, False, "glorot_uniform", "stacked", "uniform", "glorot_uniform"
    ),
    # The `Star` class: as `MLoRA` (its StarFCN kernels are glorot-uniform by default).
    "star_class": VariantProfile(
        "star_class", _UNIFORM, _UNIFORM, False, "glorot_uniform", "stacked", "uniform", "glorot_uniform"
    ),
    # The MoE-MLoRA fork's `MloraMoE`: glorot-uniform W, per-expert 2-D glorot-uniform A.
    "moe_fork": VariantProfile(
        "moe_fork", _normal(1e-2), _normal(1e-4), True, "glorot_uniform", "per_slot", "uniform", "glorot_normal",
        _MOE_FORK_SEEDS,
    ),
}


def get_profile(name: str) -> VariantProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"Unknown profile {name!r}. Valid: {', '.join(sorted(PROFILES))}") from None
