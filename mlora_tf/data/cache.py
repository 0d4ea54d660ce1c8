"""On-disk cache of prepared (split) datasets.

A prepared dataset is stored as one uncompressed `.npz` file holding the split
arrays (`<split>__<column>`) and a `__meta__` entry: a JSON string with the
dataset's metadata, the cache key, the schema version and a sha256 checksum of
the arrays.

- **Where:** `cache_dir`, by default `$MLORA_TF_CACHE` or `~/.cache/mlora_tf`.
  The file name is `<loader>-<domain_split>-<key[:20]>.npz`.
- **Key:** sha256 of a canonical JSON document holding the sha256 of every raw
  input file's bytes, the loader name, the domain split, the split fractions,
  the seed and `SCHEMA_VERSION`. Any change to one of them gives a new file.
- **Writes** are atomic: a temporary file in the same folder is written,
  flushed, fsync-ed and moved into place with `os.replace`.
- **Reads** never crash: a truncated or corrupt file, a checksum mismatch or a
  key mismatch logs a warning and the caller rebuilds (and overwrites it).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from absl import logging

from mlora_tf.io import atomic_write
from mlora_tf.data.dataset import FEATURES, LABEL, SPLITS, MultiDomainDataset

SCHEMA_VERSION = 1
"""Bump when the prepared arrays of any loader change meaning or layout."""

CACHE_ENV_VAR = "MLORA_TF_CACHE"
_META_KEY = "__meta__"
_CHUNK = 1 << 20


def default_cache_dir() -> str:
    """`$MLORA_TF_CACHE` if set, else `~/.cache/mlora_tf`."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return os.path.expanduser(env)
    return os.path.join(os.path.expanduser("~"), ".cache", "mlora_tf")


def resolve_cache_dir(cache_dir: str | os.PathLike | bool | None) -> str | None:
    """Maps the `cache_dir` argument of loaders to a folder, or None (disabled).

    `None` or `True` -> `default_cache_dir()`; `False` -> caching disabled;
    a path -> that folder.
    """
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    if isinstance(cache_dir, (str, os.PathLike)):
        return os.fspath(cache_dir)
    raise ValueError(
        "`cache_dir` must be a folder path, None (default folder) or False "
        f"(no caching). Received: cache_dir={cache_dir!r}"
    )


def hash_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_cache_key(
    *,
    loader: str,
    raw_file_hashes: Mapping[str, str | None],
    domain_split: str,
    fractions: Sequence[float],
    seed: int,
    extra: Mapping | None = None,
) -> str:
    """sha256 over everything that determines a prepared dataset.

    Args:
        loader: loader name, e.g. `"ml-1m"`.
        raw_file_hashes: raw file name -> sha256 of its bytes (None for an
            optional file that is absent).
        domain_split: e.g. `"gender"`.
        fractions: `(train, val, test)` split fractions.
        seed: split seed.
        extra: any other JSON-serialisable loader settings.
    """
    document = {
        "schema_version": SCHEMA_VERSION,
        "loader": loader,
        "raw_files": dict(sorted(raw_file_hashes.items())),
        "domain_split": domain_split,
        "fractions": [float(f) for f in fractions],
        "seed": int(seed),
        "extra": dict(extra or {}),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_path(cache_dir: str, loader: str, domain_split: str, key: str) -> str:
    """The file that holds the dataset with `key`."""
    return os.path.join(cache_dir, f"{loader}-{domain_split}-{key[:20]}.npz")


def _array_entries(dataset: MultiDomainDataset) -> dict[str, np.ndarray]:
    return {
        f"{split}__{column}": dataset.splits[split][column]
        for split in SPLITS
        for column in dataset.column_names
    }


def arrays_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `arrays`."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_dataset(dataset: MultiDomainDataset, path: str, key: str) -> None:
    """Writes `dataset` to `path` atomically (temp file, fsync, `os.replace`)."""
    arrays = _array_entries(dataset)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "checksum": arrays_checksum(arrays),
        "dataset": dataset.metadata(),
    }
    atomic_write(path, lambda f: np.savez(f, **arrays, **{_META_KEY: np.array(json.dumps(meta))}))


def load_cached(path: str, key: str) -> MultiDomainDataset | None:
    """Reads a cached dataset; None (with a warning) if missing or unusable."""
    if not os.path.exists(path):
        return None
    try:
        # Open the file ourselves so that it is closed even when numpy fails.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            meta = json.loads(str(npz[_META_KEY][()]))
            # Files written before the multi-task schema have no `labels` /
            # `dense_features` entries: they are single-task `uid, pid, domain, label`.
            schema = meta.get("dataset", {})
            features = tuple(schema.get("features") or FEATURES)
            labels = tuple(schema.get("labels") or (LABEL,))
            dense = tuple(schema.get("dense_features") or ())
            columns = features + dense + labels
            names = [f"{s}__{c}" for s in SPLITS for c in columns]
            arrays = {name: npz[name] for name in names}
        problem = None
        if meta.get("schema_version") != SCHEMA_VERSION:
            problem = f"schema version {meta.get('schema_version')} != {SCHEMA_VERSION}"
        elif meta.get("key") != key:
            problem = "cache key mismatch"
        elif meta.get("checksum") != arrays_checksum(arrays):
            problem = "array checksum mismatch"
        if problem:
            logging.warning("Ignoring cache file %s (%s); rebuilding.", path, problem)
            return None
        info = meta["dataset"]
        splits = {
            s: {c: arrays[f"{s}__{c}"] for c in columns} for s in SPLITS
        }
        return MultiDomainDataset(
            name=info["name"],
            n_domains=info["n_domains"],
            vocab_sizes=info["vocab_sizes"],
            domain_names=info["domain_names"],
            splits=splits,
            info=info["info"],
            features=features,
            labels=labels,
            dense_features=dense,
        )
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
        logging.warning(
            "Ignoring unreadable cache file %s (%s: %s); rebuilding.",
            path,
            type(error).__name__,
            error,
        )
        return None


def get_or_build(
    build: Callable[[], MultiDomainDataset],
    *,
    cache_dir: str | None,
    loader: str,
    domain_split: str,
    key: str,
) -> MultiDomainDataset:
    """Returns the cached dataset for `key`, or builds, caches and returns it.

    `cache_dir=None` disables caching. `info["cache_key"]` is always set and
    `info["cache_status"]` is one of `"hit"`, `"built"` or `"disabled"`.
    """
    if cache_dir is None:
        dataset = build()
        dataset.info.update(cache_key=key, cache_status="disabled", cache_file=None)
        return dataset
    path = cache_path(cache_dir, loader, domain_split, key)
    dataset = load_cached(path, key)
    if dataset is not None:
        logging.info("%s/%s: cache hit (%s)", loader, domain_split, path)
        dataset.info.update(cache_status="hit", cache_file=path)
        return dataset
    logging.info("%s/%s: cache miss -> building (%s)", loader, domain_split, path)
    dataset = build()
    dataset.info.update(cache_key=key, cache_status="built", cache_file=path)
    try:
        save_dataset(dataset, path, key)
    except OSError as error:
        logging.warning("Could not write cache file %s (%s); continuing without it.", path, error)
    return dataset
