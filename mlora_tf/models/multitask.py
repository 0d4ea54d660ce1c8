"""Multi-domain multi-task (MDMT) models: one registry, shared inputs and outputs.

Every model here maps the same inputs to the same outputs, so one trainer
(`mlora_tf.training.multitask.MultiTaskTrainer`), one exporter and one driver serve
them all:

- **Inputs** (a dict): one int64 `(batch_size,)` tensor per sparse feature of
  `config.sparse_features` (`domain` among them: an embedded feature and the routing
  key) and one float32 `(batch_size,)` tensor per dense feature.
- **Outputs** (a flat dict): `"<task>"` the probability and `"<task>_logit"` the
  logit, `(batch_size,)` each, for every task of the data, each row scored by the
  heads of its own domain.

The single-task CTR backbones live in `mlora_tf.models.registry`; nothing there knows
about tasks. Register an MDMT model with `@register_multitask_model(name, ...)` on a
`build(config, data, name) -> keras.Model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras

from mlora_tf.models.m3oe import M3oEConfig, MultiTaskDataSpec, build_m3oe
from mlora_tf.models.mdmt_parts import check_data, embed_inputs, input_vector, task_outputs  # noqa: F401


@dataclasses.dataclass
class MultiTaskModelConfig(M3oEConfig):
    """Which MDMT model, and its hyper-parameters.

    The widths, features and initialisation of `M3oEConfig` are shared by every model
    (the baselines are sized like M3oE's parts, m3oe.md §2.1); M3oE's ablation flags
    (`fusion`, `concat_modules`, `fully_gated`, `domain_experts`, `task_experts`) apply
    to `m3oe` only.

    Attributes:
        name: the registered model (`mlora-train --model`), default `"m3oe"`.
        specific_experts: PLE: experts owned by each (domain, task) objective.
        lora_reduce: MLoRA-SB: the temperature alpha, rank `max(units // alpha, 1)`.
    """

    name: str = "m3oe"
    specific_experts: int = 1
    lora_reduce: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a model name. Received: name={self.name!r}")
        value = self.specific_experts
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`specific_experts` must be a positive integer. Received: specific_experts={value!r}")
        value = self.lora_reduce
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"`lora_reduce` must be a positive number. Received: lora_reduce={value!r}")

    @property
    def m3oe_ablations_set(self) -> list[str]:
        """The M3oE-only fields that differ from their defaults."""
        default = M3oEConfig()
        return [
            f for f in ("fusion", "concat_modules", "fully_gated", "domain_experts", "task_experts")
            if getattr(self, f) != getattr(default, f)
        ]


@dataclasses.dataclass(frozen=True)
class MultiTaskModelSpec:
    """One registered MDMT model.

    Attributes:
        name: registry name.
        build: `build(config, data, name) -> keras.Model` (inputs/outputs as above).
        description: one line for `mlora-train --list_models`.
        paper_name: its row label in M3oE's Table 2 (`None`: not in the paper).
        ours: a combination of this project, not a published baseline.
        ablations: accepts M3oE's ablation flags.
    """

    name: str
    build: Callable
    description: str
    paper_name: str | None = None
    ours: bool = False
    ablations: bool = False


_REGISTRY: dict[str, MultiTaskModelSpec] = {}


def register_multitask_model(name: str, description: str, **options):
    """Decorator: register `build(config, data, name) -> keras.Model` under `name`."""

    def decorator(build):
        if name in _REGISTRY:
            raise ValueError(f"Multi-task model {name!r} is already registered.")
        _REGISTRY[name] = MultiTaskModelSpec(name=name, build=build, description=description, **options)
        return build

    return decorator


def _ensure_loaded() -> None:
    from mlora_tf.models import mdmt  # noqa: F401  (registration of the baselines)


def list_multitask_models() -> list[MultiTaskModelSpec]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def is_multitask_model(name: str) -> bool:
    _ensure_loaded()
    return name in _REGISTRY


def get_multitask_model(name: str) -> MultiTaskModelSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown multi-task model {name!r}. Valid models: {', '.join(sorted(_REGISTRY))}"
        ) from None


def build_multitask_model(config: MultiTaskModelConfig, data: MultiTaskDataSpec) -> keras.Model:
    """Builds the registered model `config.name` for `data`.

    Raises:
        ValueError: an unknown name, or M3oE ablation flags on another model.
    """
    spec = get_multitask_model(config.name)
    if not spec.ablations and config.m3oe_ablations_set:
        raise ValueError(
            f"{config.m3oe_ablations_set} are ablations of M3oE; model {config.name!r} has no such part. "
            f"Received: model={config.name!r}"
        )
    return spec.build(config, data, name=config.name)


register_multitask_model(
    "m3oe",
    "M3oE (SIGIR'24): domain representation, shared/domain/task experts, fusion scalars, per-(domain, task) towers",
    paper_name="M3oE",
    ablations=True,
)(build_m3oe)
