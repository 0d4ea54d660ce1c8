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
    """

    name: str
    id_embedding: dict
    domain_embedding: dict
    embedding_l2: bool
    dense_kernel: str
    adapter_fans: str
    adapter_distribution: str
    head: str

    def initializer(self, which: str):
        return keras.initializers.get(dict(getattr(self, which)))

    def adapter_initializer(self, n_slots: int) -> SlotGlorot:
        return SlotGlorot(n_slots, fans=self.adapter_fans, distribution=self.adapter_distribution)


def _normal(std):
    return {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": std}}


_UNIFORM = {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}}

PROFILES = {
    # deepctr 0.9.0 models (`*_single` configs): Normal(0, 1e-4) embeddings, L2 1e-5.
    "deepctr": VariantProfile(
        "deepctr", _normal(1e-4), _normal(1e-4), True, "glorot_normal", "stacked", "truncated_normal", "glorot_normal"
    ),
    # The `*_lora` classes: uid/pid tables Normal(0, 0.01), domain table unchanged;
    # `Mlora`'s A is glorot-normal over the 3-D (D, in, r) tensor.
    "deepctr_lora": VariantProfile(
        "deepctr_lora", _normal(1e-2), _normal(1e-4), True, "glorot_normal", "stacked", "truncated_normal", "glorot_normal"
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
        "moe_fork", _normal(1e-2), _normal(1e-4), True, "glorot_uniform", "per_slot", "uniform", "glorot_normal"
    ),
}


def get_profile(name: str) -> VariantProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"Unknown profile {name!r}. Valid: {', '.join(sorted(PROFILES))}") from None
