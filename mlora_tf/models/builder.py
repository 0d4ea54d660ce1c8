"""The factory: feature inputs, embeddings and the dense stack, handed to a backbone.

`build_model(model_config, data_spec)` returns a functional Keras model with one int64
input of shape `(batch_size,)` per sparse feature of the data (`DataSpec.features`:
`uid`, `pid`, `domain`, then a dataset's further features, e.g. a CSV's extra columns)
and outputs `{"logit": (batch_size,), "probability": (batch_size,)}`. Every feature
gets one embedding table (and, for the backbones with a wide part, one linear table).
The backbone only sees a `BackboneInputs`: its embeddings and a dense stack it calls as
`inputs.deep(x)`, the same call whatever the adapter mode.

With the default features (`uid, pid, domain`) the model, its layers and its variable
names are exactly those of the three-feature factory.
"""

from __future__ import annotations

import dataclasses

import keras
from absl import logging
from keras import ops

from mlora_tf.config import ModelConfig
from mlora_tf.layers.adapted_dnn import AdaptedDNN
from mlora_tf.layers.core import GlobalBias, LinearLogit
from mlora_tf.models.data_spec import FEATURES, DataSpec, ordered_features  # noqa: F401  (defined there)
from mlora_tf.models.groups import variable_groups  # noqa: F401  (defined there)
from mlora_tf.models.profiles import INIT_SEEDS, VariantProfile, get_profile
from mlora_tf.models.registry import BackboneSpec, get_backbone

ADAPTER_MODES = {"none": "plain", "mlora": "mlora", "moe": "moe"}
DENSE_STACK_NAME = "dense_stack"
_TABLE_NAMES = {"uid": "user_emb", "pid": "item_emb", "domain": "domain_emb"}


def table_name(feature: str) -> str:
    """The embedding layer of `feature`: `user_emb`, `item_emb`, `domain_emb` for the
    three standard features, `emb_<feature>` for any further one."""
    return _TABLE_NAMES.get(feature, f"emb_{feature}")


class BackboneInputs:
    """What a backbone builder receives.

    Attributes:
        ids: the raw integer inputs, name -> `(batch_size,)`.
        embeddings: one `(batch_size, d)` tensor per feature, in `features` order.
        features: the sparse feature names (`uid, pid, domain`, then any others).
        domain: the domain ids `(batch_size,)`.
        config: the resolved `ModelConfig` (`resolve_config`).
        profile: the `VariantProfile` (initializers) of this variant.
    """

    def __init__(self, ids, embeddings, config, profile, dense_stack, vocab_sizes, n_domains, frozen=(),
                 features=FEATURES):
        self.ids = ids
        self.embeddings = embeddings
        self.features = tuple(features)
        self.domain = ids["domain"]
        self.config = config
        self.profile = profile
        self.n_domains = n_domains
        self._dense_stack = dense_stack
        self._vocab_sizes = vocab_sizes
        self._frozen = set(frozen)
        self._flat = None

    def flat(self):
        """Concatenated embeddings `(batch_size, sum of dims)` (DeepCTR's DNN input)."""
        if self._flat is None:
            self._flat = keras.layers.Concatenate(axis=-1, name="flat_embeddings")(self.embeddings)
        return self._flat

    def stacked(self):
        """Field-stacked embeddings `(batch_size, num_fields, d)`; all dims must agree."""
        dims = {int(e.shape[-1]) for e in self.embeddings}
        if len(dims) != 1:
            raise ValueError(f"This backbone needs equal embedding sizes. Received: {sorted(dims)}")
        return ops.stack(self.embeddings, axis=1)

    def deep(self, x, layer_scales=None, layer_transforms=None, transform_inputs=None):
        """Apply the dense stack (plain or adapted; the backbone cannot tell).

        `layer_scales`: optional list, one `(batch_size, hidden_units[i])` tensor (or
        None) per hidden layer, multiplying that layer's output (`AdaptedDNN`'s
        per-layer hook, e.g. PPNet's gates). `layer_transforms`: optional list, one
        Keras layer (or None) per hidden layer, called as `t([h, *transform_inputs])`
        on that layer's output (`AdaptedDNN.set_layer_transforms`, e.g. HAMUR's
        adapters); the stack is called once per model, so they are attached once."""
        kwargs = {}
        if layer_scales is not None:
            kwargs["layer_scales"] = list(layer_scales)
        if layer_transforms is not None:
            self._dense_stack.set_layer_transforms(list(layer_transforms))
            if transform_inputs:
                kwargs["transform_inputs"] = list(transform_inputs)
        return self._dense_stack([x, self.domain], **kwargs)

    def linear_logit(self):
        """The wide part: per-id scalar weights summed over features, `(batch_size, 1)`.

        A feature with frozen pretrained embeddings keeps its linear weights frozen at
        zero too (they inherit the table's trainable flag, as in the original)."""
        layer = LinearLogit(
            [self._vocab_sizes[f] for f in self.features], l2=self.config.l2_reg_linear,
            trainable_tables=[f not in self._frozen for f in self.features], name="linear_logit",
        )
        return layer([self.ids[f] for f in self.features])

    def logit_head(self, x, name="logit_head", use_bias=False):
        """`Dense(1)` without bias (DeepCTR's logit heads), `(batch_size, 1)`."""
        return keras.layers.Dense(
            1, use_bias=use_bias, kernel_initializer=keras.initializers.get(self.profile.head), name=name
        )(x)


