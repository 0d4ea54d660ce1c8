"""The gate-NU family (PEPNet, Chang et al., KDD'23, arXiv:2302.01115) as single-task
multi-domain backbones: EPNet, PPNet and PEPNet (both).

From the paper (Methodology; `E` the general embeddings, `⊕` concatenation, `⊗`
element-wise product, `∅` stop-gradient, `U` a `GateNU`):

- Gate NU: `delta = gamma * sigmoid(ReLU(x W + b) W' + b')`, `gamma = 2`.
- EPNet: `O_ep = U_ep(E(F_d) ⊕ ∅(E)) ⊗ E`, the general embeddings scaled from the
  domain-side features.
- PPNet: `O_l = U_pp^l(E(F_u) ⊕ E(F_i) ⊕ ∅(H_1)) ⊗ H_l`, `H_{l+1} = f(O_l W_l + b_l)`:
  one gate per tower layer scales that layer's input (`H_1` is the tower's input:
  `E` in PPNet, `O_ep` in PEPNet).

Here `E` is `inputs.flat()` (every feature's embedding, as the other backbones' dense
input) and the tower is the factory's dense stack plus the logit head: gate 0 scales
the stack's input, gate `l >= 1` the output of hidden layer `l - 1` (the stack's
`layer_scales` hook), the last one feeding the head. With `--adapter=mlora` the
stack's hidden layers carry MLoRA adapters and the gates sit on top, as in Base;
MoE-MLoRA is refused (defined for the MLoRA paper's backbones only).

Choices where the paper gives none (or gives its production setting):

- single task: the paper's towers are per task (`delta_task` split over tasks); here
  one tower and one logit, as every single-task backbone.
- EPNet's scale is element-wise over the flat `E` (one scale per embedding entry: the
  paper writes `E` as a concatenation and `⊗` as the element-wise product).
- domain-side features `F_d`: the domain-id embedding alone (the data has no
  per-domain statistics), a row of the same `domain_emb` table `E` holds; user- and
  item-side features `F_u, F_i`: the uid and pid embeddings (the same tables; there
  is no author side). Further features (a CSV's extra columns) are only in `E`. The
  prior keeps its gradient; only the general part of a gate's input is stopped.
- Gate NU: first-layer width = the gate's input width; glorot-uniform kernels and
  zero biases (Keras `Dense` defaults), in both layers.
- tower: hidden units (256, 128, 64), ReLU, dropout 0.5 (`--dropout`), logit head
  `Dense(1)` without bias plus the global bias, as the repo's DNN backbones.
- embeddings of size 8 (`--embedding_dim`); Base and +MLoRA share one initializer
  profile (`mlora_class`: uniform(+-0.05) embeddings, no embedding L2, glorot-uniform
  dense kernels and head), so +MLoRA differs from Base by the adapters only.
- `lora_reduce` 16, as MLP and WDL.
"""

from keras import layers

from mlora_tf.layers.gate_nu import GateNU
from mlora_tf.models.registry import register_multi_domain_model


def _embedding(inputs, feature):
    return inputs.embeddings[inputs.features.index(feature)]


def _epnet(inputs, general):
    """`O_ep = U_ep(E(domain) ⊕ ∅(E)) ⊗ E`, `(batch_size, width of E)`."""
    delta = GateNU(int(general.shape[-1]), name="epnet_gate")([_embedding(inputs, "domain"), general])
    return layers.Multiply(name="epnet_embeddings")([general, delta])


def _ppnet_tower(inputs, x):
    """The tower with a gate on each layer's input, `U_pp^l(E(uid) ⊕ E(pid) ⊕ ∅(x))`;
    returns the logit `(batch_size, 1)`."""
    prior = layers.Concatenate(name="ppnet_prior")([_embedding(inputs, "uid"), _embedding(inputs, "pid")])
    widths = [int(x.shape[-1]), *inputs.config.hidden_units]
    gates = [GateNU(width, name=f"ppnet_gate_{i}")([prior, x]) for i, width in enumerate(widths)]
    gated = layers.Multiply(name="ppnet_input")([x, gates[0]])
    return inputs.logit_head(inputs.deep(gated, layer_scales=gates[1:]))


@register_multi_domain_model(
    "epnet",
    "EPNet: domain-gated embeddings (Gate NU) -> 256-128-64 ReLU stack -> logit.",
)
def build_epnet(inputs):
    return inputs.logit_head(inputs.deep(_epnet(inputs, inputs.flat())))


@register_multi_domain_model(
    "ppnet",
    "PPNet: 256-128-64 ReLU stack, every layer's input gated from uid/pid (Gate NU) -> logit.",
)
def build_ppnet(inputs):
    return _ppnet_tower(inputs, inputs.flat())


@register_multi_domain_model(
    "pepnet",
    "PEPNet: EPNet's domain-gated embeddings into PPNet's uid/pid-gated stack -> logit.",
)
def build_pepnet(inputs):
    return _ppnet_tower(inputs, _epnet(inputs, inputs.flat()))
