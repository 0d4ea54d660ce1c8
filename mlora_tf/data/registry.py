"""One registry from dataset names to loaders.

`load_dataset(name, ...)` looks `name` up in a single dict; there is no
substring matching and no if-chain. Each entry also declares the loader-specific
keyword options it accepts, and anything else is rejected by name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from mlora_tf.data import movielens
from mlora_tf.data import synthetic
from mlora_tf.data.dataset import MultiDomainDataset
from mlora_tf.data.split import DEFAULT_SEED


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        name: the registry key, e.g. `"ml-1m"`.
        loader: called as `loader(data_dir=, domain_split=, cache_dir=, seed=,
            **options)` and returns a `MultiDomainDataset`.
        options: names of the extra keyword options the loader accepts.
        description: one line for listings.
    """

    name: str
    loader: Callable[..., MultiDomainDataset]
    options: frozenset[str]
    description: str


def _movielens_loader(variant: str) -> Callable[..., MultiDomainDataset]:
    def load(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
        return movielens.load_movielens(
            variant,
            data_dir=data_dir,
            domain_split=domain_split,
            cache_dir=cache_dir,
            seed=seed,
            **options,
        )

    return load


def _synthetic_loader(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
    # Generated in memory: no raw files, one fixed domain definition, no cache.
    del data_dir, domain_split, cache_dir
    return synthetic.load_synthetic(seed=seed, **options)


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> None:
    """Adds a dataset to the registry (a name may be registered once)."""
    if spec.name in _REGISTRY:
        raise ValueError(
            f"Dataset '{spec.name}' is already registered. Received: name={spec.name!r}"
        )
    _REGISTRY[spec.name] = spec


register_dataset(
    DatasetSpec(
        "ml-1m",
        _movielens_loader("ml-1m"),
        frozenset({"fractions"}),
        "MovieLens-1M (users.dat, ratings.dat); label = rating == 5",
    )
)
register_dataset(
    DatasetSpec(
        "ml-100k",
        _movielens_loader("ml-100k"),
        frozenset({"fractions"}),
        "MovieLens-100K (u.user, u.data, u.occupation); label = rating == 5",
    )
)
register_dataset(
    DatasetSpec(
        "synthetic",
        _synthetic_loader,
        synthetic.OPTIONS | {"fractions"},
        "seeded synthetic data with planted per-domain effects (offline)",
    )
)


def available_datasets() -> list[str]:
    """Sorted names accepted by `load_dataset`."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of `name`; ValueError listing valid names if unknown."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ValueError(
            f"Unknown dataset; valid names are {available_datasets()}. "
            f"Received: name={name!r}"
        )
    return spec


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    domain_split: str = "gender",
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = DEFAULT_SEED,
    **options,
) -> MultiDomainDataset:
    """Loads a registered dataset, split into train / val / test per domain.

    Args:
        name: one of `available_datasets()`: `"ml-100k"`, `"ml-1m"`,
            `"synthetic"`.
        data_dir: raw-data folder (MovieLens), or its parent holding
            `ml-1m/` (`ml_1m/`, `ml-100k/`). Default `$MLORA_TF_DATA_DIR` or
            `./datasets`. Ignored by `"synthetic"`.
        domain_split: MovieLens user attribute that defines the domains:
            `"gender"` (default), `"age"` or `"occupation"`. Ignored by
            `"synthetic"`.
        cache_dir: folder of the prepared-split cache; None -> `$MLORA_TF_CACHE`
            or `~/.cache/mlora_tf`; False -> no caching. `"synthetic"` is never
            cached.
        seed: split seed (and generator seed for `"synthetic"`); 123 as the
            original.
        **options: loader-specific options. All loaders accept `fractions`
            (train, val, test), default `(0.6, 0.2, 0.2)`; `"synthetic"` also
            takes the `SyntheticConfig` knobs (`n_domains`, `n_users`,
            `n_items`, `n_rows`, `shift`, ...).

    Raises:
        ValueError: unknown dataset name or option (both named in the message),
            bad option values, malformed raw files.
        FileNotFoundError: raw files missing (the message names them and the
            expected folder layout).
    """
    spec = get_spec(name)
    unknown = sorted(set(options) - spec.options)
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for dataset '{name}'; valid options are "
            f"{sorted(spec.options)}. Received: {unknown}"
        )
    return spec.loader(
        data_dir=data_dir, domain_split=domain_split, cache_dir=cache_dir, seed=seed, **options
    )
