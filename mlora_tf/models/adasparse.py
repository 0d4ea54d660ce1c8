"""AdaSparse (Yang et al., CIKM'22, arXiv:2206.13108) as a single-task multi-domain
backbone: a DNN whose hidden neurons are weighted, per row, by domain-aware pruners.

From the paper (Section "Proposed Approach"; `⊕` concatenation, `⊙` element-wise
product, `e_d` the domain-aware embeddings, `e_a` the domain-agnostic ones):

- backbone: an L-layer fully-connected network on `h^(0) = e_d ⊕ e_a`.
- domain-aware pruner: for each layer, a lightweight network turns the layer's
  representation and `e_d` into a neuron-level weighting factor `pi^(l)`, and the
  layer's neurons are multiplied by it, `h^(l) ⊙ pi^(l)`: a factor of 0 prunes the
  neuron for that domain.
- weighting factors: binarization (0/1), scaling (`beta * sigmoid`) and their fusion
  (scaling under a soft threshold), the paper's best; a flexible sparsity regularizer
  (for binarization) keeps each layer's share of zeros near a target ratio.

Here the backbone is the factory's dense stack plus the logit head, on `inputs.flat()`
(every feature's embedding: the domain embedding is `e_d`, the others `e_a`), and one
`DomainPruner` per hidden layer weights that layer's output `h^(l)` by
`pi^(l)(h^(l) ⊕ e_d)`, inside the stack through its generic `layer_transforms` hook
(after the layer's activation and dropout). With `--adapter=mlora` the hidden layers
carry MLoRA adapters and the pruners act on their outputs, as in Base; MoE-MLoRA is
refused.

Choices where the paper gives none (or where our stack differs):

- the pruner: one dense layer (the paper's "lightweight" network) on `h^(l) ⊕ e_d`,
  glorot-uniform kernel, zero bias, no stop-gradient; form `fusion` with `beta = 2`
  and soft threshold `epsilon = 0.25`: `pi = max(2 sigmoid(z) - 0.25, 0)` (a row's
  neuron is pruned when `z < -2.08`).
- the factors weight the hidden layers' outputs (every hidden neuron), not the
  embeddings (the stack's input).
- no sparsity regularizer: the paper applies it to the binarization form, and fusion
  prunes through its threshold; `DomainPruner(form="binarization")` exists for
  experiments, and the trainer has no term for a model's auxiliary losses.
- `e_d`: the domain-id embedding alone (the data has no other domain-aware feature).
- tower: hidden units (256, 128, 64), ReLU, dropout 0.5 (`--dropout`), bias-free logit
  head plus the global bias; embeddings 8; profile `mlora_class` for Base and +MLoRA;
  `lora_reduce` 16, as the gate-NU models.
"""

from mlora_tf.layers.domain_pruner import DomainPruner
from mlora_tf.models.registry import register_multi_domain_model

FORM, BETA, EPSILON = "fusion", 2.0, 0.25


@register_multi_domain_model(
    "adasparse",
    "AdaSparse: 256-128-64 ReLU stack, every hidden neuron weighted by a domain-aware pruner (fusion) -> logit.",
)
def build_adasparse(inputs):
    domain = inputs.embeddings[inputs.features.index("domain")]
    pruners = [
        DomainPruner(form=FORM, beta=BETA, epsilon=EPSILON, name=f"pruner_{i}")
        for i in range(len(inputs.config.hidden_units))
    ]
    return inputs.logit_head(inputs.deep(inputs.flat(), layer_transforms=pruners, transform_inputs=[domain]))
