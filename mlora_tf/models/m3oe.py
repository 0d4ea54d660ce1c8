"""M3oE (SIGIR'24): the multi-domain multi-task mixture-of-experts model.

`build_m3oe(config, data_spec)` returns a functional Keras model:

- **Inputs** (a dict): one int64 `(batch_size,)` tensor per sparse feature of
  `config.sparse_features` (default `uid, pid, gender, occupation, zip, cate_id,
  domain`, the reference's `user_id, movie_id, ...`, `domain_indicator`), and one
  float32 `(batch_size,)` tensor per dense feature (default `age`, min-max scaled).
  The `domain` input is both an embedded feature and the routing key.
- **Outputs** (a flat dict, one entry per task and kind, so a SavedModel signature
  can return it as it is): `"<task>"` is the probability and `"<task>_logit"` the
  logit, both `(batch_size,)`, e.g. `{"click", "like", "click_logit",
  "like_logit"}`. Train on the logits (`from_logits=True`); the original trains BCE
  on probabilities (m3oe.md §5 item 6).

Forward pass (m3oe.md §2): 16-d embeddings `N(0, 1e-4)` of the sparse features,
flattened in `sparse_features` order, then the dense features -> `x` (113 wide for
MovieLens) -> `DomainRepresentation` (`h`, 256) -> shared, domain and task
`ExpertBank`s (64 each) -> per-(domain, task) `ExpertGates` over the shared experts
-> `ExpertFusion` -> `DomainTaskTowers` -> one logit per task, each row routed by
its own domain.

M3oE is multi-task, so it is **not** in the single-task backbone registry
(`mlora_tf.models.registry`, whose builders return one logit); a multi-task trainer
builds it with `build_m3oe` and gives `fusion_variables(model)` their own optimizer
(`variable_groups(model)`).

Ablations of the paper's Table 3 are `M3oEConfig` flags: `fusion="fixed"`
("w/o AutoML"), `concat_modules`, `fully_gated`, `domain_experts=False` ("w/o
domain"), `task_experts=False` ("w/o task"), both False ("w/o domain & task").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from mlora_tf.models.mdmt_parts import embed_inputs, task_outputs
from mlora_tf.layers.m3oe import (
    FUSION_MODES,
    DomainRepresentation,
    DomainTaskTowers,
    ExpertBank,
    ExpertFusion,
    ExpertGates,
)

FUSION_LAYER_NAME = "expert_fusion"
DEFAULT_SPARSE_FEATURES: tuple[str, ...] = (
    "uid", "pid", "gender", "occupation", "zip", "cate_id", "domain",
)
DEFAULT_DENSE_FEATURES: tuple[str, ...] = ("age",)


@dataclasses.dataclass
class M3oEConfig:
    """Hyper-parameters of M3oE (defaults: the released code's, m3oe.md §2-3).

    Attributes:
        sparse_features: embedded id inputs, in the order their embeddings are
            concatenated; must include `"domain"` (also the routing key).
        dense_features: float inputs appended after the embeddings.
        embedding_dim: size of every embedding (16).
        embedding_stddev: embeddings start `N(0, embedding_stddev)` (1e-4).
        star_units: width of the domain projection `f_DR` (512, `fcn_dims[0]`).
        hidden_units: width of `h` (256, `fcn_dims[1]`).
        expert_units: output width of every expert (64, `fcn_dims[3]`).
        tower_units: hidden width of every tower (64).
        num_shared_experts: `N` (4, the code's `--expert_num` default; the paper's
            best MovieLens setting is 1, m3oe.md §2.3 item 4).
        layer_norm_epsilon: LayerNorm epsilon everywhere (1e-5, torch's default).
        gate_stop_gradient: gates see `stop_gradient(h)`, as the code (True).
        fusion: `"learned"` (sigmoid-parameterised trainable scalars) or `"fixed"`
            (all four weights 0.5, frozen: Table 3 "w/o AutoML").
        fusion_init: raw (pre-sigmoid) initial values of `(alpha_D, alpha_T,
            beta_D, beta_T)`, the code's `--exp_d --exp_t --bal_d --bal_t` (1.0
            each, so every weight starts at 0.731). Ignored with `fusion="fixed"`.
        concat_modules: Table 3 "concat modules": concatenate the three views
            instead of the alpha-weighted sum.
        fully_gated: Table 3 "fully gated": each (domain, task) gate mixes the
            shared, domain and task experts together; no fusion scalars.
        domain_experts: use the domain experts (False: Table 3 "w/o domain").
        task_experts: use the task experts (False: "w/o task"; both False: "w/o
            domain & task").
    """

    sparse_features: tuple[str, ...] = DEFAULT_SPARSE_FEATURES
    dense_features: tuple[str, ...] = DEFAULT_DENSE_FEATURES
    embedding_dim: int = 16
    embedding_stddev: float = 1e-4
    star_units: int = 512
    hidden_units: int = 256
    expert_units: int = 64
    tower_units: int = 64
    num_shared_experts: int = 4
    layer_norm_epsilon: float = 1e-5
    gate_stop_gradient: bool = True
    fusion: str = "learned"
    fusion_init: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    concat_modules: bool = False
    fully_gated: bool = False
    domain_experts: bool = True
    task_experts: bool = True

    def __post_init__(self) -> None:
        self.sparse_features = tuple(self.sparse_features)
        self.dense_features = tuple(self.dense_features)
        self.fusion_init = tuple(self.fusion_init)  # type: ignore[assignment]
        for name in ("embedding_dim", "star_units", "hidden_units", "expert_units",
                     "tower_units", "num_shared_experts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        for name in ("embedding_stddev", "layer_norm_epsilon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
        for name in ("gate_stop_gradient", "concat_modules", "fully_gated", "domain_experts",
                     "task_experts"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}")
        if self.fusion not in FUSION_MODES:
            raise ValueError(
                f"`fusion` must be one of {list(FUSION_MODES)}. Received: fusion={self.fusion!r}"
            )
        if len(self.fusion_init) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in self.fusion_init
        ):
            raise ValueError(
                "`fusion_init` must be four finite numbers (alpha_D, alpha_T, beta_D, beta_T). "
                f"Received: fusion_init={self.fusion_init!r}"
            )
        if "domain" not in self.sparse_features:
            raise ValueError(
                "`sparse_features` must include 'domain' (the routing key). "
                f"Received: sparse_features={list(self.sparse_features)}"
            )
        names = self.sparse_features + self.dense_features
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"Feature names must be unique. Received: duplicates {duplicates}"
            )
        if self.fully_gated and self.concat_modules:
            raise ValueError(
                "`fully_gated` and `concat_modules` are separate ablations; choose one. "
                "Received: fully_gated=True, concat_modules=True"
            )
        if self.fully_gated and self.fusion == "fixed":
            raise ValueError(
                "`fully_gated` has no fusion scalars, so `fusion='fixed'` does not apply. "
                "Received: fully_gated=True, fusion='fixed'"
            )

    @property
    def variant(self) -> str:
        """The paper's Table 3 name of this configuration."""
        if self.fully_gated:
            base = "fully gated"
        elif self.concat_modules:
            base = "concat modules"
        else:
            base = "M3oE"
        missing = [n for n, on in (("domain", self.domain_experts), ("task", self.task_experts)) if not on]
        if missing:
            base += " w/o " + " & ".join(missing)
        if self.fusion == "fixed":
            base += " w/o AutoML"
        return base

    def get_config(self) -> dict[str, Any]:
        config = dataclasses.asdict(self)
        for key in ("sparse_features", "dense_features", "fusion_init"):
            config[key] = list(config[key])
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "M3oEConfig":
        """Builds a config from a dict; unknown keys are rejected by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"Unknown M3oE config key(s) {unknown}; valid keys are {sorted(known)}. "
                f"Received: {unknown}"
            )
        return cls(**dict(config))


@dataclasses.dataclass(frozen=True)
class MultiTaskDataSpec:
    """What `build_m3oe` needs to know about the data.

    Attributes:
        vocab_sizes: sparse feature -> vocabulary size (ids are `0..size-1`).
        n_domains: number of domains `D`.
        tasks: label names, in output order, e.g. `("click", "like")`.
        dense_features: names of the float features the data provides.
    """

    vocab_sizes: Mapping[str, int]
    n_domains: int
    tasks: tuple[str, ...]
    dense_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.n_domains, bool) or not isinstance(self.n_domains, int) or self.n_domains < 1:
            raise ValueError(f"`n_domains` must be a positive integer. Received: n_domains={self.n_domains!r}")
        tasks = tuple(self.tasks)
        if not tasks or len(set(tasks)) != len(tasks) or not all(isinstance(t, str) and t for t in tasks):
            raise ValueError(f"`tasks` must be unique non-empty names. Received: tasks={list(tasks)}")
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "dense_features", tuple(self.dense_features))
        object.__setattr__(self, "vocab_sizes", {k: int(v) for k, v in self.vocab_sizes.items()})

    @classmethod
    def from_dataset(cls, dataset: Any) -> "MultiTaskDataSpec":
        """From a `MultiDomainDataset` (its `labels` are the tasks)."""
        return cls(
            vocab_sizes=dict(dataset.vocab_sizes),
            n_domains=int(dataset.n_domains),
            tasks=tuple(dataset.labels),
            dense_features=tuple(dataset.dense_features),
        )


def build_m3oe(config: M3oEConfig, data: MultiTaskDataSpec, name: str = "m3oe") -> keras.Model:
    """Builds M3oE for `data`.

    Args:
        config: the hyper-parameters and ablation flags.
        data: vocabularies, number of domains, tasks and dense features.
        name: the model name.

    Returns:
        A functional `keras.Model`; inputs and outputs as in the module docstring.

    Raises:
        ValueError: a configured feature the data lacks, or a domain vocabulary
            that differs from `data.n_domains`.
    """
    n_domains, tasks = data.n_domains, data.tasks
    inputs, x, domain = embed_inputs(config, data)

    eps = config.layer_norm_epsilon
    h = DomainRepresentation(
        n_domains,
        star_units=config.star_units,
        units=config.hidden_units,
        epsilon=eps,
        name="domain_representation",
    )([x, domain])
    shared = ExpertBank(config.num_shared_experts, config.expert_units, epsilon=eps, name="shared_experts")(h)
    domain_experts = (
        ExpertBank(n_domains, config.expert_units, epsilon=eps, name="domain_experts")(h)
        if config.domain_experts
        else None
    )
    task_experts = (
        ExpertBank(len(tasks), config.expert_units, epsilon=eps, name="task_experts")(h)
        if config.task_experts
        else None
    )
    gates = ExpertGates(n_domains, len(tasks), stop_gradient=config.gate_stop_gradient, name="gates")
    if config.fully_gated:
        bank = [shared] + [e for e in (domain_experts, task_experts) if e is not None]
        bank = keras.layers.Concatenate(axis=1, name="all_experts")(bank) if len(bank) > 1 else shared
        z = gates([h, bank])
    else:
        mixed = gates([h, shared])
        a_d, a_t, b_d, b_t = config.fusion_init
        z = ExpertFusion(
            use_domain=config.domain_experts,
            use_task=config.task_experts,
            combine="concat" if config.concat_modules else "sum",
            fusion=config.fusion,
            alpha_domain_init=float(a_d),
            alpha_task_init=float(a_t),
            beta_domain_init=float(b_d),
            beta_task_init=float(b_t),
            name=FUSION_LAYER_NAME,
        )([mixed] + [e for e in (domain_experts, task_experts) if e is not None])
    logits = DomainTaskTowers(config.tower_units, epsilon=eps, name="towers")([z, domain])

    outputs = task_outputs(logits, tasks)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def fusion_layer(model: keras.Model) -> ExpertFusion | None:
    """The model's `ExpertFusion` layer (None for the fully gated ablation)."""
    for layer in model.layers:
        if isinstance(layer, ExpertFusion):
            return layer
    return None


def fusion_variables(model: keras.Model) -> list[Any]:
    """The trainable fusion scalars of an M3oE model (empty if fixed or fully gated)."""
    layer = fusion_layer(model)
    return [] if layer is None else list(layer.fusion_variables)


def variable_groups(model: keras.Model) -> dict[str, list[Any]]:
    """The trainable variables in two groups: `"fusion"` (the scalars) and `"main"` (the rest).

    The original steps the fusion scalars with a second optimizer once per epoch
    and, through a filter bug, also with the main one (m3oe.md §3.3): a trainer
    reproducing the code puts `main + fusion` in the main optimizer; one following
    the paper's bi-level intent puts only `main` there.
    """
    fusion = fusion_variables(model)
    ids = {id(v) for v in fusion}
    return {"main": [v for v in model.trainable_variables if id(v) not in ids], "fusion": fusion}


def fusion_weights(model: keras.Model) -> dict[str, float]:
    """The current sigmoid values of the fusion scalars (empty if fully gated)."""
    layer = fusion_layer(model)
    return {} if layer is None else layer.fusion_weights()


def model_inputs(columns: Mapping[str, Any], config: M3oEConfig) -> dict[str, Any]:
    """Picks and casts the model inputs from a split's columns (int64 ids, float32 dense)."""
    import numpy as np

    missing = [f for f in config.sparse_features + config.dense_features if f not in columns]
    if missing:
        raise ValueError(f"The columns lack model input(s) {missing}. Received: {sorted(columns)}")
    out = {f: np.asarray(columns[f], dtype=np.int64) for f in config.sparse_features}
    out.update({f: np.asarray(columns[f], dtype=np.float32) for f in config.dense_features})
    return out


def stack_logits(outputs: Mapping[str, Any], tasks: Sequence[str]) -> Any:
    """`(batch_size, n_tasks)` logits from the model's output dict."""
    return ops.stack([outputs[f"{t}_logit"] for t in tasks], axis=-1)
