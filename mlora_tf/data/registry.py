"""One registry from dataset names to loaders.

`load_dataset(name, ...)` looks `name` up in a single dict; there is no
substring matching and no if-chain. Each entry also declares the loader-specific
keyword options it accepts, and anything else is rejected by name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

from absl import logging

from mlora_tf.data import amazon
from mlora_tf.data import csv_loader
from mlora_tf.data import movielens
from mlora_tf.data import movielens_m3oe
from mlora_tf.data import prepared
from mlora_tf.data import synthetic
from mlora_tf.data import synthetic_mt
from mlora_tf.data import taobao
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
        default_domain_split: the domain split used when none is given (None: the
            loader ignores `domain_split`).
        expected_stats: domain split -> the statistics the paper's Table 1 (or the
            dataset's documentation) gives for the full data: `domains`, `users`,
            `items`, `train`, `val`, `test` (any subset). `mlora-prepare` prints them
            beside what it got.
    """

    name: str
    loader: Callable[..., MultiDomainDataset]
    options: frozenset[str]
    description: str
    default_domain_split: str | None = None
    expected_stats: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)


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
        default_domain_split="gender",
        # Paper Table 1 / datasets.md §2.6 (users, items = max id + 1).
        expected_stats={
            "gender": {"domains": 2, "users": 6041, "items": 3953,
                       "train": 600125, "val": 200042, "test": 200042},
            "age": {"domains": 7, "users": 6041, "items": 3953},
            "occupation": {"domains": 21, "users": 6041, "items": 3953},
        },
    )
)
register_dataset(
    DatasetSpec(
        "ml-100k",
        _movielens_loader("ml-100k"),
        frozenset({"fractions"}),
        "MovieLens-100K (u.user, u.data, u.occupation); label = rating == 5",
        default_domain_split="gender",
        # GroupLens README: 943 users, 1682 items (ids 1..n, so max id + 1).
        expected_stats={
            split: {"domains": d, "users": 944, "items": 1683}
            for split, d in (("gender", 2), ("age", 7), ("occupation", 21))
        },
    )
)
def _movielens_m3oe_loader(variant: str) -> Callable[..., MultiDomainDataset]:
    def load(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
        return movielens_m3oe.load_movielens_m3oe(
            variant,
            data_dir=data_dir,
            domain_split=domain_split,
            cache_dir=cache_dir,
            seed=seed,
            **options,
        )

    return load


# M3oE's multi-task MovieLens setup (m3oe.md §1, datasets.md §7): 3 age domains, labels
# click and like, user/movie features, positional 80/10/10 split.
register_dataset(
    DatasetSpec(
        "ml-1m-m3oe",
        _movielens_m3oe_loader("ml-1m-m3oe"),
        movielens_m3oe.OPTIONS,
        "MovieLens-1M as M3oE (users.dat, ratings.dat, movies.dat): 3 age domains, tasks click "
        "(rating > 3) and like (rating = 5), positional 80/10/10 split",
        default_domain_split=movielens_m3oe.DOMAIN_SPLIT,
        # m3oe.md §1.2, §1.5: vocabularies are distinct counts (6,040 users, 3,706 rated movies).
        expected_stats={
            movielens_m3oe.DOMAIN_SPLIT: {"domains": 3, "users": 6040, "items": 3706,
                                         "train": 800167, "val": 100021, "test": 100021},
        },
    )
)
register_dataset(
    DatasetSpec(
        "ml-100k-m3oe",
        _movielens_m3oe_loader("ml-100k-m3oe"),
        movielens_m3oe.OPTIONS,
        "MovieLens-100K in M3oE's setup (u.user, u.data, u.item): the same 3 age brackets and tasks",
        default_domain_split=movielens_m3oe.DOMAIN_SPLIT,
        expected_stats={
            movielens_m3oe.DOMAIN_SPLIT: {"domains": 3, "users": 943, "items": 1682,
                                         "train": 80000, "val": 10000, "test": 10000},
        },
    )
)


def _amazon_loader(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
    return amazon.load_amazon(
        data_dir=data_dir, domain_split=domain_split, cache_dir=cache_dir, seed=seed, **options
    )


register_dataset(
    DatasetSpec(
        "amazon",
        _amazon_loader,
        frozenset({"fractions"}),
        "Amazon reviews, 5-core files per category (Amazon-6); negatives sampled per user",
        default_domain_split=amazon.DEFAULT_DOMAIN_SPLIT,
        expected_stats={"category_6": amazon.AMAZON6_TABLE1, "category_13": {"domains": 13}},
    )
)
def _taobao_loader(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
    return taobao.load_taobao(
        data_dir=data_dir, domain_split=domain_split, cache_dir=cache_dir, seed=seed, **options
    )


register_dataset(
    DatasetSpec(
        "taobao",
        _taobao_loader,
        frozenset({"fractions"}),
        "Taobao Cloud Theme Click (first N themes); negatives sampled per user; pretrained embeddings",
        default_domain_split=taobao.DEFAULT_DOMAIN_SPLIT,
        expected_stats={
            **taobao.TABLE1,
            **{
                f"{split}_time": {k: v for k, v in stats.items() if k in ("domains", "users", "items")}
                for split, stats in taobao.TABLE1.items()
            },
        },
    )
)
def _csv_loader(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
    del domain_split  # the domains come from `domain_column`
    return csv_loader.load_csv(data_dir=data_dir, cache_dir=cache_dir, seed=seed, **options)


register_dataset(
    DatasetSpec(
        "csv",
        _csv_loader,
        csv_loader.OPTIONS,
        "any CSV/parquet file: domain column, 0/1 label, categorical (first two = uid, pid) and numeric columns",
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


def _synthetic_mt_loader(*, data_dir, domain_split, cache_dir, seed, **options) -> MultiDomainDataset:
    del data_dir, domain_split, cache_dir
    return synthetic_mt.load_synthetic_multitask(seed=seed, **options)


register_dataset(
    DatasetSpec(
        "synthetic-mt",
        _synthetic_mt_loader,
        synthetic_mt.OPTIONS | {"fractions"},
        "seeded synthetic multi-task data with ml-1m-m3oe's schema: labels click and like, "
        "planted domain and task effects (offline)",
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


def resolve_domain_split(spec: DatasetSpec, domain_split: str | None) -> str:
    """The domain split a load uses.

    None -> the dataset's default. `"gender"` is `DataConfig`'s default for every
    dataset, so for a dataset without a gender split (Amazon, Taobao, CSV) it also
    means "not given" and becomes the dataset's default (logged).
    """
    default = spec.default_domain_split
    if domain_split is None:
        return default or "default"
    if domain_split == "gender" and default not in (None, "gender"):
        logging.info(
            "Dataset '%s' has no 'gender' domain split; using its default '%s'.", spec.name, default
        )
        return default
    return domain_split


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    domain_split: str | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = DEFAULT_SEED,
    stream: bool = False,
    **options,
) -> MultiDomainDataset:
    """Loads a registered dataset, split into train / val / test per domain.

    Args:
        name: one of `available_datasets()`: `"ml-100k"`, `"ml-1m"`,
            `"synthetic"`, ...; the multi-task ones (`"ml-1m-m3oe"`,
            `"ml-100k-m3oe"`, `"synthetic-mt"`) return datasets with several
            `labels` (see `mlora_tf.data.movielens_m3oe`).
        data_dir: raw-data folder (MovieLens), or its parent holding
            `ml-1m/` (`ml_1m/`, `ml-100k/`). Default `$MLORA_TF_DATA_DIR` or
            `./datasets`. Ignored by `"synthetic"`. A folder written by
            `mlora-prepare --out_dir` (it holds `prepared.json`) is read as it is,
            without raw files; see `mlora_tf.data.prepared`. A shard folder
            (`mlora-prepare --format=tfrecord|parquet`, it holds a shard
            `manifest.json`) is read per `stream`; `name` must then be the
            manifest's `dataset` or `name` (or None), and no `options` apply.
        domain_split: what defines the domains. MovieLens: `"gender"` (default),
            `"age"` or `"occupation"`; Amazon: `"category_6"` (default) or
            `"category_13"`; Taobao: `"theme_<N>"` (default `"theme_10"`) or
            `"theme_<N>_time"`; M3oE's MovieLens: `"age3"` (the only one).
            None -> the dataset's default. Ignored by `"synthetic"`,
            `"synthetic-mt"` and `"csv"`.
        cache_dir: folder of the prepared-split cache; None -> `$MLORA_TF_CACHE`
            or `~/.cache/mlora_tf`; False -> no caching. `"synthetic"` is never
            cached.
        seed: split seed (and generator seed for `"synthetic"`); 123 as the
            original.
        stream: for a shard folder only: True returns a
            `mlora_tf.data.streamed.StreamedDataset` (no row in memory; what
            `mlora-train` trains on), False (default) reads every row into a
            `MultiDomainDataset` (`ShardedDataset.to_memory`).
        **options: loader-specific options. All loaders accept `fractions`
            (train, val, test), default `(0.6, 0.2, 0.2)`; `"synthetic"` also
            takes the `SyntheticConfig` knobs (`n_domains`, `n_users`,
            `n_items`, `n_rows`, `shift`, ...). Every loader takes `hash_buckets`
            (`{feature: N}` or `"uid:1000000,pid:200000"`): those features hashed
            into `N` buckets (`mlora_tf.data.hashing`); `"csv"` hashes the raw
            column values instead of building their vocabulary.

    Raises:
        ValueError: unknown dataset name or option (both named in the message),
            bad option values, malformed raw files.
        FileNotFoundError: raw files missing (the message names them and the
            expected folder layout).
    """
    if is_shard_dir(data_dir):
        return _load_shard_dir(name, data_dir, stream=stream, options=options)
    spec = get_spec(name)
    if "hash_buckets" not in spec.options and "hash_buckets" in options:
        # A loader whose ids are the raw integer ids: hashed after loading (and caching).
        from mlora_tf.data import hashing

        buckets = hashing.parse_hash_buckets(options.pop("hash_buckets"))
        dataset = load_dataset(name, data_dir=data_dir, domain_split=domain_split, cache_dir=cache_dir, seed=seed,
                               stream=stream, **options)
        return hashing.hash_dataset(dataset, buckets)
    unknown = sorted(set(options) - spec.options)
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for dataset '{name}'; valid options are "
            f"{sorted(spec.options)}. Received: {unknown}"
        )
    given_split = domain_split is not None and not (
        domain_split == "gender" and spec.default_domain_split not in (None, "gender")
    )
    domain_split = resolve_domain_split(spec, domain_split)
    if prepared.is_prepared_dir(data_dir):
        folder = os.fspath(data_dir)

        def rebuild(manifest: dict) -> MultiDomainDataset:
            return spec.loader(
                data_dir=manifest["raw_dir"],
                domain_split=manifest.get("domain_split") or domain_split,
                cache_dir=folder,
                seed=int(manifest.get("seed", seed)),
                **(manifest.get("options") or {}),
            )

        return prepared.load_prepared(
            folder,
            name,
            domain_split=domain_split if given_split and spec.default_domain_split else None,
            seed=seed,
            options=options,
            rebuild=rebuild,
        )
    return spec.loader(
        data_dir=data_dir, domain_split=domain_split, cache_dir=cache_dir, seed=seed, **options
    )


def is_shard_dir(folder) -> bool:
    """`mlora_tf.data.shards.is_shard_dir` (imported here on use: it needs TensorFlow)."""
    if folder is None or not os.path.isfile(os.path.join(os.fspath(folder), "manifest.json")):
        return False
    from mlora_tf.data import shards

    return shards.is_shard_dir(folder)


def shard_dataset_name(folder: str | os.PathLike) -> str:
    """The dataset name of a shard folder: its manifest's `dataset` (the registry name
    `mlora-prepare` was given), else its `name`."""
    from mlora_tf.data import shards

    manifest = shards.open_shards(folder, verify="size").manifest
    return manifest.get("dataset") or manifest["name"]


def _load_shard_dir(name, folder, *, stream: bool, options: Mapping):
    """A shard folder: streamed (`StreamedDataset`) or read into memory."""
    from mlora_tf.data import shards
    from mlora_tf.data.streamed import StreamedDataset

    opened = shards.open_shards(folder)
    manifest = opened.manifest
    names = [n for n in (manifest.get("dataset"), manifest.get("name")) if n]
    if name is not None and name not in names:
        raise ValueError(
            f"{os.fspath(folder)} holds shards of dataset {names[0]!r}, not {name!r}: give --dataset={names[0]} "
            f"or leave it out. Received: dataset={name!r}"
        )
    if options:
        raise ValueError(
            f"{os.fspath(folder)} is a prepared shard folder: loader options apply to mlora-prepare, not to "
            f"reading it. Received: {sorted(options)}"
        )
    if stream:
        return StreamedDataset(opened)
    return opened.to_memory()
