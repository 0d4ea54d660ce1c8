"""Prepared datasets as shards on disk, streamed with `tf.data`.

A `MultiDomainDataset` that does not fit in memory is kept as many small files, grouped
so that one domain's rows of one split can be read on their own:

    OUT/
      manifest.json                          written last: a folder without it is no dataset
      extras.npz                             only if the dataset has extra arrays
      train/domain-000/part-00000.tfrecord   at most `shard_rows` rows per file
      train/domain-000/part-00001.tfrecord
      train/domain-001/part-00000.tfrecord
      val/...  test/...

**Files.** `tfrecord`: one `tf.train.Example` per row, an `int64_list` per sparse
feature and a `float_list` per dense feature and label (one value each). `parquet`
(pyarrow, ZSTD, row groups of 65,536 rows): one int64 / float32 column per column.
Inside a split the files of domain 0 come first, then domain 1's, ...; read in that
order they give the rows of `MultiDomainDataset.splits[split]` in their order. A domain
with no rows in a split has no files there.

**Manifest** (`manifest.json`, `format_version` 1):

- `format` (`"mlora_tf.shards"`), `format_version`, `file_format` (`tfrecord` or
  `parquet`), `compression`, `shard_rows`;
- `name`, `dataset` (the registry name `mlora-prepare` was given, or null),
  `n_domains`, `domain_names` (index = domain id), `vocab_sizes`;
- `schema`: `features`, `dense_features`, `labels` and `columns` (in file order:
  `name`, `dtype` `int64`/`float32`, `role` `feature`/`dense`/`label`);
- `splits`: per split its `rows` and `domains`, a list (index = domain id) of
  `{"domain", "name", "rows", "files"}`, each file `{"path"` (relative, `/`-separated),
  `"rows", "bytes", "sha256"}`;
- `extras`: null or `{"path", "bytes", "sha256", "arrays": {name: {"shape", "dtype"}}}`
  (Taobao's pretrained embeddings, the csv loader's extra columns;
  `mlora_tf.data.prepared.get_extras`);
- `info` (the dataset's provenance, as in memory), `statistics`
  (`prepared.dataset_statistics`), `request` and `expected` (what `mlora-prepare` was
  asked and the statistics it compared against; null when written from Python).

**Writes** are atomic file by file (temp name in the same folder, fsync, rename): an
existing `manifest.json` is removed first, the part files and `extras.npz` are written,
the manifest last, then part files a previous write left and the new manifest does not
name are deleted. A write that fails leaves a folder without a manifest.

**Reading.** `open_shards(folder)` reads the manifest only (and checks that every file
is there with its recorded size); `ShardedDataset.dataset_for(split, domain, batch_size,
shuffle_buffer, seed)` streams one domain and `mixed_dataset(...)` several, with
`tf.data`: files read ahead in parallel (`interleave`), a seeded shuffle buffer, batches
of dict rows (`int64` features, `float32` dense features and labels, as
`MultiDomainDataset.domain_slice`), prefetch. `batches(split, batch_size, domains=...,
order=...)` is the fast reader the trainer streams with: blocks of rows read in file
order into numpy, each batch gathered in a given order of the rows (a file of int32 row
numbers, e.g. a shuffle buffer's order). Memory holds the buffers only, never a
split; `to_memory()` reads everything back into the `MultiDomainDataset` that was
written (the same rows in the same order, vocabularies, domain names, info, extras).

Example:

```python
ds = mlora_tf.data.load_dataset("synthetic", n_rows=6000)
write_shards(ds, "/tmp/syn", file_format="parquet", shard_rows=1000)
shards = open_shards("/tmp/syn")
shards.num_rows("train", 1)                     # from the manifest, nothing read
for batch in shards.dataset_for("train", 1, batch_size=256, shuffle_buffer=10_000, seed=7):
    batch["uid"], batch["label"]                 # (256,) int64, (256,) float32
assert shards.to_memory().sizes() == ds.sizes()
```
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from mlora_tf.data import prepared as prepared_lib
from mlora_tf.data.dataset import SPLITS, MultiDomainDataset
from mlora_tf.io import atomic_write_json

MANIFEST = "manifest.json"
FORMAT = "mlora_tf.shards"
FORMAT_VERSION = 1
FILE_FORMATS: tuple[str, ...] = ("tfrecord", "parquet")
DEFAULT_SHARD_ROWS = 1_000_000
EXTRAS_FILE = "extras.npz"
VERIFY_MODES: tuple[str, ...] = ("lazy", "full", "size")
MIX_MODES: tuple[str, ...] = ("in_order", "sample")

_SUFFIX = {"tfrecord": ".tfrecord", "parquet": ".parquet"}
_PARQUET_COMPRESSION = "zstd"
_PARQUET_ROW_GROUP = 1 << 16
_ENCODE_CHUNK = 1 << 16  # rows serialised per step (bounds the writer's memory)
_READ_BATCH = 1 << 13  # rows per pyarrow record batch when streaming parquet
_SAMPLE_BLOCK = 16  # rows per draw of `mixed_dataset(mix="sample")`
_ORDER_BLOCK = 1 << 16  # row numbers read at a time by `batches(order=...)`
_GROUP_ROWS = 1 << 16  # rows per block of `batch_blocks`, and per element `batches` hands to `tf.data`
_CHUNK = 1 << 20
_PART = re.compile(r"^part-\d+\.(tfrecord|parquet)(\..+\.tmp)?$")


def _read_ahead(items: Iterator, depth: int) -> Iterator:
    """`items`, iterated on a daemon thread up to `depth` items ahead of the caller.

    The reader's exception comes out of the caller's `next`. A caller that stops early
    (or drops the iterator) stops the thread at its next item."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read():
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as error:  # handed to the caller, raised there
            put(("error", error))

    def consume():
        thread = threading.Thread(target=read, name="mlora_tf-read-ahead", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = slots.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()

    return consume()


class ShardError(ValueError):
    """A shard folder that cannot be read as written: a damaged, cut-short or foreign
    file, or a manifest that does not describe it. The message names the file."""


@dataclasses.dataclass(frozen=True)
class ShardFile:
    """One part file of a split and domain, as the manifest records it.

    Attributes:
        path: absolute path.
        relpath: path relative to the shard folder, `/`-separated.
        rows: number of rows in the file.
        bytes: size of the file in bytes.
        sha256: hex digest of the file's bytes.
    """

    path: str
    relpath: str
    rows: int
    bytes: int
    sha256: str


# --------------------------------------------------------------------------- #
# Writing.
# --------------------------------------------------------------------------- #


def _dtype_of(dataset: MultiDomainDataset, column: str) -> str:
    return "int64" if column in dataset.features else "float32"


def _role_of(dataset: MultiDomainDataset, column: str) -> str:
    if column in dataset.features:
        return "feature"
    return "dense" if column in dataset.dense_features else "label"


def _encode_examples(columns: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> np.ndarray:
    """Rows of `columns` as serialised `tf.train.Example`s, `(n,)` bytes.

    Built bottom-up with `tf.io.encode_proto` (vectorised in TensorFlow, a few times
    faster than one `tf.train.Example` per row in Python): per column an
    `Int64List`/`FloatList` of one value, its `Feature`, the map entry `(name, Feature)`;
    then the rows' `Features` and `Example`s.
    """
    n = len(next(iter(columns.values())))
    one = tf.ones([n, 1], tf.int32)
    entries = []
    for name, values in columns.items():
        kind = "Int64List" if dtypes[name] == "int64" else "FloatList"
        field = "int64_list" if dtypes[name] == "int64" else "float_list"
        value_list = tf.io.encode_proto(one, [tf.constant(values)[:, None]], ["value"], f"tensorflow.{kind}")
        feature = tf.io.encode_proto(one, [value_list[:, None]], [field], "tensorflow.Feature")
        key = tf.fill([n, 1], name)
        entries.append(tf.io.encode_proto(
            tf.fill([n, 2], 1), [key, feature[:, None]], ["key", "value"], "tensorflow.Features.FeatureEntry"
        ))
    features = tf.io.encode_proto(tf.fill([n, 1], len(entries)), [tf.stack(entries, 1)], ["feature"],
                                  "tensorflow.Features")
    return tf.io.encode_proto(one, [features[:, None]], ["features"], "tensorflow.Example").numpy()


def _write_tfrecord(path: str, columns: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> None:
    n = len(next(iter(columns.values())))
    with tf.io.TFRecordWriter(path) as writer:
        for start in range(0, n, _ENCODE_CHUNK):
            chunk = {c: v[start:start + _ENCODE_CHUNK] for c, v in columns.items()}
            for record in _encode_examples(chunk, dtypes):
                writer.write(record)


def _write_parquet(path: str, columns: Mapping[str, np.ndarray], dtypes: Mapping[str, str]) -> None:
    schema = pa.schema([(c, pa.int64() if dtypes[c] == "int64" else pa.float32()) for c in columns])
    table = pa.Table.from_arrays([pa.array(np.ascontiguousarray(v)) for v in columns.values()], schema=schema)
    pq.write_table(table, path, row_group_size=_PARQUET_ROW_GROUP, compression=_PARQUET_COMPRESSION)


_WRITERS: dict[str, Callable[[str, Mapping[str, np.ndarray], Mapping[str, str]], None]] = {
    "tfrecord": _write_tfrecord,
    "parquet": _write_parquet,
}


def _hash_and_sync(path: str) -> tuple[int, str]:
    """`(bytes, sha256)` of a file, fsync-ed on the way."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(f.fileno())
    return size, digest.hexdigest()


def _write_file_atomically(path: str, write: Callable[[str], None]) -> tuple[int, str]:
    """`write(tmp)` to a temp file beside `path`, fsync, rename; `(bytes, sha256)`.

    The engines (TFRecordWriter, pyarrow) write to a path, so this is the path form of
    `mlora_tf.io.atomic_write`: on any error the temp file is removed and `path` is
    left as it was.
    """
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        size, digest = _hash_and_sync(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and path not in str(error):
            raise OSError(error.errno, f"could not write {path}: {error.strerror or error}") from error
        raise
    return size, digest


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _domain_folder(split: str, domain: int, n_domains: int) -> str:
    return f"{split}/domain-{domain:0{max(3, len(str(n_domains - 1)))}d}"


def _remove_stale(folder: str, keep: set[str]) -> None:
    """Deletes part files (and their temp files) under `<split>/domain-*/` that `keep`
    (relative paths) does not name, and domain folders left empty."""
    for split in SPLITS:
        split_dir = os.path.join(folder, split)
        if not os.path.isdir(split_dir):
            continue
        for domain_dir in sorted(os.listdir(split_dir)):
            full = os.path.join(split_dir, domain_dir)
            if not domain_dir.startswith("domain-") or not os.path.isdir(full):
                continue
            for name in os.listdir(full):
                if _PART.match(name) and f"{split}/{domain_dir}/{name}" not in keep:
                    os.unlink(os.path.join(full, name))
            if not os.listdir(full):
                os.rmdir(full)
        if not os.listdir(split_dir):
            os.rmdir(split_dir)


def write_shards(
    dataset: MultiDomainDataset,
    out_dir: str | os.PathLike,
    *,
    file_format: str = "tfrecord",
    shard_rows: int = DEFAULT_SHARD_ROWS,
    extras: Mapping[str, np.ndarray] | None = None,
    dataset_name: str | None = None,
    request: Mapping | None = None,
    expected: Mapping | None = None,
) -> str:
    """Writes `dataset` as shards into `out_dir` and returns the manifest's path.

    Args:
        dataset: the prepared dataset (its splits are grouped by domain).
        out_dir: the shard folder (created). A shard folder already there is replaced.
        file_format: `"tfrecord"` or `"parquet"`.
        shard_rows: the most rows a file holds (positive).
        extras: the extra arrays to keep (default `prepared.get_extras(dataset)`).
        dataset_name: the registry name the dataset was loaded under (`"ml-1m"`), kept
            as the manifest's `dataset`.
        request: what `mlora-prepare` was asked (`dataset`, `domain_split`, `seed`,
            `options`, `raw_dir`), kept as the manifest's `request`.
        expected: the expected statistics, kept as the manifest's `expected`.

    Raises:
        ValueError: a bad `file_format` or `shard_rows`.
        OSError: a file could not be written (naming it); the folder then has no
            manifest.
    """
    if file_format not in FILE_FORMATS:
        raise ValueError(f"`file_format` must be one of {list(FILE_FORMATS)}. Received: file_format={file_format!r}")
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, (int, np.integer)) or shard_rows < 1:
        raise ValueError(f"`shard_rows` must be a positive integer. Received: shard_rows={shard_rows!r}")
    shard_rows = int(shard_rows)
    folder = os.path.abspath(os.fspath(out_dir))
    if os.path.isfile(folder):
        raise ValueError(f"The shard folder is a file. Received: out_dir={folder}")
    meta = dataset.metadata()  # fails early, before any file, on an info entry JSON cannot hold
    os.makedirs(folder, exist_ok=True)
    manifest_path = os.path.join(folder, MANIFEST)
    if os.path.exists(manifest_path):
        os.unlink(manifest_path)  # From here on the folder is no dataset until the new manifest.
    extras = dict(prepared_lib.get_extras(dataset) if extras is None else extras)
    columns = dataset.column_names
    dtypes = {c: _dtype_of(dataset, c) for c in columns}
    write = _WRITERS[file_format]
    total = sum(dataset.num_rows(s) for s in SPLITS)
    done = 0
    prepared_lib.progress("writing shards", 0, total)
    splits = {}
    for split in SPLITS:
        domains = []
        for d in range(dataset.n_domains):
            rows = dataset.domain_slice(split, d)
            n = len(rows["domain"])
            files = []
            for part, start in enumerate(range(0, n, shard_rows)):
                chunk = {c: rows[c][start:start + shard_rows] for c in columns}
                relpath = f"{_domain_folder(split, d, dataset.n_domains)}/part-{part:05d}{_SUFFIX[file_format]}"
                size, digest = _write_file_atomically(
                    os.path.join(folder, *relpath.split("/")), lambda tmp, chunk=chunk: write(tmp, chunk, dtypes)
                )
                files.append({"path": relpath, "rows": len(chunk["domain"]), "bytes": size, "sha256": digest})
                done += len(chunk["domain"])
                prepared_lib.progress("writing shards", done, total)
            domains.append({"domain": d, "name": dataset.domain_names[d], "rows": n, "files": files})
        splits[split] = {"rows": dataset.num_rows(split), "domains": domains}
    extras_record = None
    if extras:
        path = os.path.join(folder, EXTRAS_FILE)
        prepared_lib.save_extras(path, dataset.info.get("cache_key") or "", extras)
        size, digest = _hash_and_sync(path)
        extras_record = {
            "path": EXTRAS_FILE, "bytes": size, "sha256": digest,
            "arrays": {k: {"shape": list(np.shape(v)), "dtype": np.asarray(v).dtype.str} for k, v in sorted(extras.items())},
        }
    for relpath in {f["path"].rsplit("/", 1)[0] for s in splits.values() for d in s["domains"] for f in d["files"]}:
        _fsync_folder(os.path.join(folder, *relpath.split("/")))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "file_format": file_format,
        "compression": _PARQUET_COMPRESSION if file_format == "parquet" else None,
        "shard_rows": shard_rows,
        "name": dataset.name,
        "dataset": dataset_name if dataset_name is not None else (request or {}).get("dataset"),
        "n_domains": int(dataset.n_domains),
        "domain_names": list(dataset.domain_names),
        "vocab_sizes": dict(dataset.vocab_sizes),
        "schema": {
            "features": list(dataset.features),
            "dense_features": list(dataset.dense_features),
            "labels": list(dataset.labels),
            "columns": [{"name": c, "dtype": dtypes[c], "role": _role_of(dataset, c)} for c in columns],
        },
        "splits": splits,
        "extras": extras_record,
        "info": meta["info"],
        "statistics": prepared_lib.dataset_statistics(dataset),
        "request": dict(request) if request is not None else None,
        "expected": dict(expected) if expected else None,
    }
    try:
        atomic_write_json(manifest_path, manifest)
    except OSError as error:
        raise OSError(error.errno, f"Could not write {manifest_path}: {error.strerror or error}") from None
    _remove_stale(folder, {f["path"] for s in splits.values() for d in s["domains"] for f in d["files"]})
    if not extras and os.path.exists(os.path.join(folder, EXTRAS_FILE)):
        os.unlink(os.path.join(folder, EXTRAS_FILE))
    return manifest_path


# --------------------------------------------------------------------------- #
# Reading.
# --------------------------------------------------------------------------- #


def is_shard_dir(folder: str | os.PathLike | None) -> bool:
    """Whether `folder` holds a shard `manifest.json` (of any format version)."""
    if folder is None:
        return False
    path = os.path.join(os.fspath(folder), MANIFEST)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _read_manifest(folder: str) -> dict:
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        what = "does not exist" if not os.path.exists(folder) else "has no manifest.json"
        raise FileNotFoundError(
            f"{folder} {what}: not a shard folder (a write that did not finish leaves none; "
            f"run mlora-prepare --format=tfrecord|parquet again). Received: {folder}"
        )
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except json.JSONDecodeError as error:
        raise ShardError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}. Run mlora-prepare again."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ShardError(f"{path} is not a shard manifest (format {FORMAT!r}). Received: format={found!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ShardError(
            f"{path} is of shard format version {manifest.get('format_version')!r}; this version of mlora_tf "
            f"reads version {FORMAT_VERSION}. Prepare the data again with this version. "
            f"Received: format_version={manifest.get('format_version')!r}"
        )
    if manifest.get("file_format") not in FILE_FORMATS:
        raise ShardError(
            f"{path}: unknown file_format; expected one of {list(FILE_FORMATS)}. "
            f"Received: file_format={manifest.get('file_format')!r}"
        )
    missing = [k for k in ("name", "n_domains", "domain_names", "vocab_sizes", "schema", "splits") if k not in manifest]
    missing += [f"splits.{s}" for s in SPLITS if s not in manifest.get("splits", {})]
    if missing:
        raise ShardError(f"{path}: the manifest lacks {missing}. Received: {sorted(manifest)}")
    return manifest


class ShardedDataset:
    """A shard folder (`write_shards`, `mlora-prepare --format=...`), read lazily.

    Everything about the data but the rows comes from the manifest: the schema,
    vocabularies, domains and the row counts per split and domain. Rows are streamed by
    `dataset_for` / `mixed_dataset`, or read whole by `to_memory`.

    Attributes:
        folder: the shard folder (absolute).
        manifest: the parsed `manifest.json`.
        file_format: `"tfrecord"` or `"parquet"`.
        name, n_domains, domain_names, vocab_sizes, features, labels,
        dense_features, info: as in `MultiDomainDataset`.
        verify: `"lazy"`, `"full"` or `"size"` (see `open_shards`).
    """

    def __init__(self, folder: str | os.PathLike, verify: str = "lazy"):
        if verify not in VERIFY_MODES:
            raise ValueError(f"`verify` must be one of {list(VERIFY_MODES)}. Received: verify={verify!r}")
        self.folder = os.path.abspath(os.fspath(folder))
        self.verify = verify
        self.manifest = _read_manifest(self.folder)
        m = self.manifest
        self.manifest_path = os.path.join(self.folder, MANIFEST)
        self.file_format: str = m["file_format"]
        self.name: str = m["name"]
        self.n_domains = int(m["n_domains"])
        self.domain_names: list[str] = list(m["domain_names"])
        self.vocab_sizes: dict[str, int] = {k: int(v) for k, v in m["vocab_sizes"].items()}
        schema = m["schema"]
        self.features = tuple(schema["features"])
        self.dense_features = tuple(schema.get("dense_features") or ())
        self.labels = tuple(schema["labels"])
        self.info: dict = m.get("info") or {}
        self._files: dict[tuple[str, int], list[ShardFile]] = {}
        self._rows: dict[tuple[str, int], int] = {}
        for split in SPLITS:
            domains = m["splits"][split].get("domains", [])
            if len(domains) != self.n_domains:
                raise ShardError(
                    f"{self.manifest_path}: split '{split}' lists {len(domains)} domains, the dataset has "
                    f"{self.n_domains}. Received: {len(domains)}"
                )
            for d, entry in enumerate(domains):
                files = [self._file(f) for f in entry.get("files", [])]
                rows = int(entry.get("rows", -1))
                if rows != sum(f.rows for f in files):
                    raise ShardError(
                        f"{self.manifest_path}: split '{split}', domain {d} records {rows} rows but its files "
                        f"hold {sum(f.rows for f in files)}. Received: {rows}"
                    )
                self._files[split, d], self._rows[split, d] = files, rows
        self._verified: set[str] = set()
        for files in self._files.values():
            for file in files:
                self._check_present(file)
        if verify == "full":
            self.verify_checksums()

    # ------------------------------------------------------------ the manifest
    def _file(self, entry: Mapping) -> ShardFile:
        relpath = str(entry.get("path", ""))
        parts = relpath.split("/")
        if not relpath or relpath.startswith("/") or ".." in parts:
            raise ShardError(f"{self.manifest_path}: a file path must lie inside the folder. Received: path={relpath!r}")
        return ShardFile(
            path=os.path.join(self.folder, *parts), relpath=relpath, rows=int(entry["rows"]),
            bytes=int(entry["bytes"]), sha256=str(entry["sha256"]),
        )

    def _check_present(self, file: ShardFile) -> None:
        if not os.path.isfile(file.path):
            raise FileNotFoundError(
                f"Shard file missing: {file.path} (listed in {self.manifest_path}). Run mlora-prepare again. "
                f"Received: {file.relpath}"
            )
        size = os.path.getsize(file.path)
        if size != file.bytes:
            what = "cut short" if size < file.bytes else "longer than written"
            raise ShardError(
                f"Shard file {file.path} is {what}: {size} bytes, the manifest records {file.bytes}. "
                f"Run mlora-prepare again. Received: {size} bytes"
            )

    def _check_file(self, file: ShardFile) -> None:
        """Size and sha256 of one file against the manifest (once per file)."""
        if file.path in self._verified:
            return
        self._check_present(file)
        digest = hashlib.sha256()
        with open(file.path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != file.sha256:
            raise ShardError(
                f"Shard file {file.path} is damaged: its sha256 is {digest.hexdigest()}, the manifest records "
                f"{file.sha256}. Run mlora-prepare again. Received: {file.relpath}"
            )
        self._verified.add(file.path)

    def verify_checksums(self) -> None:
        """Checks the sha256 of every file (and of `extras.npz`); raises naming the
        first damaged one."""
        for files in self._files.values():
            for file in files:
                self._check_file(file)
        if self.manifest.get("extras"):
            self._check_file(self._extras_file())

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column of a row: features, dense features, then labels."""
        return self.features + self.dense_features + self.labels

    @property
    def is_multitask(self) -> bool:
        return len(self.labels) > 1

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"Unknown split '{split}'; valid splits are {list(SPLITS)}. Received: split={split!r}")

    def _split_domains(self, split: str, domains) -> list[int]:
        """`domains` (None: every domain) as a checked list of distinct domain ids of
        a checked `split`."""
        self._check_split(split)
        domains = list(range(self.n_domains)) if domains is None else list(domains)
        for d in domains:
            self._check_domain(d)
        if not domains or len(set(domains)) != len(domains):
            raise ValueError(f"`domains` must be distinct domain ids. Received: domains={domains}")
        return domains

    def _check_domain(self, domain: int) -> None:
        if isinstance(domain, bool) or not isinstance(domain, (int, np.integer)) or not 0 <= domain < self.n_domains:
            raise ValueError(f"Domain id must be an integer in [0, {self.n_domains}). Received: domain={domain!r}")

    def num_rows(self, split: str, domain: int | None = None) -> int:
        """Rows of `split`, of one domain if `domain` is given (from the manifest)."""
        self._check_split(split)
        if domain is None:
            return sum(self._rows[split, d] for d in range(self.n_domains))
        self._check_domain(domain)
        return self._rows[split, int(domain)]

    def sizes(self) -> dict[str, list[int]]:
        """`split` -> per-domain row counts, as `MultiDomainDataset.sizes`."""
        return {s: [self._rows[s, d] for d in range(self.n_domains)] for s in SPLITS}

    def files(
        self, split: str, domain: int | None = None, input_context: tf.distribute.InputContext | None = None
    ) -> list[ShardFile]:
        """The part files of `split` (of one domain), in row order; with an
        `input_context`, only that input pipeline's: of each domain, every
        `num_input_pipelines`-th file from the `input_pipeline_id`-th on."""
        self._check_split(split)
        if domain is not None:
            self._check_domain(domain)
        domains = range(self.n_domains) if domain is None else [domain]
        return [f for d in domains for f in self._worker_files(list(self._files[split, int(d)]), input_context)]

    def element_spec(self, batched: bool = True) -> dict[str, tf.TensorSpec]:
        """The spec of one element of `dataset_for`: `(None,)` per column when batched."""
        shape = [None] if batched else []
        return {c: tf.TensorSpec(shape, tf.int64 if c in self.features else tf.float32)
                for c in self.column_names}

    # ------------------------------------------------------------ streaming
    def _raw_rows(self, files: Sequence[ShardFile], cycle_length: int, block_length: int | None) -> tf.data.Dataset:
        """One element per row: a serialised Example (tfrecord) or a dict of scalars
        (parquet); the files' rows in file order when `block_length` is None."""
        by_path = {f.path: f for f in files}
        paths = tf.data.Dataset.from_tensor_slices(tf.constant([f.path for f in files], tf.string))
        if self.verify == "lazy":
            def check(path):  # `path`: numpy bytes
                self._check_file(by_path[path.decode()])
                return path

            paths = paths.map(lambda p: tf.ensure_shape(tf.numpy_function(check, [p], tf.string, stateful=True), []))
        if block_length is None:
            # A file's rows as one block: with at most `shard_rows` rows per file the
            # interleave emits file after file (the in-memory order) while it reads
            # the next `cycle_length - 1` files ahead.
            block_length = max([f.rows for f in files] + [1])
        if self.file_format == "tfrecord":
            def read(path):
                return tf.data.TFRecordDataset(path, buffer_size=_CHUNK)
        else:
            spec = self.element_spec(batched=True)
            columns = list(self.column_names)

            def read(path):
                return tf.data.Dataset.from_generator(
                    _parquet_batches, args=(path, columns), output_signature=spec
                ).unbatch()

        return paths.interleave(
            read, cycle_length=max(1, min(int(cycle_length), len(files))), block_length=int(block_length),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )

    def _finish(self, rows: tf.data.Dataset, batch_size: int | None, drop_remainder: bool,
                blocks: bool = False) -> tf.data.Dataset:
        """Batches (`rebatch` when `rows` are blocks of rows already), parses
        (tfrecord), prefetches."""
        if blocks and batch_size is None:
            rows = rows.unbatch()
        elif blocks:
            rows = rows.rebatch(batch_size, drop_remainder=drop_remainder)
        elif batch_size is not None:
            rows = rows.batch(batch_size, drop_remainder=drop_remainder)
        if self.file_format == "tfrecord":
            names = self.column_names
            spec = {c: tf.io.FixedLenFeature([], tf.int64 if c in self.features else tf.float32) for c in names}

            def parse(records):  # columns in schema order, as the parquet path gives them
                parsed = (tf.io.parse_single_example if batch_size is None else tf.io.parse_example)(records, spec)
                return {c: parsed[c] for c in names}

            rows = rows.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return rows.prefetch(tf.data.AUTOTUNE)

    @staticmethod
    def _check_stream_args(batch_size, shuffle_buffer, cycle_length, block_length) -> None:
        for name, value, minimum in (("batch_size", batch_size, 1), ("shuffle_buffer", shuffle_buffer, 0),
                                     ("cycle_length", cycle_length, 1), ("block_length", block_length, 1)):
            if value is None and name in ("batch_size", "shuffle_buffer", "block_length"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")

    def _shuffle(self, rows, shuffle_buffer, seed, reshuffle_each_iteration):
        if shuffle_buffer:
            rows = rows.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
        return rows

    @staticmethod
    def _worker_files(files: list[ShardFile], input_context: tf.distribute.InputContext | None) -> list[ShardFile]:
        if input_context is None:
            return files
        return files[input_context.input_pipeline_id::input_context.num_input_pipelines]

    def dataset_for(
        self,
        split: str,
        domain: int,
        batch_size: int | None = None,
        shuffle_buffer: int | None = 0,
        seed: int | None = None,
        *,
        drop_remainder: bool = False,
        reshuffle_each_iteration: bool = False,
        cycle_length: int = 4,
        block_length: int | None = None,
        input_context: tf.distribute.InputContext | None = None,
    ) -> tf.data.Dataset:
        """The rows of one domain of `split`, streamed.

        Args:
            split: `"train"`, `"val"` or `"test"`.
            domain: domain id in `[0, n_domains)`.
            batch_size: rows per element; None gives single rows (scalars).
            shuffle_buffer: rows in the `tf.data` shuffle buffer; 0 or None: no
                shuffle (the rows in their order). A buffer of at least
                `num_rows(split, domain)` rows gives exactly the permutation that the
                same buffer and seed give over the in-memory rows.
            seed: the shuffle's seed (None: not reproducible).
            drop_remainder: drop a last, smaller batch.
            reshuffle_each_iteration: a new order on each pass over the dataset
                (default False: every pass the same order, as the in-memory trainer's
                buffer path, which reseeds each pass alike).
            cycle_length: files read ahead in parallel.
            block_length: None (default): each file's rows in one block, so the rows
                come in file order (the in-memory order); k: k rows from each of
                `cycle_length` open files in turn (mixes files before the buffer).
            input_context: a `tf.distribute.InputContext`: this input pipeline reads
                every `num_input_pipelines`-th file from its `input_pipeline_id` on.

        Returns:
            A `tf.data.Dataset` of `{column: tensor}` dicts, `(batch_size,)` each (the
            last batch may be shorter): the features int64, dense features and labels
            float32.
        """
        self._check_split(split)
        self._check_domain(domain)
        self._check_stream_args(batch_size, shuffle_buffer, cycle_length, block_length)
        files = self.files(split, domain, input_context)
        rows = self._raw_rows(files, cycle_length, block_length)
        rows = self._shuffle(rows, shuffle_buffer, seed, reshuffle_each_iteration)
        return self._finish(rows, batch_size, drop_remainder)

    def mixed_dataset(
        self,
        split: str,
        batch_size: int | None = None,
        shuffle_buffer: int | None = 0,
        seed: int | None = None,
        *,
        domains: Sequence[int] | None = None,
        mix: str = "in_order",
        drop_remainder: bool = False,
        reshuffle_each_iteration: bool = False,
        cycle_length: int = 4,
        block_length: int | None = None,
        input_context: tf.distribute.InputContext | None = None,
    ) -> tf.data.Dataset:
        """The rows of several domains of `split` in one stream (mixed batches).

        Args:
            split, batch_size, shuffle_buffer, seed, drop_remainder,
            reshuffle_each_iteration, cycle_length, block_length, input_context: as
                in `dataset_for`.
            domains: the domains, in this order (default all, `0..D-1`).
            mix: `"in_order"` (default): the domains' files one after the other into
                one shuffle buffer: with a buffer of at least the rows of those
                domains this is exactly the permutation of the in-memory
                concatenation (`MultiDomainDataset` rows of `domains`, in order) by
                the same buffer and seed; a smaller buffer mixes only neighbouring
                rows, mostly of one domain. `"sample"`: one stream per domain, each
                shuffled with `shuffle_buffer // len(domains)` rows (at least 1),
                drawn in blocks of 16 consecutive rows of one domain, in proportion
                to the domains' rows (`tf.data.Dataset.sample_from_datasets`,
                seeded), so batches mix domains whatever the buffer; every row still
                comes once per pass.
        """
        domains = self._split_domains(split, domains)
        if mix not in MIX_MODES:
            raise ValueError(f"`mix` must be one of {list(MIX_MODES)}. Received: mix={mix!r}")
        self._check_stream_args(batch_size, shuffle_buffer, cycle_length, block_length)
        if mix == "in_order":
            files = self._worker_files([f for d in domains for f in self.files(split, d)], input_context)
            rows = self._raw_rows(files, cycle_length, block_length)
            rows = self._shuffle(rows, shuffle_buffer, seed, reshuffle_each_iteration)
        else:
            streams, weights = [], []
            per_domain = max(1, int(shuffle_buffer) // len(domains)) if shuffle_buffer else 0
            for i, d in enumerate(domains):
                files = self.files(split, d, input_context)
                stream = self._raw_rows(files, cycle_length, block_length)
                stream = self._shuffle(stream, per_domain, None if seed is None else seed + i, reshuffle_each_iteration)
                streams.append(stream.batch(_SAMPLE_BLOCK))  # drawn in blocks: a draw per row is slow
                weights.append(float(sum(f.rows for f in files)))
            total = sum(weights)
            weights = [w / total if total else 1.0 / len(weights) for w in weights]
            rows = tf.data.Dataset.sample_from_datasets(streams, weights=weights, seed=seed,
                                                        stop_on_empty_dataset=False)
            return self._finish(rows, batch_size, drop_remainder, blocks=True)
        return self._finish(rows, batch_size, drop_remainder)

    # ------------------------------------------------------------ block streaming
    def _column_chunks(self, files: Sequence[ShardFile]):
        """The rows of `files` in file order as dicts of numpy columns, a block of up
        to `_READ_BATCH` rows (parquet: a record batch; tfrecord: parsed together) at
        a time; each file's checksum checked before its first read (`verify`)."""
        names = list(self.column_names)
        for file in files:
            if self.verify != "size":
                self._check_file(file)
            try:
                if self.file_format == "parquet":
                    yield from _parquet_batches(file.path, names)
                    continue
                records = self._finish(tf.data.TFRecordDataset(file.path, buffer_size=_CHUNK), _READ_BATCH, False)
                yield from records.as_numpy_iterator()
            except (tf.errors.OpError, OSError) as error:
                raise ShardError(f"Shard file {file.path} cannot be read: {type(error).__name__}: {error}") from None

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        domains: Sequence[int] | None = None,
        order: str | os.PathLike | np.ndarray | None = None,
        input_context: tf.distribute.InputContext | None = None,
    ) -> tf.data.Dataset:
        """Batches of the rows of `domains` of `split`, read block by block (fast).

        `dataset_for` and `mixed_dataset` move one row at a time through `tf.data`
        (shuffle buffer, batching); this reads blocks of rows into numpy and gathers
        each batch at once, a few times faster. The rows are those of `domains` (in
        this order) read in file order, numbered `0 .. n - 1`; batch `i` holds rows
        `order[i * batch_size : (i + 1) * batch_size]` (the last batch may be shorter).
        Memory holds the rows between the oldest row not yet batched and the newest
        one read: for the order of a `k`-row shuffle buffer (which emits row `t` within
        a few times `k` steps of reading it), a few times `k` rows, however many rows
        the split has.

        Args:
            split: `"train"`, `"val"` or `"test"`.
            batch_size: rows per batch.
            domains: the domains, in this order (default all).
            order: None: the rows in their order; a permutation of `0 .. n - 1`, as an
                int32 array or as the path of a file of `n` native int32 values
                (`numpy.ndarray.tofile`; read a block at a time). `n` is
                `sum(num_rows(split, d) for d in domains)`, or with `input_context`
                the rows of this pipeline's files.
            input_context: a `tf.distribute.InputContext`: read only this input
                pipeline's files (`files(split, d, input_context)` of each domain),
                and no other file is opened.

        Returns:
            A `tf.data.Dataset` of `{column: (batch_size,) tensor}` dicts (the columns
            and dtypes of `dataset_for`), prefetched.

        Raises:
            ValueError: `order` is not a permutation of the rows (found while reading).
        """
        blocks = functools.partial(self.batch_blocks, split, batch_size, domains=domains, order=order,
                                   input_context=input_context, read_ahead=0)
        blocks()  # checks the arguments now; each iteration of the dataset reads anew

        def grouped():
            # A block's whole batches as one `(k, batch_size)` array per column, its
            # short last batch (if any) as `(1, rest)`: `from_generator` costs about a
            # millisecond per element (the Python-to-tensor crossing), and `unbatch`
            # (C++) takes the batches apart again.
            b = int(batch_size)
            for block in blocks():
                n = len(next(iter(block.values())))
                whole = n - n % b
                if whole:
                    yield {c: v[:whole].reshape(-1, b) for c, v in block.items()}
                if whole < n:
                    yield {c: v[whole:][None] for c, v in block.items()}

        spec = {c: tf.TensorSpec([None, None], s.dtype) for c, s in self.element_spec(batched=True).items()}
        rows = tf.data.Dataset.from_generator(grouped, output_signature=spec).unbatch()
        # A thread of its own: on the shared inter-op pool the generator (Python) would
        # hold one of the threads the training step runs its row groups on.
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        return rows.prefetch(tf.data.AUTOTUNE).with_options(options)

    def batch_blocks(
        self,
        split: str,
        batch_size: int,
        *,
        domains: Sequence[int] | None = None,
        order: str | os.PathLike | np.ndarray | None = None,
        input_context: tf.distribute.InputContext | None = None,
        block_rows: int = _GROUP_ROWS,
        read_ahead: int = 2,
    ) -> Iterator[dict[str, np.ndarray]]:
        """The batches of `batches(...)` (same arguments), in blocks of consecutive
        batches, as numpy: a Python iterator of `{column: (rows,) array}` dicts, each
        the concatenation of `max(1, block_rows // batch_size)` whole batches (the
        last block ends with the split's last, possibly shorter, batch). Cutting a
        block into `batch_size`-row slices gives `batches`' batches in order.

        For a training loop that takes a block per call (the streamed pass of
        `mlora_tf.training.Trainer`): no `tf.data` hand-over per batch. With
        `read_ahead > 0` a thread of its own reads up to that many blocks ahead (while
        the caller trains, TensorFlow releases the GIL); an error of the reader is
        raised by the iterator. The arguments are checked on the call.
        """
        names, source = self._batch_source(split, batch_size, domains, order, input_context)
        per_block = max(1, int(block_rows) // int(batch_size))

        def blocks():
            block = []
            for batch in source():
                block.append(batch)
                if len(block) == per_block:
                    yield {c: np.concatenate([b[c] for b in block]) for c in names}
                    block = []
            if block:
                yield {c: np.concatenate([b[c] for b in block]) for c in names}

        return _read_ahead(blocks(), read_ahead) if read_ahead > 0 else blocks()

    def _batch_source(self, split, batch_size, domains, order, input_context):
        """`(column names, generator function of the batches as numpy dicts)` of
        `batches(...)`, its arguments checked."""
        domains = self._split_domains(split, domains)
        self._check_stream_args(batch_size, 0, 1, None)
        if batch_size is None:
            raise ValueError("`batch_size` must be an integer >= 1. Received: batch_size=None")
        files = [f for d in domains for f in self.files(split, d, input_context)]
        n = sum(f.rows for f in files)
        if isinstance(order, np.ndarray) and len(order) != n:
            raise ValueError(f"`order` must hold the {n} rows of {split} {domains}. Received: {len(order)} values")
        if order is not None and not isinstance(order, np.ndarray):
            order = os.fspath(order)
            if os.path.getsize(order) != 4 * n:
                raise ValueError(f"`order` file {order} must hold {n} int32 values. "
                                 f"Received: {os.path.getsize(order)} bytes")
        names = list(self.column_names)
        dtypes = {c: (np.int64 if c in self.features else np.float32) for c in names}
        batch_size = int(batch_size)

        def index_blocks():
            if isinstance(order, np.ndarray):
                for start in range(0, n, _ORDER_BLOCK):
                    yield np.asarray(order[start:start + _ORDER_BLOCK], np.int64)
            else:
                with open(order, "rb") as f:
                    while True:
                        block = np.fromfile(f, dtype=np.int32, count=_ORDER_BLOCK)
                        if not len(block):
                            return
                        yield block.astype(np.int64)

        def in_order():
            pending = {c: [] for c in names}
            held = 0
            for block in self._column_chunks(files):
                for c in names:
                    pending[c].append(np.asarray(block[c], dtypes[c]))
                held += len(block[names[0]])
                while held >= batch_size:
                    columns = {c: np.concatenate(pending[c]) for c in names}
                    yield {c: v[:batch_size] for c, v in columns.items()}
                    pending = {c: [v[batch_size:]] for c, v in columns.items()}
                    held -= batch_size
            if held:
                yield {c: np.concatenate(pending[c]) for c in names}

        def ordered():
            chunks = self._column_chunks(files)
            window = {c: np.zeros(0, dtypes[c]) for c in names}
            used = np.zeros(0, bool)  # which rows of the window were batched
            base = loaded = 0  # row number of window[0]; rows read so far
            carry = np.zeros(0, np.int64)
            blocks = index_blocks()
            while True:
                block = next(blocks, None)
                indices = carry if block is None else np.concatenate([carry, block])
                cut = len(indices) if block is None else len(indices) - len(indices) % batch_size
                carry = indices[cut:]
                for start in range(0, cut, batch_size):
                    rows = indices[start:start + batch_size]
                    need = int(rows.max()) + 1
                    if need > loaded:
                        parts = {c: [window[c]] for c in names}
                        while loaded < need:
                            chunk = next(chunks, None)
                            if chunk is None:
                                raise ValueError(f"`order` names row {need - 1}; {split} {domains} has {loaded} rows.")
                            for c in names:
                                parts[c].append(np.asarray(chunk[c], dtypes[c]))
                            loaded += len(chunk[names[0]])
                        window = {c: np.concatenate(parts[c]) for c in names}
                        used = np.concatenate([used, np.zeros(len(window[names[0]]) - len(used), bool)])
                    local = rows - base
                    if local.min() < 0 or used[local].any():
                        raise ValueError(f"`order` is not a permutation: a row comes twice. Received: row "
                                         f"{int(rows[local < 0][0] if local.min() < 0 else rows[used[local]][0])}")
                    used[local] = True
                    yield {c: window[c][local] for c in names}
                    if used[0]:  # drop the batched rows at the front of the window
                        first = int(np.argmin(used)) if not used.all() else len(used)
                        if first >= _ORDER_BLOCK or first == len(used):
                            window = {c: v[first:] for c, v in window.items()}
                            used, base = used[first:], base + first
                if block is None:
                    return

        return names, (ordered if order is not None else in_order)

    # ------------------------------------------------------------ whole reads
    def _extras_file(self) -> ShardFile:
        record = self.manifest["extras"]
        return self._file({"path": record["path"], "rows": 0, "bytes": record["bytes"], "sha256": record["sha256"]})

    def extras(self) -> dict[str, np.ndarray]:
        """The extra arrays (`prepared.get_extras` of the written dataset); `{}` if none.

        Read from `extras.npz` on each call (its checksum checked first); they can be as
        long as the splits (the csv loader's extra columns), so call it when needed.
        """
        if not self.manifest.get("extras"):
            return {}
        file = self._extras_file()
        if self.verify != "size":
            self._check_file(file)
        else:
            self._check_present(file)
        arrays = prepared_lib.load_extras(file.path, self.info.get("cache_key") or "")
        if arrays is None:
            raise ShardError(f"Extras file {file.path} is unreadable or of another dataset. Run mlora-prepare again.")
        return arrays

    def _read_file(self, file: ShardFile) -> dict[str, np.ndarray]:
        if self.verify != "size":
            self._check_file(file)
        try:
            if self.file_format == "parquet":
                table = pq.read_table(file.path, columns=list(self.column_names), use_threads=False)
                return {c: table.column(c).to_numpy() for c in self.column_names}
            parts = list(self._finish(tf.data.TFRecordDataset(file.path), _ENCODE_CHUNK, False).as_numpy_iterator())
        except (pa.ArrowException, tf.errors.OpError, OSError, KeyError) as error:
            raise ShardError(f"Shard file {file.path} cannot be read: {type(error).__name__}: {error}") from None
        return {c: np.concatenate([p[c] for p in parts]) for c in self.column_names}

    def to_memory(self) -> MultiDomainDataset:
        """Every row, read into the `MultiDomainDataset` that was written: the same rows
        in the same order, vocabularies, domain names, schema and info; its extras (if
        any) attached as `prepared.get_extras` returns them.

        Raises:
            ShardError / FileNotFoundError: a file is damaged or missing (naming it).
        """
        dtypes = {c: (np.int64 if c in self.features else np.float32) for c in self.column_names}
        splits = {}
        for split in SPLITS:
            parts = [self._read_file(f) for f in self.files(split)]
            splits[split] = {
                c: np.concatenate([p[c] for p in parts]).astype(dtypes[c], copy=False) if parts
                else np.zeros(0, dtypes[c]) for c in self.column_names
            }
            got = len(splits[split]["domain"])
            if got != self.num_rows(split):
                raise ShardError(f"{self.folder}: split '{split}' holds {got} rows, the manifest records "
                                 f"{self.num_rows(split)}. Received: {got}")
        dataset = MultiDomainDataset(
            name=self.name,
            n_domains=self.n_domains,
            vocab_sizes=dict(self.vocab_sizes),
            domain_names=list(self.domain_names),
            splits=splits,
            info=json.loads(json.dumps(self.info)),
            features=self.features,
            labels=self.labels,
            dense_features=self.dense_features,
        )
        if self.manifest.get("extras"):
            prepared_lib.attach_extras(dataset, self.extras(), self._extras_file().path)
        return dataset


def _parquet_batches(path: bytes, columns: Sequence[bytes]):
    """`tf.data.Dataset.from_generator` body: a parquet file as record batches of
    `columns` (numpy arrays), read row group by row group."""
    path = path.decode() if isinstance(path, bytes) else str(path)
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in columns]
    try:
        parquet = pq.ParquetFile(path)
        have = parquet.schema_arrow.names
        missing = [c for c in names if c not in have]
        if missing:
            raise ShardError(f"Shard file {path} lacks columns {missing}. Received: {have}")
        for batch in parquet.iter_batches(batch_size=_READ_BATCH, columns=names, use_threads=False):
            yield {c: batch.column(i).to_numpy() for i, c in enumerate(names)}
    except (pa.ArrowException, OSError) as error:
        raise ShardError(f"Shard file {path} cannot be read: {type(error).__name__}: {error}") from None


def open_shards(folder: str | os.PathLike, verify: str = "lazy") -> ShardedDataset:
    """Opens a shard folder written by `write_shards` / `mlora-prepare --format=...`.

    Reads `manifest.json` only and checks that every file it lists is there with its
    recorded size.

    Args:
        folder: the shard folder.
        verify: `"lazy"` (default): each file's sha256 is checked the first time it is
            read (a stream's first pass, `to_memory`); `"full"`: every file's sha256 is
            checked now; `"size"`: sizes only, no checksums.

    Raises:
        FileNotFoundError: no manifest (not a shard folder, or an unfinished write), or
            a listed file is missing (naming it).
        ShardError: a manifest of another format version, a file of another size
            (cut short), or (`verify="full"`) a checksum mismatch, naming the file.
    """
    return ShardedDataset(folder, verify=verify)


def load_shards(folder: str | os.PathLike, verify: str = "lazy") -> MultiDomainDataset:
    """`open_shards(folder, verify).to_memory()`."""
    return open_shards(folder, verify=verify).to_memory()
