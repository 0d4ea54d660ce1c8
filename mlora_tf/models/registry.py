"""One registry from backbone name to its builder. No substring routing, no if-chains."""

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


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, description: str, **options):
    """Decorator: register `build(inputs) -> logit` under `name`."""

    def decorator(build):
        if name in _REGISTRY:
            raise ValueError(f"Backbone {name!r} is already registered.")
        _REGISTRY[name] = BackboneSpec(name=name, build=build, description=description, **options)
        return build

    return decorator


def get_backbone(name: str) -> BackboneSpec:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}. Valid models: {', '.join(sorted(_REGISTRY))}"
        ) from None


def list_backbones() -> list[BackboneSpec]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _ensure_loaded():
    # Importing the package registers every backbone module.
    import mlora_tf.models  # noqa: F401
