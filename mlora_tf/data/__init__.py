"""Data layer: raw files -> canonical table -> per-domain split -> cache.

Entry point: `load_dataset(name, ...)`; see `available_datasets()`.
"""

from mlora_tf.data.cache import SCHEMA_VERSION, default_cache_dir, make_cache_key
from mlora_tf.data.dataset import (
    COLUMNS,
    FEATURES,
    SPLITS,
    InteractionTable,
    MultiDomainDataset,
)
from mlora_tf.data.movielens import MovieLensFilesNotFoundError, load_movielens
from mlora_tf.data.movielens_m3oe import load_movielens_m3oe
from mlora_tf.data.registry import (
    DatasetSpec,
    available_datasets,
    load_dataset,
    register_dataset,
)
from mlora_tf.data.split import split_by_domain, split_indices, split_sizes
from mlora_tf.data.synthetic import SyntheticConfig, SyntheticWorld, load_synthetic
from mlora_tf.data.synthetic_mt import SyntheticMTConfig, SyntheticMTWorld, load_synthetic_multitask

__all__ = [
    "COLUMNS",
    "FEATURES",
    "SCHEMA_VERSION",
    "SPLITS",
    "DatasetSpec",
    "InteractionTable",
    "MovieLensFilesNotFoundError",
    "MultiDomainDataset",
    "SyntheticConfig",
    "SyntheticMTConfig",
    "SyntheticMTWorld",
    "SyntheticWorld",
    "available_datasets",
    "default_cache_dir",
    "load_dataset",
    "load_movielens",
    "load_movielens_m3oe",
    "load_synthetic",
    "load_synthetic_multitask",
    "make_cache_key",
    "register_dataset",
    "split_by_domain",
    "split_indices",
    "split_sizes",
]
