"""SAR-Net (Shen et al., CIKM'21, arXiv:2110.06475) as a single-task multi-domain
backbone: cross-scenario attention, a scenario-specific linear transformation, and
scenario-shared plus scenario-specific experts fused by a multi-scenario gate.

From the paper (Section "The proposed method"; a scenario is our domain):

- cross-scenario behavior extract layer: two attention modules over the user's
  behaviours, one queried by the scenario's features, one by the target item's.
- scenario-specific transform layer: a linear transformation of the encoded features
  with each scenario's own parameters.
- debias expert networks: scenario-specific experts and scenario-shared experts, each
  giving an intermediate result, fused by a multi-scenario gating module.
- fairness coefficient (FC): a per-sample weight, from the manual-intervention
  (promotion) features, that reweighs the debias experts' prediction.

Here: `ScenarioAttention` twice (query: the domain embedding; query: the pid
embedding) over the row's field embeddings (`inputs.stacked()`), their outputs
concatenated with `inputs.flat()`; `ScenarioLinear` (per-domain scale and shift); the
factory's dense stack (where MLoRA's adapters sit with `--adapter=mlora`); then
`ScenarioExperts` (shared experts plus the row's domain expert, gated from the domain
embedding) and the logit head. MoE-MLoRA is refused.

Choices where the paper gives none, or where our data lacks what it uses:

- behaviours: our data has no behaviour sequences, so both attentions run over the
  row's own field embeddings (uid, pid, domain, then any further features): the
  scenario query picks which of the row's features matter in its scenario, the item
  query which matter for the item. Scaled dot-product scores, query/key projections of
  the embedding width, no value projection.
- scenario-specific linear transformation: element-wise, `x * gamma_d + beta_d`,
  starting at the identity.
- experts: the dense stack (256, 128, 64; ReLU; dropout 0.5) is the experts' shared
  bottom, so the MLoRA adapters have one place to sit; on it, 2 shared experts and one
  expert per domain, each one ReLU layer of 64 units (the stack's last width); the gate
  is `softmax` of a dense layer of the domain embedding over the shared experts and
  the row's own expert.
- fairness coefficient: left out (weight 1 for every sample): our data has no
  intervention or promotion signal to compute it from.
- embeddings 8 (the attention needs equal sizes); profile `mlora_class` for Base and
  +MLoRA; `lora_reduce` 16, as the gate-NU models; bias-free logit head plus the
  global bias.
"""

from keras import layers

from mlora_tf.layers.scenario_attention import ScenarioAttention
from mlora_tf.layers.scenario_experts import ScenarioExperts, ScenarioLinear
from mlora_tf.models.registry import register_multi_domain_model

NUM_SHARED_EXPERTS = 2


def _embedding(inputs, feature):
    return inputs.embeddings[inputs.features.index(feature)]


@register_multi_domain_model(
    "sarnet",
    "SAR-Net: scenario/item attention, scenario-specific transform, 256-128-64 ReLU stack, "
    "shared + scenario experts with a scenario gate -> logit.",
)
def build_sarnet(inputs):
    fields = inputs.stacked()
    domain = _embedding(inputs, "domain")
    scenario_interest = ScenarioAttention(name="scenario_attention")([domain, fields])
    item_interest = ScenarioAttention(name="item_attention")([_embedding(inputs, "pid"), fields])
    encoded = layers.Concatenate(name="sarnet_features")([inputs.flat(), scenario_interest, item_interest])
    transformed = ScenarioLinear(inputs.n_domains, name="scenario_transform")([encoded, inputs.domain])
    shared_bottom = inputs.deep(transformed)
    experts = ScenarioExperts(
        inputs.config.hidden_units[-1], inputs.n_domains, num_shared=NUM_SHARED_EXPERTS, name="scenario_experts"
    )([shared_bottom, inputs.domain, domain])
    return inputs.logit_head(experts)
