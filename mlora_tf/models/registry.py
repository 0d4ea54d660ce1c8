"""The model registries: backbone name -> builder, and multi-domain multi-task (MDMT)
model name -> builder. No substring routing, no if-chains.

Model modules register themselves when imported; `mlora_tf.models` (which Python imports
before any of its modules, this one included) imports every one of them, so a lookup
sees every model without importing anything here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Attributes:
        name: registry name (`mlora-train --model=NAME`).
        build: `build(inputs: BackboneInputs) -> logit (batch_size, 1)`, before the
            global bias. It receives its dense stack; it never knows the adapter mode.
        description: one line for `--list_models`.
        default_lora_reduce: the temperature alpha of the original MovieLens config.
        base_profile / adapted_profile: initializer profiles (see `profiles.py`) of the
            Base and adapted variants; they differ in the original, per backbone class.
        supports_moe: whether MoE-MLoRA applies (the paper's eight backbones).
        topology: the dense stack's layers, `dense` or `star` (STAR's star topology).
        dropout: the original config's dense-stack dropout.
        embedding_dim: the original MovieLens config's embedding size.
    """

    name: str
    build: Callable
    description: str
    default_lora_reduce: float = 16
    base_profile: str = "deepctr"
    adapted_profile: str = "deepctr_lora"
    supports_moe: bool = True
    topology: str = "dense"
    dropout: float = 0.5
    embedding_dim: int = 8


class _Registry:
    """Name -> spec, for one kind of model; the one lookup both kinds share."""

    def __init__(self, kind: str, duplicate_label: str, spec_type: type):
        self.kind = kind
        self.spec_type = spec_type
        self.duplicate_label = duplicate_label
        self._specs: dict = {}

    def add(self, spec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"{self.duplicate_label} {spec.name!r} is already registered.")
        self._specs[spec.name] = spec

    def decorator(self, name: str, description: str, options: dict):
        """A decorator that registers the function it wraps as `spec_type(build=...)`."""

        def register(build):
            self.add(self.spec_type(name=name, build=build, description=description, **options))
            return build

        return register

    def get(self, name: str):
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(
                f"Unknown {self.kind} {name!r}. Valid models: {', '.join(sorted(self._specs))}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def all(self) -> list:
        return [self._specs[k] for k in sorted(self._specs)]


_BACKBONES = _Registry("model", "Backbone", BackboneSpec)


def register_backbone(name: str, description: str, **options):
    """Decorator: register `build(inputs) -> logit` under `name`."""
    return _BACKBONES.decorator(name, description, options)


def get_backbone(name: str) -> BackboneSpec:
    return _BACKBONES.get(name)


def list_backbones() -> list[BackboneSpec]:
    return _BACKBONES.all()


# ------------------------------------------------ multi-domain multi-task models
@dataclasses.dataclass(frozen=True)
class MultiTaskModelSpec:
    """One registered MDMT model.

    Attributes:
        name: registry name.
        build: `build(config, data, name) -> keras.Model` (inputs and outputs:
            `mlora_tf.models.multitask`).
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


_MULTITASK_MODELS = _Registry("multi-task model", "Multi-task model", MultiTaskModelSpec)


def register_multitask_model(name: str, description: str, **options):
    """Decorator: register `build(config, data, name) -> keras.Model` under `name`."""
    return _MULTITASK_MODELS.decorator(name, description, options)


def list_multitask_models() -> list[MultiTaskModelSpec]:
    return _MULTITASK_MODELS.all()


def is_multitask_model(name: str) -> bool:
    return name in _MULTITASK_MODELS


def get_multitask_model(name: str) -> MultiTaskModelSpec:
    return _MULTITASK_MODELS.get(name)
