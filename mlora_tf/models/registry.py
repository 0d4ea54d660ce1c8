"""The model registry: one table, `(name, kind) -> spec`, for every model. No substring
routing, no if-chains.

Every entry says what it is: its `kind` (`"single_task"`: a CTR backbone, one logit,
built by `mlora_tf.models.build_model`; `"multi_task"`: a multi-domain multi-task (MDMT)
model, one logit per task, built by `mlora_tf.models.build_multitask_model`), the
adapters it takes (`--adapter`) and the `group` `mlora-train --list_models` lists it
under. A name is registered at most once per kind: `mlp` and `star` are both CTR
backbones and MDMT baselines, two entries.

Model modules register themselves when imported; `mlora_tf.models` (which Python imports
before any of its modules, this one included) imports every one of them, so a lookup
sees every model without importing anything here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

SINGLE_TASK = "single_task"
MULTI_TASK = "multi_task"
KINDS = (SINGLE_TASK, MULTI_TASK)
"""The kinds of model, in the order `list_models()` gives them."""
ADAPTERS = ("none", "mlora", "moe")
"""Every adapter a model may take: Base, MLoRA, MoE-MLoRA (`ModelConfig.adapter`)."""

_KIND_LABELS = {SINGLE_TASK: "model", MULTI_TASK: "multi-task model"}
_DUPLICATE_LABELS = {SINGLE_TASK: "Backbone", MULTI_TASK: "Multi-task model"}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {list(KINDS)}. Received: kind={kind!r}")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to build it and what it is.

    Attributes:
        name: registry name (`mlora-train --model=NAME`), unique within its kind.
        build: the builder (its signature depends on the kind: `BackboneSpec`,
            `MultiTaskModelSpec`).
        description: one line for `mlora-train --list_models`.
        kind: `"single_task"` or `"multi_task"`.
        group: the heading `mlora-train --list_models` lists it under.
        adapters: the values of `--adapter` it takes, kept in `ADAPTERS` order
            (empty: it takes no `--adapter`, as the multi-task models).
    """

    name: str
    build: Callable
    description: str
    kind: str
    group: str
    adapters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={self.name!r}")
        if isinstance(self.adapters, str):
            raise ValueError(f"`adapters` must be a sequence of adapter names. Received: adapters={self.adapters!r}")
        adapters = tuple(self.adapters)
        unknown = [a for a in adapters if a not in ADAPTERS]
        if unknown or len(set(adapters)) != len(adapters):
            raise ValueError(
                f"`adapters` must be distinct names among {list(ADAPTERS)}. Received: adapters={list(adapters)}"
            )
        object.__setattr__(self, "adapters", tuple(a for a in ADAPTERS if a in adapters))
        if not isinstance(self.group, str) or not self.group:
            raise ValueError(f"`group` must be a non-empty string. Received: group={self.group!r}")


@dataclasses.dataclass(frozen=True)
class BackboneSpec(ModelSpec):
    """A single-task CTR backbone.

    Attributes:
        build: `build(inputs: BackboneInputs) -> logit (batch_size, 1)`, before the
            global bias. It receives its dense stack; it never knows the adapter mode.
        group: default `"CTR backbones"`.
        adapters: default `("none", "mlora", "moe")`, the paper's backbones.
        default_lora_reduce: the temperature alpha of the original MovieLens config.
        base_profile / adapted_profile: initializer profiles (see `profiles.py`) of the
            Base and adapted variants; they differ in the original, per backbone class.
        topology: the dense stack's layers, `dense` or `star` (STAR's star topology).
        dropout: the original config's dense-stack dropout.
        embedding_dim: the original MovieLens config's embedding size.
    """

    kind: str = SINGLE_TASK
    group: str = "CTR backbones"
    adapters: tuple[str, ...] = ADAPTERS
    default_lora_reduce: float = 16
    base_profile: str = "deepctr"
    adapted_profile: str = "deepctr_lora"
    topology: str = "dense"
    dropout: float = 0.5
    embedding_dim: int = 8

    @property
    def supports_moe(self) -> bool:
        """Whether MoE-MLoRA applies (`"moe"` among `adapters`)."""
        return "moe" in self.adapters


@dataclasses.dataclass(frozen=True)
class MultiTaskModelSpec(ModelSpec):
    """A multi-domain multi-task (MDMT) model.

    Attributes:
        build: `build(config, data, name) -> keras.Model` (inputs and outputs:
            `mlora_tf.models.multitask`).
        group: default `"multi-domain multi-task"`.
        adapters: default `()`: an MDMT model takes no `--adapter` (MLoRA-SB has its
            adapters built in).
        paper_name: its row label in M3oE's Table 2 (`None`: not in the paper).
        ours: a combination of this project, not a published baseline.
        ablations: accepts M3oE's ablation flags.
    """

    kind: str = MULTI_TASK
    group: str = "multi-domain multi-task"
    adapters: tuple[str, ...] = ()
    paper_name: str | None = None
    ours: bool = False
    ablations: bool = False


