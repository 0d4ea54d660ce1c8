"""M2M (Zhang et al., WSDM'22, arXiv:2201.06814) as a single-task multi-domain backbone:
one task, one meta tower, the scenario being the domain.

Built from the layers of the multi-task `m2m` (`mlora_tf/models/mdmt_fusion.py`,
`layers/m3oe/meta_unit.py`, `meta_attention.py`), with one task:

- scenario knowledge representation `z`: the row's domain embedding (a row of the
  `domain_emb` table);
- backbone: the factory's dense stack on the flat embeddings, then the expert views,
  `N = 4` LN-MLP experts (`ExpertBank`, Linear -> LayerNorm -> ReLU of width 64);
- meta attention (`MetaAttention`, one task): `R = sum_i softmax_i(v . Meta([E_i; T]; z)) E_i`;
- meta tower: `META_TOWER_LAYERS` = 2 `MetaUnit(64)` layers conditioned on `z`,
  `h <- ReLU(Meta(h; z)) + h` (the residual where widths agree), then the logit head.

Every meta unit's weights are generated per row from its own `z`, so a batch may mix
domains. With `--adapter=mlora` the dense stack's hidden layers carry the MLoRA
adapters (the meta layers have generated weights of their own); MoE-MLoRA is refused.

Choices where the paper gives none (or where our data differs):

- the paper's backbone encodes behaviour sequences with a Transformer and feeds the
  experts; our rows have no sequence, so the experts read the dense stack's output
  (hidden units (256, 128, 64), ReLU, dropout 0.5): the stack is the encoder, and
  where the MLoRA adapters go;
- `z` = the domain embedding itself (no scenario MLP: the data has no other scenario
  feature); `N` = 4 experts of width 64 (M3oE's `num_shared_experts` and
  `expert_units`, as the multi-task `m2m`); task embedding 16 wide, meta-attention
  width 16 (`META_ATTENTION_UNITS`), 2 meta-tower layers of 64, as the multi-task
  `m2m`; torch-style `U(+-1/sqrt(fan_in))` initialisers in the M2M layers (theirs);
- logit head `Dense(1)` without bias plus the global bias (the repo's DNN backbones);
  embeddings of size 8; initializer profile `mlora_class` for Base and +MLoRA;
  `lora_reduce` 16; no auxiliary losses.
"""

import keras

from mlora_tf.layers.m3oe import ExpertBank, MetaAttention, MetaUnit
from mlora_tf.models.mdmt_fusion import META_ATTENTION_UNITS, META_TOWER_LAYERS
from mlora_tf.models.registry import register_multi_domain_model

NUM_EXPERTS = 4
"""M2M's expert views (M3oE's `num_shared_experts`)."""
EXPERT_UNITS = 64
"""Width of each expert and of the meta tower (M3oE's `expert_units`, `tower_units`)."""
TASK_EMBEDDING_DIM = 16
"""Width of the (one) task embedding of the meta attention."""


@register_multi_domain_model(
    "m2m",
    "M2M: 256-128-64 ReLU stack -> 4 experts, meta attention and a residual meta tower "
    "generated from the domain embedding -> logit.",
)
def build_m2m(inputs):
    z = inputs.embeddings[inputs.features.index("domain")]
    experts = ExpertBank(NUM_EXPERTS, EXPERT_UNITS, name="m2m_experts")(inputs.deep(inputs.flat()))
    represented = MetaAttention(
        1, attention_units=META_ATTENTION_UNITS, task_embedding_dim=TASK_EMBEDDING_DIM, name="m2m_meta_attention"
    )([experts, z])
    h = keras.layers.Reshape((EXPERT_UNITS,), name="m2m_task_view")(represented)
    for layer in range(META_TOWER_LAYERS):
        out = MetaUnit(EXPERT_UNITS, activation="relu", name=f"m2m_meta_tower_{layer}")([h, z])
        h = keras.layers.Add(name=f"m2m_meta_residual_{layer}")([out, h])
    return inputs.logit_head(h)
