"""Hashed id features: raw ids (integers or strings) to embedding rows without a vocabulary.

`--hash_buckets=uid:1000000,pid:200000` (`mlora-prepare --dataset=csv`, `mlora-train`)
maps each named feature's raw values into `N` buckets instead of through a vocabulary:

    bucket = Fingerprint64(text) mod N        (tf.strings.to_hash_bucket_fast)

where `text` is the value's UTF-8 text: a string as it is (a CSV field stripped of
surrounding spaces), an integer as its decimal text (`42` -> `"42"`, `-7` -> `"-7"`).
So the integer `42` and the string `"42"` share a bucket, while `"042"` (a zip code)
does not. The function is stable (FarmHash Fingerprint64, fixed by TensorFlow) and is
the same op at training (`hash_ids`, on numpy arrays) and in the exported graph
(`hash_tensor`), so serving a raw id gives its training row, for ids never seen in
training too. The embedding table of a hashed feature has `N` rows; there is no OOV
row: every value has a bucket (distinct ids may share one).

A hashed feature has a *kind*: `int` (the raw values are integers; the export's
signature takes int64) or `string` (tf.string). A CSV column is `int` when every value
is a canonical decimal integer (no sign `+`, no leading zero) that fits int64, else
`string`. The domain feature is never hashed: domains route rows to adapters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np

DOMAIN = "domain"
KINDS = ("int", "string")
HASH_FUNCTION = (
    "tf.strings.to_hash_bucket_fast: FarmHash Fingerprint64 of the value's UTF-8 text mod N "
    "(integers as their decimal text)"
)
_CHUNK = 1 << 20
_CANONICAL_INT = re.compile(r"0|-?[1-9]\d*")


@dataclasses.dataclass(frozen=True)
class HashedFeature:
    """How one feature is hashed.

    Attributes:
        buckets: `N`, the rows of the feature's tables (a positive integer).
        kind: `"int"` or `"string"`: the raw values' type (the export's input dtype).
    """

    buckets: int
    kind: str = "int"

    def __post_init__(self):
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, (int, np.integer)) or self.buckets < 1:
            raise ValueError(f"`buckets` must be a positive integer. Received: buckets={self.buckets!r}")
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={self.kind!r}")
        object.__setattr__(self, "buckets", int(self.buckets))

    def to_dict(self) -> dict:
        return {"buckets": self.buckets, "kind": self.kind}


def parse_hash_buckets(value, flag: str = "--hash_buckets") -> dict[str, int]:
    """`feature:N,...` (a string, a list of `feature:N` items, or a dict) -> `{feature: N}`.

    Raises:
        ValueError: an item without `:`, an `N` that is not a positive integer, or a
            feature named twice, naming the flag value.
    """
    if value is None or value == "" or value == []:
        return {}
    if isinstance(value, Mapping):
        items = [(str(k).strip(), v) for k, v in value.items()]
    else:
        parts = value.split(",") if isinstance(value, str) else list(value)
        items = []
        for part in (str(p).strip() for p in parts):
            if not part:
                continue
            name, sep, n = part.rpartition(":")
            if not sep or not name.strip():
                raise ValueError(f"{flag} takes feature:N items (e.g. uid:1000000,pid:200000). Received: {part!r} "
                                 f"in {flag}={value!r}")
            items.append((name.strip(), n.strip()))
    out: dict[str, int] = {}
    for name, n in items:
        try:
            buckets = int(n) if not isinstance(n, (bool, float)) else None
        except (TypeError, ValueError):
            buckets = None
        if buckets is None or buckets < 1:
            raise ValueError(f"{flag}: the number of buckets of `{name}` must be a positive integer. "
                             f"Received: {name}:{n} in {flag}={value!r}")
        if name in out:
            raise ValueError(f"{flag} names `{name}` twice. Received: {flag}={value!r}")
        out[name] = buckets
    return out


def check_features(buckets: Mapping[str, int], features, flag: str = "--hash_buckets", aliases=None) -> None:
    """Every feature of `buckets` is one of `features` (or an alias of one), never the domain.

    Raises:
        ValueError: naming the flag value and the features that may be hashed.
    """
    allowed = [f for f in features if f != DOMAIN]
    names = set(allowed) | set(aliases or ())
    shown = ", ".join(allowed) + (f" (or the columns {', '.join(aliases)})" if aliases else "")
    for name in buckets:
        if name == DOMAIN:
            raise ValueError(f"{flag} cannot hash the domain feature: domains route rows to their adapters and keep "
                             f"their vocabulary. Received: {flag}={_show(buckets)}")
        if name not in names:
            raise ValueError(f"{flag} names an unknown feature `{name}`; the features that may be hashed are "
                             f"{shown}. Received: {flag}={_show(buckets)}")


def _show(buckets: Mapping[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in buckets.items())


def hash_tensor(x, buckets: int):
    """The hashing op of the serving graph: `(batch_size,)` int or string -> int64 buckets."""
    import tensorflow as tf

    if x.dtype != tf.string:
        x = tf.strings.as_string(x)
    return tf.strings.to_hash_bucket_fast(x, int(buckets))


def hash_ids(values, buckets: int) -> np.ndarray:
    """Numpy twin of `hash_tensor`: raw ids (integers, or strings / objects) -> int64
    buckets in `[0, buckets)`, of the same shape."""
    import tensorflow as tf

    values = np.asarray(values)
    shape = values.shape
    flat = values.reshape(-1)
    if flat.dtype.kind in "iub":
        flat = flat.astype(np.int64)
    elif flat.dtype.kind not in "USO":
        raise ValueError(f"Hashed ids must be integers or strings. Received: dtype {values.dtype}")
    out = np.empty(flat.size, np.int64)
    with tf.device("/cpu:0"):
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start:start + _CHUNK]
            try:
                tensor = tf.constant(chunk)
            except (TypeError, ValueError):  # an object array of mixed values: each as its text
                tensor = tf.constant(chunk.astype(str))
            out[start:start + chunk.size] = hash_tensor(tensor, buckets).numpy()
    return out.reshape(shape)


def text_kind(text) -> str:
    """`"int"` when every value of `text` (strings) is a canonical decimal integer that
    fits int64, else `"string"`."""
    import pandas as pd

    series = pd.Series(text, dtype=object).astype(str)
    if series.empty or not series.iloc[:1000].str.fullmatch(_CANONICAL_INT).all():  # most text columns: here
        return "string"
    if not series.str.fullmatch(_CANONICAL_INT).all():
        return "string"
    lengths = series.str.lstrip("-").str.len()
    if (lengths > 19).any():
        return "string"
    big = series[lengths == 19]
    if len(big):
        try:
            [np.int64(int(v)) for v in big]
        except OverflowError:
            return "string"
    return "int"


def hash_text(text, buckets: int) -> tuple[np.ndarray, str]:
    """A column of raw values as text (a CSV column) -> `(int64 buckets, kind)`. An
    `int` column is hashed as integers: the same buckets its int64 serving input gives."""
    kind = text_kind(text)
    values = np.asarray(text, dtype=object)
    if kind == "int":
        values = values.astype(np.int64)
    return hash_ids(values, buckets), kind


def hash_dataset(dataset, buckets: Mapping[str, int], flag: str = "--hash_buckets"):
    """`dataset` (a `MultiDomainDataset` whose ids are the raw integer ids, as every
    registered loader but `csv` gives) with `buckets`' features hashed: their columns
    become buckets, their vocabulary sizes `N`, and `info["hash_buckets"]` records
    `{feature: {"buckets": N, "kind": "int"}}`."""
    from mlora_tf.data.dataset import MultiDomainDataset

    buckets = parse_hash_buckets(buckets, flag)
    if not buckets:
        return dataset
    check_features(buckets, dataset.features, flag)
    recorded = dict(dataset.info.get("hash_buckets") or {})
    again = sorted(set(buckets) & set(recorded))
    if again:
        raise ValueError(f"{flag}: `{again[0]}` of {dataset.name} is hashed already. Received: {flag}={_show(buckets)}")
    splits = {}
    for split, columns in dataset.splits.items():
        columns = dict(columns)
        for f, n in buckets.items():
            columns[f] = hash_ids(columns[f], n)
        splits[split] = columns
    for f, n in buckets.items():
        recorded[f] = HashedFeature(n, "int").to_dict()
    hashed = MultiDomainDataset(
        name=dataset.name,
        n_domains=dataset.n_domains,
        vocab_sizes={**dataset.vocab_sizes, **buckets},
        domain_names=list(dataset.domain_names),
        splits=splits,
        info={**dataset.info, "hash_buckets": recorded, "hash_function": HASH_FUNCTION},
        features=dataset.features,
        labels=dataset.labels,
        dense_features=dataset.dense_features,
    )
    if hasattr(dataset, "extras"):  # a loader's extra arrays (`prepared.get_extras`)
        hashed.extras = dataset.extras
    return hashed


def recorded_hashing(info: Mapping | None) -> dict[str, HashedFeature]:
    """`{feature: HashedFeature}` from a dataset's `info["hash_buckets"]` (empty if none)."""
    return {f: HashedFeature(int(v["buckets"]), str(v["kind"])) for f, v in ((info or {}).get("hash_buckets") or {}).items()}
