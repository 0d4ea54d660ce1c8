"""STAR (original-model-zoo.md §4): partitioned normalisation, then the star-topology
dense stack (shared kernel times the row's domain kernel), then a logit.

The dense stack comes from the factory with topology `star`; with `--adapter=mlora`
the same stack carries MLoRA adapters on every layer. No dropout, no L2, uniform
(+-0.05) embeddings of size 128, as the original `Star` class and config.
"""

from keras import layers

from mlora_tf.layers.interactions import AuxiliaryNet, PartitionedNorm
from mlora_tf.layers.mixture import DomainSelector
from mlora_tf.models.registry import register_multi_domain_model


@register_multi_domain_model(
    "star",
    "STAR: partitioned norm + star-topology 256-128-64 stack (shared x domain kernels).",
    base_profile="star_class",
    adapted_profile="star_class",
    topology="star",
    dropout=0.0,
    embedding_dim=128,
)
def build_star(inputs):
    domain_one_hot = DomainSelector(inputs.n_domains, name="star_domain")(inputs.domain)
    x = PartitionedNorm(name="partitioned_norm")([inputs.flat(), domain_one_hot])
    hidden = inputs.deep(x)
    if inputs.config.auxiliary_net:
        # The original adds the auxiliary net's ReLU output to the last hidden layer
        # (not a logit, unlike the STAR paper).
        aux = AuxiliaryNet(int(hidden.shape[-1]), name="auxiliary_net")([x, domain_one_hot])
        hidden = layers.Add(name="hidden_plus_auxiliary")([hidden, aux])
    return inputs.logit_head(hidden)