def resolve_config(config: ModelConfig, data: DataSpec) -> ModelConfig:
    """The config `build_model` builds: a new `ModelConfig`, `config` itself unchanged.

    Its unset (None) `lora_reduce`, `dropout`, `user_dim`, `item_dim` and `domain_dim`
    take the backbone's original values, and a `num_experts` >= 1 sets
    `experts_per_domain` to `num_experts // data.n_domains`. Resolving a resolved
    config gives an equal one.

    Raises:
        ValueError: an unknown adapter or backbone, an adapter the backbone does not
            take, an unknown `init_seeds`, or a `num_experts` that is not a multiple of
            the number of domains.
    """
    spec, _ = _variant(config)
    if config.init_seeds not in (None, *INIT_SEEDS):
        raise ValueError(f"`init_seeds` must be one of {list(INIT_SEEDS)}. Received: init_seeds={config.init_seeds!r}")
    changes = {
        field: default
        for field, default in (
            ("lora_reduce", spec.default_lora_reduce),
            ("dropout", spec.dropout),
            ("user_dim", spec.embedding_dim),
            ("item_dim", spec.embedding_dim),
            ("domain_dim", spec.embedding_dim),
        )
        if getattr(config, field) is None
    }
    if config.num_experts is not None and config.num_experts >= 1:
        # The fork's `num_experts` counts all experts; expert e belongs to domain e mod D.
        if config.num_experts % data.n_domains:
            raise ValueError(
                f"`num_experts` must be a multiple of the number of domains ({data.n_domains}). "
                f"Received: num_experts={config.num_experts}"
            )
        changes["experts_per_domain"] = config.num_experts // data.n_domains
    return dataclasses.replace(config, **changes)


def _variant(config: ModelConfig) -> tuple[BackboneSpec, str]:
    """The backbone spec and dense-stack mode (`plain`, `mlora`, `moe`) of a config.

    Raises:
        ValueError: an unknown adapter or backbone, or an adapter the backbone does
            not take.
    """
    if config.adapter not in ADAPTER_MODES:
        raise ValueError(
            f"Unknown adapter {config.adapter!r}. Valid adapters: {', '.join(ADAPTER_MODES)}"
        )
    spec = get_backbone(config.name)
    mode = ADAPTER_MODES[config.adapter]
    if mode == "moe" and not spec.supports_moe:
        raise ValueError(f"MoE-MLoRA is not defined for backbone {config.name!r} (the paper's eight only).")
    if config.adapter not in spec.adapters:
        raise ValueError(
            f"Backbone {config.name!r} does not take adapter {config.adapter!r}. "
            f"Valid adapters: {', '.join(spec.adapters)}"
        )
    return spec, mode


def _profile(spec: BackboneSpec, mode: str) -> VariantProfile:
    """The initializer profile of a backbone's variant."""
    return get_profile({"plain": spec.base_profile, "mlora": spec.adapted_profile, "moe": "moe_fork"}[mode])


def make_dense_stack(
    config: ModelConfig, profile: VariantProfile, mode: str, lora_reduce, n_domains, topology: str = "dense"
) -> AdaptedDNN:
    """The dense-stack factory every backbone receives its `AdaptedDNN` from."""
    n_slots = n_domains * (config.experts_per_domain if mode == "moe" else 1)
    return AdaptedDNN(
        hidden_units=config.hidden_units,
        mode=mode,
        topology=topology,
        n_domains=n_domains if (mode != "plain" or topology == "star") else None,
        lora_reduce=lora_reduce if mode != "plain" else None,
        lora_rank=config.lora_rank if config.lora_rank and config.lora_rank >= 1 else None,
        experts_per_domain=config.experts_per_domain,
        dropout=config.dropout,
        kernel_initializer=profile.dense_kernel,
        adapter_a_initializer=profile.adapter_initializer(n_slots) if mode != "plain" else None,
        seed=profile.dropout_seed,
        dropout_impl=config.dropout_impl or "fast",
        name=DENSE_STACK_NAME,
    )


