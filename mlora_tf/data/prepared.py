"""Prepared-dataset folders (`mlora-prepare --out_dir`), extra-array sidecars, progress.

**Prepared folder.** `mlora-prepare --dataset=NAME --raw_dir=RAW --out_dir=OUT` loads
the dataset with `cache_dir=OUT`, so `OUT` holds exactly the cache file `load_dataset`
itself would write there (`<loader>-<domain_split>-<key>.npz`, see
`mlora_tf.data.cache`), plus `prepared.json`, a manifest naming the dataset, the
domain split, the seed, the loader options, the cache file and its key, the raw folder
and the statistics. Two ways to train from it:

- `load_dataset(NAME, data_dir=OUT)` (`mlora-train --dataset=NAME --data_dir=OUT`):
  `data_dir` holds a `prepared.json`, so the split is read from the manifest's cache
  file; the raw files are not needed. A damaged cache file is rebuilt from the raw
  folder recorded in the manifest when it still exists, otherwise the error says to
  run `mlora-prepare` again.
- `load_dataset(NAME, data_dir=RAW, cache_dir=OUT)`: the ordinary cache lookup, a hit
  because the key (raw-file hashes and settings) is the same.

**Extra arrays.** The canonical `MultiDomainDataset` carries `uid, pid, domain, label`
only. Whatever else a loader produces (Taobao's pretrained 128-d user/item
embeddings, the generic CSV loader's extra feature columns) goes to a sidecar file
`<cache file stem>.extras.npz` next to the cache file, written atomically with its own
checksum and the same key. `get_extras(dataset)` returns those arrays.

**Progress.** Long loader steps call `progress(label, done, total)`. By default that logs
a line at every 10 %; `mlora-prepare` installs a textual progress bar with
`set_progress_reporter`.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping

import numpy as np
from absl import logging

from mlora_tf.data import cache as cache_lib
from mlora_tf.data.dataset import MultiDomainDataset
from mlora_tf.io import atomic_write, atomic_write_json

MANIFEST = "prepared.json"
MANIFEST_VERSION = 1
EXTRAS_SUFFIX = ".extras.npz"
_EXTRAS_META = "__meta__"

# --------------------------------------------------------------------------- #
# Progress reporting.
# --------------------------------------------------------------------------- #

ProgressReporter = Callable[[str, int, int], None]
_reporter: ProgressReporter | None = None
_last_logged: dict[str, int] = {}


def set_progress_reporter(reporter: ProgressReporter | None) -> ProgressReporter | None:
    """Installs `reporter(label, done, total)` for long steps; returns the previous one.

    None restores the default (an absl log line at every 10 %).
    """
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


def progress(label: str, done: int, total: int) -> None:
    """Reports that `done` of `total` units of step `label` are finished."""
    if _reporter is not None:
        _reporter(label, done, total)
        return
    total = max(int(total), 1)
    tenth = min(10, (10 * int(done)) // total)
    if done == 0:
        _last_logged[label] = 0
        return
    if tenth > _last_logged.get(label, 0):
        _last_logged[label] = tenth
        logging.info("%s: %d%% (%d/%d)", label, 10 * tenth, done, total)


# --------------------------------------------------------------------------- #
# Extra-array sidecars.
# --------------------------------------------------------------------------- #


def extras_path(cache_file: str) -> str:
    """The sidecar that belongs to cache file `cache_file`."""
    stem = cache_file[:-4] if cache_file.endswith(".npz") else cache_file
    return stem + EXTRAS_SUFFIX


def save_extras(path: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes `arrays` atomically to `path` with `key` and a checksum."""
    meta = {"key": key, "checksum": cache_lib.arrays_checksum(arrays), "names": sorted(arrays)}
    atomic_write(path, lambda f: np.savez(f, **dict(arrays), **{_EXTRAS_META: np.array(json.dumps(meta))}))


