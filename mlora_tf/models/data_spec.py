"""`DataSpec`: what a model needs to know about its data, for every kind of model.

A single-task backbone (`mlora_tf.models.build_model`) reads `vocab_sizes`,
`n_domains`, `features` and `pretrained`; a multi-domain multi-task model
(`mlora_tf.models.build_multitask_model`) reads `vocab_sizes`, `n_domains`, `tasks`
and `dense_features` (its sparse inputs are its config's `sparse_features`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

FEATURES = ("uid", "pid", "domain")
"""The sparse features every model takes, in this order, before any further ones."""
TASKS = ("label",)
"""The tasks of single-task data: one label column, `label`."""


def ordered_features(features) -> tuple[str, ...]:
    """`uid, pid, domain`, then the other names of `features` in their order.

    Raises:
        ValueError: a name is not a non-empty string, repeats, or one of the three is
            missing.
    """
    features = tuple(features)
    if not all(isinstance(f, str) and f for f in features):
        raise ValueError(f"Feature names must be non-empty strings. Received: features={list(features)}")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise ValueError(f"Feature names must be unique. Received: {repeated} repeated in {list(features)}")
    missing = [f for f in FEATURES if f not in features]
    if missing:
        raise ValueError(f"The features must include {list(FEATURES)}. Received: features={list(features)}")
    return FEATURES + tuple(f for f in features if f not in FEATURES)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What the model needs to know about the data.

    Attributes:
        vocab_sizes: feature -> rows of its tables (ids lie in `[0, size)`).
        n_domains: number of domains `D`, a positive integer.
        tasks: label names, in output order, e.g. `("click", "like")`. Default
            `("label",)`, single-task data.
        dense_features: names of the float features the data provides (default none).
        pretrained: for Taobao, the pretrained uid/pid embedding matrices
            (`{"uid": (n_uid, d), ...}`), else None. Not compared.
        features: the sparse features a single-task model takes, one input and one
            embedding table each. Default `("uid", "pid", "domain")`; any further ones
            (a dataset's extra columns) follow these three, in their order (the
            constructor puts the three first).

    Raises:
        ValueError: `n_domains` is not a positive integer; `tasks` are empty, repeat,
            or are not non-empty strings; `features` fail `ordered_features`.
    """

    vocab_sizes: Mapping[str, int]
    n_domains: int
    tasks: tuple[str, ...] = TASKS
    dense_features: tuple[str, ...] = ()
    pretrained: dict | None = dataclasses.field(default=None, compare=False)
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        if isinstance(self.n_domains, bool) or not isinstance(self.n_domains, int) or self.n_domains < 1:
            raise ValueError(f"`n_domains` must be a positive integer. Received: n_domains={self.n_domains!r}")
        tasks = tuple(self.tasks)
        if not tasks or len(set(tasks)) != len(tasks) or not all(isinstance(t, str) and t for t in tasks):
            raise ValueError(f"`tasks` must be unique non-empty names. Received: tasks={list(tasks)}")
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "dense_features", tuple(self.dense_features))
        object.__setattr__(self, "vocab_sizes", {k: int(v) for k, v in self.vocab_sizes.items()})
        object.__setattr__(self, "features", ordered_features(self.features))

    @property
    def extra_features(self) -> tuple[str, ...]:
        """The features after `uid, pid, domain`."""
        return self.features[len(FEATURES):]

    @classmethod
    def from_dataset(cls, dataset: Any) -> "DataSpec":
        """The spec of a `MultiDomainDataset`: its vocabularies, domains, sparse
        `features` (`uid, pid, domain` for every dataset without further ones), its
        `labels` as the tasks (`("label",)` for single-task data), its dense features,
        and its pretrained uid/pid vectors where it has them (Taobao)."""
        from mlora_tf.data.prepared import get_extras

        extras = get_extras(dataset)
        pretrained = (
            {"uid": extras["user_emb"], "pid": extras["item_emb"]}
            if "user_emb" in extras and "item_emb" in extras
            else None
        )
        return cls(
            vocab_sizes=dict(dataset.vocab_sizes),
            n_domains=int(dataset.n_domains),
            tasks=tuple(getattr(dataset, "labels", TASKS)),
            dense_features=tuple(getattr(dataset, "dense_features", ())),
            pretrained=pretrained,
            features=tuple(getattr(dataset, "features", FEATURES)),
        )