_MODELS: dict[tuple[str, str], ModelSpec] = {}
"""The one table: `(name, kind) -> spec`."""


def register(spec: ModelSpec) -> ModelSpec:
    """Adds `spec` to the table.

    Raises:
        ValueError: `(spec.name, spec.kind)` is already registered.
    """
    key = (spec.name, spec.kind)
    if key in _MODELS:
        raise ValueError(f"{_DUPLICATE_LABELS[spec.kind]} {spec.name!r} is already registered.")
    _MODELS[key] = spec
    return spec


def _decorator(spec_type: type, name: str, description: str, options: dict):
    """A decorator that registers the function it wraps as `spec_type(build=...)`."""

    def register_build(build):
        register(spec_type(name=name, build=build, description=description, **options))
        return build

    return register_build


def register_backbone(name: str, description: str, **options):
    """Decorator: register `build(inputs) -> logit` as the single-task backbone `name`.

    `options` are `BackboneSpec` fields. `supports_moe=False` (the older spelling) is
    `adapters=("none", "mlora")`.

    Raises:
        ValueError: both `supports_moe` and `adapters` given.
    """
    if "supports_moe" in options:
        if "adapters" in options:
            raise ValueError(
                "Give `adapters` or `supports_moe`, not both. "
                f"Received: adapters={options['adapters']!r}, supports_moe={options['supports_moe']!r}"
            )
        supports_moe = options.pop("supports_moe")
        options["adapters"] = tuple(a for a in ADAPTERS if supports_moe or a != "moe")
    return _decorator(BackboneSpec, name, description, options)


MULTI_DOMAIN_GROUP = "multi-domain"
MULTI_DOMAIN_DEFAULTS = dict(
    group=MULTI_DOMAIN_GROUP,
    adapters=("none", "mlora"),
    default_lora_reduce=16,
    base_profile="mlora_class",
    adapted_profile="mlora_class",
)
"""What a single-task multi-domain model of the field is unless it says otherwise: listed
under "multi-domain", Base or +MLoRA (MoE-MLoRA is defined for the MLoRA paper's
backbones only), `lora_reduce` 16 as MLP and WDL, and one initializer profile
(`mlora_class`) for Base and +MLoRA, so +MLoRA differs from Base by its adapters only."""


def register_multi_domain_model(name: str, description: str, **options):
    """Decorator: `register_backbone` with `MULTI_DOMAIN_DEFAULTS` under `options`."""
    return register_backbone(name, description, **{**MULTI_DOMAIN_DEFAULTS, **options})


def register_multitask_model(name: str, description: str, **options):
    """Decorator: register `build(config, data, name) -> keras.Model` as the
    multi-task model `name` (`options`: `MultiTaskModelSpec` fields)."""
    return _decorator(MultiTaskModelSpec, name, description, options)


def get_model(name: str, kind: str) -> ModelSpec:
    """The spec registered as `(name, kind)`.

    Raises:
        ValueError: an unknown kind, or no model `name` of that kind (the message
            lists the valid names).
    """
    _check_kind(kind)
    try:
        return _MODELS[(name, kind)]
    except KeyError:
        valid = ", ".join(spec.name for spec in list_models(kind))
        raise ValueError(f"Unknown {_KIND_LABELS[kind]} {name!r}. Valid models: {valid}") from None


def has_model(name: str, kind: str) -> bool:
    """Whether `(name, kind)` is registered."""
    _check_kind(kind)
    return (name, kind) in _MODELS


def list_models(kind: str | None = None) -> list[ModelSpec]:
    """The registered specs of `kind` (None: every kind, in `KINDS` order), by name."""
    kinds = KINDS if kind is None else (kind,)
    for k in kinds:
        _check_kind(k)
    return sorted((s for s in _MODELS.values() if s.kind in kinds), key=lambda s: (KINDS.index(s.kind), s.name))


# ----------------------------------------------- the lookups of each kind (thin)
def get_backbone(name: str) -> BackboneSpec:
    return get_model(name, SINGLE_TASK)


def list_backbones() -> list[BackboneSpec]:
    return list_models(SINGLE_TASK)


def get_multitask_model(name: str) -> MultiTaskModelSpec:
    return get_model(name, MULTI_TASK)


def list_multitask_models() -> list[MultiTaskModelSpec]:
    return list_models(MULTI_TASK)


def is_multitask_model(name: str) -> bool:
    return has_model(name, MULTI_TASK)