def load_extras(path: str, key: str) -> dict[str, np.ndarray] | None:
    """Reads a sidecar; None (warning) if it is missing, damaged or of another key."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            meta = json.loads(str(npz[_EXTRAS_META][()]))
            arrays = {name: npz[name] for name in meta["names"]}
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
        logging.warning("Ignoring unreadable extras file %s (%s: %s).", path, type(error).__name__, error)
        return None
    if meta.get("key") != key or meta.get("checksum") != cache_lib.arrays_checksum(arrays):
        logging.warning("Ignoring extras file %s (key or checksum mismatch).", path)
        return None
    return arrays


def attach_extras(dataset: MultiDomainDataset, arrays: Mapping[str, np.ndarray], path: str | None) -> None:
    """Hangs `arrays` on `dataset` (attribute `extras`) and records them in `info`."""
    dataset.extras = dict(arrays)  # type: ignore[attr-defined]
    dataset.info["extras"] = {
        "file": path,
        "arrays": {name: list(np.shape(a)) for name, a in sorted(arrays.items())},
    }


def get_extras(dataset: MultiDomainDataset) -> dict[str, np.ndarray]:
    """The extra arrays of `dataset` (empty if it has none).

    Raises:
        ValueError: if `info` names a sidecar that is missing or damaged.
    """
    arrays = getattr(dataset, "extras", None)
    if arrays is not None:
        return arrays
    record = dataset.info.get("extras")
    if not record:
        return {}
    path = record.get("file")
    loaded = load_extras(path, dataset.info.get("cache_key")) if path else None
    if loaded is None:
        raise ValueError(
            f"Extra arrays of dataset '{dataset.name}' are missing or damaged; prepare it again. "
            f"Received: file={path!r}"
        )
    dataset.extras = loaded  # type: ignore[attr-defined]
    return loaded


def get_or_build_with_extras(
    build: Callable[[], tuple[MultiDomainDataset, dict[str, np.ndarray]]],
    *,
    cache_dir: str | None,
    loader: str,
    domain_split: str,
    key: str,
) -> MultiDomainDataset:
    """`cache.get_or_build` for loaders that also produce extra arrays.

    A hit needs both the cache file and its sidecar; if either is missing or damaged,
    both are rebuilt.
    """
    if cache_dir is None:
        dataset, arrays = build()
        dataset.info.update(cache_key=key, cache_status="disabled", cache_file=None)
        attach_extras(dataset, arrays, None)
        return dataset
    path = cache_lib.cache_path(cache_dir, loader, domain_split, key)
    side = extras_path(path)
    dataset = cache_lib.load_cached(path, key)
    arrays = load_extras(side, key) if dataset is not None else None
    if dataset is not None and arrays is not None:
        logging.info("%s/%s: cache hit (%s)", loader, domain_split, path)
        dataset.info.update(cache_status="hit", cache_file=path)
        attach_extras(dataset, arrays, side)
        return dataset
    logging.info("%s/%s: cache miss -> building (%s)", loader, domain_split, path)
    dataset, arrays = build()
    dataset.info.update(cache_key=key, cache_status="built", cache_file=path)
    attach_extras(dataset, arrays, side)
    try:
        save_extras(side, key, arrays)
        cache_lib.save_dataset(dataset, path, key)
    except OSError as error:
        logging.warning("Could not write cache files %s (%s); continuing without them.", path, error)
    return dataset


# --------------------------------------------------------------------------- #
# Prepared folders.
# --------------------------------------------------------------------------- #


def is_prepared_dir(folder: str | os.PathLike | None) -> bool:
    """Whether `folder` holds a `prepared.json` manifest."""
    return folder is not None and os.path.isfile(os.path.join(os.fspath(folder), MANIFEST))


def dataset_statistics(dataset: MultiDomainDataset) -> dict:
    """Users, items, rows per split (total and per domain), shares and positive rate."""
    sizes = dataset.sizes()
    totals = {s: dataset.num_rows(s) for s in sizes}
    total = sum(totals.values())
    labels = dataset.labels
    rates = {
        label: (sum(float(dataset.splits[s][label].sum()) for s in sizes) / total if total else None)
        for label in labels
    }
    extra = {"positive_rates": rates} if len(labels) > 1 else {}
    return {
        "domains": int(dataset.n_domains),
        "users": int(dataset.vocab_sizes["uid"]),
        "items": int(dataset.vocab_sizes["pid"]),
        **totals,
        "total": int(total),
        "shares": {s: (totals[s] / total if total else None) for s in totals},
        "positive_rate": rates[labels[0]],
        **extra,
        "per_domain": sizes,
    }


def write_manifest(
    out_dir: str,
    dataset: MultiDomainDataset,
    *,
    request: Mapping,
    expected: Mapping | None = None,
) -> str:
    """Writes `OUT/prepared.json` (atomically) for a dataset cached in `out_dir`.

    Args:
        out_dir: the prepared folder (the cache file must already be in it).
        dataset: what the loader returned (`info["cache_file"]` set).
        request: `{"dataset", "domain_split", "seed", "options", "raw_dir"}`.
        expected: the expected statistics the CLI compared against, if any.

    Returns:
        The manifest path.
    """
    cache_file = dataset.info.get("cache_file")
    if not cache_file or not os.path.isfile(cache_file):
        raise ValueError(
            f"Dataset '{dataset.name}' was not written to a cache file in {out_dir}; nothing to "
            f"record. Received: cache_file={cache_file!r}"
        )
    if os.path.dirname(os.path.abspath(cache_file)) != os.path.abspath(out_dir):
        raise ValueError(
            f"The cache file must lie in the prepared folder {out_dir}. Received: {cache_file}"
        )
    extras = dataset.info.get("extras") or {}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "schema_version": cache_lib.SCHEMA_VERSION,
        "dataset": request["dataset"],
        "name": dataset.name,
        "domain_split": request.get("domain_split"),
        "seed": int(request.get("seed", 123)),
        "options": dict(request.get("options") or {}),
        "raw_dir": request.get("raw_dir"),
        "cache_file": os.path.basename(cache_file),
        "extras_file": os.path.basename(extras["file"]) if extras.get("file") else None,
        "cache_key": dataset.info["cache_key"],
        "domain_names": list(dataset.domain_names),
        "statistics": dataset_statistics(dataset),
        "expected": dict(expected) if expected else None,
    }
    path = os.path.join(out_dir, MANIFEST)
    try:
        atomic_write_json(path, manifest)
    except OSError as error:  # e.g. disk full: the previous manifest is left as it was
        raise OSError(error.errno, f"Could not write {path}: {error.strerror or error}") from None
    return path


def read_manifest(folder: str | os.PathLike) -> dict:
    """Reads and checks `folder/prepared.json`.

    Raises:
        ValueError: unreadable JSON or missing keys, naming the file.
    """
    path = os.path.join(os.fspath(folder), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}. "
            "Run mlora-prepare again."
        ) from None
    missing = [k for k in ("dataset", "cache_file", "cache_key") if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise ValueError(f"{path}: not a prepared-dataset manifest; it lacks {missing}. Received: {path}")
    return manifest


def load_prepared(
    folder: str | os.PathLike,
    name: str,
    *,
    domain_split: str | None,
    seed: int | None,
    options: Mapping,
    rebuild: Callable[[dict], MultiDomainDataset] | None = None,
) -> MultiDomainDataset:
    """Loads the dataset of a prepared folder.

    Args:
        folder: a folder written by `mlora-prepare`.
        name: the dataset name asked for; must equal the manifest's.
        domain_split: the domain split asked for (None: whatever was prepared).
        seed: the split seed asked for (None: whatever was prepared).
        options: loader options asked for; each must equal the prepared value.
        rebuild: called with the manifest when the cache file is damaged; None -> error.

    Raises:
        ValueError: another dataset / split / seed / option was prepared there (naming
            both values), or the file is damaged and cannot be rebuilt.
    """
    folder = os.fspath(folder)
    manifest = read_manifest(folder)
    path = os.path.join(folder, MANIFEST)
    if manifest["dataset"] != name:
        raise ValueError(
            f"{path} holds dataset '{manifest['dataset']}', not '{name}'. "
            f"Received: dataset={name!r}"
        )
    if domain_split is not None and manifest.get("domain_split") not in (None, domain_split):
        raise ValueError(
            f"{path} was prepared with domain_split={manifest['domain_split']!r}; prepare "
            f"another folder for this split. Received: domain_split={domain_split!r}"
        )
    if seed is not None and int(manifest.get("seed", seed)) != int(seed):
        raise ValueError(
            f"{path} was prepared with seed={manifest['seed']}. Received: seed={seed!r}"
        )
    prepared_options = manifest.get("options") or {}
    for key, value in options.items():
        prepared_value = prepared_options.get(key)
        if _jsonish(prepared_value) != _jsonish(value):
            raise ValueError(
                f"{path} was prepared with {key}={prepared_value!r}. Received: {key}={value!r}"
            )
    cache_file = os.path.join(folder, os.path.basename(manifest["cache_file"]))
    dataset = cache_lib.load_cached(cache_file, manifest["cache_key"])
    arrays: dict[str, np.ndarray] | None = {}
    side = None
    if manifest.get("extras_file"):
        side = os.path.join(folder, os.path.basename(manifest["extras_file"]))
        arrays = load_extras(side, manifest["cache_key"]) if dataset is not None else None
    if dataset is None or arrays is None:
        raw_dir = manifest.get("raw_dir")
        if rebuild is not None and raw_dir and os.path.isdir(raw_dir):
            logging.warning("%s is missing or damaged; rebuilding it from %s.", cache_file, raw_dir)
            return rebuild(manifest)
        raise ValueError(
            f"Prepared file {cache_file} is missing or damaged and the raw folder "
            f"{raw_dir!r} is not available to rebuild it; run mlora-prepare again. "
            f"Received: data_dir={folder!r}"
        )
    dataset.info.update(cache_status="prepared", cache_file=cache_file, prepared_dir=os.path.abspath(folder))
    if side is not None:
        attach_extras(dataset, arrays, side)
    return dataset


def _jsonish(value: object) -> object:
    """Normalises tuples to lists so that option values compare like their JSON form."""
    return json.loads(json.dumps(value, default=list))
