"""HAMUR (Li et al., CIKM'23, arXiv:2309.06217) as a single-task multi-domain backbone:
an MLP whose every hidden layer is followed by a hyper-network adapter.

From the paper (Method; `h_l` the output of backbone layer `l`, `z` the instance
representation, `d` the row's domain):

- Domain-specific adapter: a bottleneck (down-projection, ReLU, up-projection)
  followed by a domain normalization, added to `h_l` with a residual, after every
  backbone layer.
- Domain-shared hyper-network: generates the adapters' parameters from the
  instance, with a low-rank decomposition `W = U S V` (`U, V` the adapter's factors,
  `S` the instance-aware core the hyper-network outputs).

Both are `HyperAdapter` (`layers/hyper_adapter.py`); the backbone is the factory's
dense stack plus the logit head, and adapter `l` sits on hidden layer `l`'s output
through the stack's generic `layer_transforms` hook. With `--adapter=mlora` the
stack's hidden layers carry MLoRA adapters (inside the layers) and the HAMUR
adapters sit on their outputs, as in Base; MoE-MLoRA is refused (defined for the
MLoRA paper's backbones only).

Choices where the paper gives none (or gives its own datasets' setting):

- backbone: the paper plugs HAMUR into multi-domain backbones with one tower per
  domain; here one shared MLP (256, 128, 64), ReLU, dropout 0.5 (`--dropout`), the
  domain-specific part being the adapters' per-domain factors `U_d, V_d`, biases and
  normalization, and `z` (which holds the domain embedding).
- instance representation `z`: the flat embedding vector `inputs.flat()` (every
  feature's embedding, the domain's included), no extra encoder.
- adapter: bottleneck width `max(units // 4, 1)` per layer (64, 32, 16); rank of the
  generated weights `k = 8` (`S` is 8 x 8, one core for the down- and one for the
  up-projection); hyper-network one hidden ReLU layer of 64, shared by the domains
  (one hyper-network per backbone layer); domain normalization = layer norm with
  per-domain scale and shift, both starting at zeros (so every adapter starts as the
  identity: with scale ones the unit-variance adapter output swamped the small
  domain's calibration within the test's 3 epochs), epsilon 1e-5; glorot-uniform
  kernels, zero biases.
- logit head `Dense(1)` without bias plus the global bias, as the repo's DNN
  backbones; embeddings of size 8; initializer profile `mlora_class` for Base and
  +MLoRA (so +MLoRA differs by the MLoRA adapters only); `lora_reduce` 16.
"""

from mlora_tf.layers.hyper_adapter import HyperAdapter
from mlora_tf.models.registry import register_multi_domain_model

BOTTLENECK_REDUCE = 4
"""Adapter bottleneck width = hidden units // this."""


@register_multi_domain_model(
    "hamur",
    "HAMUR: 256-128-64 ReLU stack, a hyper-network adapter (per-domain U S(x) V) after every layer -> logit.",
)
def build_hamur(inputs):
    x = inputs.flat()
    adapters = [
        HyperAdapter(inputs.n_domains, max(units // BOTTLENECK_REDUCE, 1), name=f"hamur_adapter_{i}")
        for i, units in enumerate(inputs.config.hidden_units)
    ]
    return inputs.logit_head(inputs.deep(x, layer_transforms=adapters, transform_inputs=[x, inputs.domain]))
