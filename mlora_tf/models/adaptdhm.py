"""AdaptDHM (Li et al., 2022, arXiv:2211.12105) as a single-task multi-domain backbone:
a shared bottom, a distribution adaptation module that routes each row to one of K
hidden clusters, and one tower per cluster.

From the paper (its hierarchical structure: a clustering process and a classification
process, end to end, with no pre-defined grouping of the domains):

- shared bottom over the embeddings: here the factory's dense stack (256, 128, 64),
  ReLU, dropout 0.5;
- distribution adaptation module: each row's distribution coefficients over K
  clusters, the row belonging to one cluster (`ClusterRouter`,
  `layers/cluster_router.py`);
- classification: the row's cluster-specific tower gives its logit (the towers run
  on every row and the route selects one; the values are those of running the one
  tower, the paper's saving in time is not reproduced).

With `--adapter=mlora` the shared bottom's hidden layers carry the MLoRA adapters;
the router and towers sit on top, as in Base. MoE-MLoRA is refused.

Choices where the paper gives none (its routing equations are not in the text we
could read; see docs/fidelity.md):

- routing: cosine similarity of the shared-bottom output to K centroids, hard
  argmax route; coefficients `softmax(cos / 1.0)`; the centroids are an online k-means
  (moving average, momentum 0.99, of the unit-normalised rows routed to them in
  each training batch), not trained by the loss; `N(0, 0.05)` initial centroids;
- K = 4 clusters (`NUM_CLUSTERS`, more than our datasets' 2-3 domains, so the
  clusters need not copy the domains);
- towers: one LN-MLP layer of 32 per cluster (Linear -> LayerNorm -> ReLU, the
  multi-task experts' layer, `ExpertBank`) and a per-cluster linear logit with bias;
- the domain id enters only through its embedding in the shared bottom's input;
- the global bias on top, embeddings of size 8, initializer profile `mlora_class`
  for Base and +MLoRA, `lora_reduce` 16.
"""

import keras

from mlora_tf.layers.cluster_router import ClusterRouter
from mlora_tf.layers.m3oe import ExpertBank
from mlora_tf.models.registry import register_multi_domain_model

NUM_CLUSTERS = 4
"""AdaptDHM's hidden clusters `K`."""
TOWER_UNITS = 32
"""Width of each cluster tower's hidden layer."""


@register_multi_domain_model(
    "adaptdhm",
    "AdaptDHM: 256-128-64 ReLU shared bottom -> each row routed to 1 of 4 learned clusters -> its tower -> logit.",
)
def build_adaptdhm(inputs):
    shared = inputs.deep(inputs.flat())
    route = ClusterRouter(NUM_CLUSTERS, name="adaptdhm_router")(shared)
    towers = ExpertBank(NUM_CLUSTERS, TOWER_UNITS, name="adaptdhm_towers")(shared)
    logits = keras.layers.EinsumDense(
        "bkd,kd->bk", output_shape=(NUM_CLUSTERS,), bias_axes="k", name="adaptdhm_tower_logits"
    )(towers)
    return keras.layers.Dot(axes=1, name="adaptdhm_routed_logit")([route, logits])