def build_model(config: ModelConfig, data: DataSpec, graph_seed: int | None = None) -> keras.Model:
    """Build the Keras model for `config` on data described by `data`.

    It builds `resolve_config(config, data)` (the backbone's original values for the
    unset fields); `config` itself is not changed.

    With `config.init_seeds == "original"` the initialisers take the original's op
    seeds under `graph_seed` (the run seed; `VariantProfile.with_op_seeds`).

    One int64 input `(batch_size,)` and one embedding table per feature of
    `data.features`. The tables of `uid`, `pid`, `domain` (`user_emb`, `item_emb`,
    `domain_emb`) take `user_dim`, `item_dim`, `domain_dim`; a further feature's table
    (`emb_<feature>`) takes `item_dim`, the backbone's embedding size unless set (e.g.
    by `--embedding_dim`), so field-stacking backbones see equal sizes.

    Returns:
        A functional `keras.Model` with one input per feature (named after it) and
        outputs `{"logit", "probability"}`, both `(batch_size,)`.

    Raises:
        ValueError: what `resolve_config` raises, a feature without a vocabulary
            size, or a feature name that is also the name of one of the model's layers.
    """
    config = resolve_config(config, data)
    spec, mode = _variant(config)
    profile = _profile(spec, mode)
    if config.init_seeds == "original":
        profile = profile.with_op_seeds(0 if graph_seed is None else graph_seed)
    features = data.features
    missing = [f for f in features if f not in data.vocab_sizes]
    if missing:
        raise ValueError(f"DataSpec.vocab_sizes lacks {missing}. Received: {sorted(data.vocab_sizes)}")
    ids = {f: keras.Input(shape=(), dtype="int64", name=f) for f in features}
    dims = {"uid": config.user_dim, "pid": config.item_dim, "domain": config.domain_dim}
    dims.update({f: config.item_dim for f in data.extra_features})
    l2 = keras.regularizers.L2(config.l2_reg_embedding) if profile.embedding_l2 and config.l2_reg_embedding else None
    pretrained = data.pretrained if (data.pretrained and config.load_pretrain_emb) else {}
    for f, matrix in pretrained.items():
        if dims[f] != matrix.shape[1]:
            logging.info("%s embedding size %d follows the pretrained vectors (was %d).", f, matrix.shape[1], dims[f])
            dims[f] = int(matrix.shape[1])
    embeddings, tables = [], {}
    for f in features:
        init = profile.initializer("domain_embedding" if f == "domain" else "id_embedding")
        tables[f] = keras.layers.Embedding(
            data.vocab_sizes[f], dims[f], embeddings_initializer=init, embeddings_regularizer=l2, name=table_name(f)
        )
        embeddings.append(tables[f](ids[f]))
    for f, matrix in pretrained.items():
        # Pretrained vectors (Taobao): the table starts from them and stays frozen
        # unless `emb_trainable` (original-model-zoo.md §1.2).
        if matrix.shape[0] != data.vocab_sizes[f]:
            raise ValueError(
                f"Pretrained {f} embeddings have {matrix.shape[0]} rows for a vocabulary of {data.vocab_sizes[f]}."
            )
        tables[f].embeddings.assign(matrix.astype("float32"))
        tables[f].trainable = bool(config.emb_trainable)
    frozen = [] if config.emb_trainable else list(pretrained)
    dense_stack = make_dense_stack(config, profile, mode, config.lora_reduce, data.n_domains, spec.topology)
    inputs = BackboneInputs(
        ids, embeddings, config, profile, dense_stack, data.vocab_sizes, data.n_domains, frozen, features
    )
    logit = spec.build(inputs)
    logit = GlobalBias(name="global_bias")(logit)
    logit = keras.layers.Reshape((), name="logit")(logit)
    probability = keras.layers.Activation("sigmoid", name="probability")(logit)
    try:
        return keras.Model(
            inputs=ids, outputs={"logit": logit, "probability": probability}, name=f"{config.name}_{config.adapter}"
        )
    except ValueError as error:
        if not data.extra_features or "is used" not in str(error):
            raise
        raise ValueError(
            f"A feature name is also the name of a layer of model {config.name!r}: rename the feature "
            f"(its data column). Received: features={list(data.extra_features)} ({error})"
        ) from None


def dense_stack_of(model: keras.Model) -> AdaptedDNN:
    return model.get_layer(DENSE_STACK_NAME)


def count_params(variables) -> int:
    return int(sum(int(ops.size(v)) for v in variables))
