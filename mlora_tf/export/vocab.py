"""The training vocabularies of a run (`vocab.npz`) and the out-of-vocabulary rule.

Serving (`mlora-export`) and new-domain training (`mlora-add-domain`) map raw ids the
same way:

* an id seen in the training split maps to itself (its own, trained, table row);
* every other id (never in the training split, outside `[0, vocab_size)`, negative)
  maps to the OOV row, index `vocab_size` of the feature: one extra row appended to
  each of the feature's tables (embedding and wide weight), holding the **mean of the
  rows of the ids seen in training**.

The domain feature is not mapped: a domain id must lie in `[0, n_domains)`. Every
other sparse feature of the run (a CSV's extra columns too) follows the rule, except a
**hashed** feature (`--hash_buckets`, `mlora_tf.data.hashing`): its raw value (an
integer or a string) maps to its bucket, `Fingerprint64(text) mod N`, exactly as in
training; its tables have `N` rows and no OOV row (every value has a bucket).
`vocab.npz` records each hashed feature as `hash_buckets_<f>` and `hash_kind_<f>`.

`vocab.npz` lists the features in the dataset's order; a single-task run's model is
rebuilt from that list (`mlora_tf.export.weights.rebuild`).
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

from mlora_tf.data.hashing import HashedFeature, hash_ids
from mlora_tf.io import atomic_write_bytes

DOMAIN = "domain"


@dataclasses.dataclass(eq=False)
class Vocabulary:
    """What a run's `vocab.npz` holds.

    Attributes:
        train_ids: feature -> sorted unique int64 ids seen in the training split.
        vocab_sizes: feature -> size of the model's tables for it (max id + 1).
        domain_names: one name per domain, index = domain id.
        hashed: feature -> `HashedFeature` (buckets, kind) for the hashed features
            (`--hash_buckets`); empty for a run without hashing.
    """

    train_ids: dict
    vocab_sizes: dict
    domain_names: list
    hashed: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.hashed = {
            f: h if isinstance(h, HashedFeature) else HashedFeature(int(h["buckets"]), str(h["kind"]))
            for f, h in self.hashed.items()
        }
        for f, h in self.hashed.items():
            if f == DOMAIN or f not in self.vocab_sizes or int(self.vocab_sizes[f]) != h.buckets:
                raise ValueError(
                    f"A hashed feature must be an id feature whose vocabulary size is its bucket count. Received: "
                    f"{f} with {h.buckets} buckets, vocab_size {self.vocab_sizes.get(f)}"
                )
        self.train_ids = {f: np.unique(np.asarray(v, dtype=np.int64)) for f, v in self.train_ids.items()}
        self.vocab_sizes = {f: int(v) for f, v in self.vocab_sizes.items()}
        self.domain_names = [str(n) for n in self.domain_names]
        missing = sorted(set(self.vocab_sizes) - set(self.train_ids))
        if missing:
            raise ValueError(f"The vocabulary lacks the training ids of {missing}. Received: {sorted(self.train_ids)}")
        if DOMAIN in self.vocab_sizes and self.vocab_sizes[DOMAIN] != len(self.domain_names):
            raise ValueError(
                f"vocab_size_domain must equal the number of domain names ({len(self.domain_names)}). "
                f"Received: {self.vocab_sizes[DOMAIN]}"
            )
        for f, ids in self.train_ids.items():
            if ids.size and (ids[0] < 0 or ids[-1] >= self.vocab_sizes[f]):
                raise ValueError(
                    f"Training ids of `{f}` must lie in [0, {self.vocab_sizes[f]}). "
                    f"Received: min={ids[0]}, max={ids[-1]}"
                )

    @property
    def features(self) -> list[str]:
        """Every sparse feature of the run's dataset, in the dataset's order (`uid, pid,
        domain`, then any further ones, e.g. a CSV's extra columns): the order its
        single-task model's tables were built in, and its export's signature inputs."""
        return list(self.vocab_sizes)

    @property
    def id_features(self) -> list[str]:
        """The features mapped through the OOV rule (every feature but the domain)."""
        return [f for f in self.vocab_sizes if f != DOMAIN]

    @property
    def oov_features(self) -> list[str]:
        """The id features that get an OOV row at serving: every one but the hashed."""
        return [f for f in self.id_features if f not in self.hashed]

    @property
    def n_domains(self) -> int:
        return len(self.domain_names)

    def oov_index(self, feature: str) -> int:
        """The row unseen ids of `feature` are looked up in: `vocab_sizes[feature]`."""
        return self.vocab_sizes[feature]

    def map_ids(self, feature: str, ids) -> np.ndarray:
        """Numpy twin of the serving lookup: seen ids stay, others -> `oov_index`; a
        hashed feature's raw ids (integers or strings) -> their buckets.

        Args:
            feature: an id feature (not the domain).
            ids: integer array of any shape (strings too for a hashed feature).

        Returns:
            int64 array of the same shape.
        """
        if feature not in self.id_features:
            raise ValueError(f"`feature` must be one of {self.id_features}. Received: feature={feature!r}")
        if feature in self.hashed:
            return hash_ids(ids, self.hashed[feature].buckets)
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(np.isin(ids, self.train_ids[feature]), ids, self.oov_index(feature))

    def unseen_count(self, feature: str, ids) -> int:
        """How many of `ids` go to the OOV row (none of a hashed feature)."""
        if feature in self.hashed:
            return 0
        return int(np.sum(~np.isin(np.asarray(ids, dtype=np.int64), self.train_ids[feature])))

    # ---------------------------------------------------------------- files
    @classmethod
    def load(cls, path: str) -> "Vocabulary":
        """Read a `vocab.npz` written by `mlora_tf.export.run_folder.save_vocabularies` (or `save`)."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"No vocabulary file {path} (a run folder written by mlora-train has one).")
        with np.load(path) as data:
            sizes = {k[len("vocab_size_"):]: int(data[k]) for k in data.files if k.startswith("vocab_size_")}
            ids = {k[len("train_ids_"):]: data[k] for k in data.files if k.startswith("train_ids_")}
            if "domain_names" not in data.files:
                raise ValueError(f"{path} lacks `domain_names`. Received keys: {sorted(data.files)}")
            names = [str(n) for n in data["domain_names"]]
            hashed = {
                k[len("hash_buckets_"):]: HashedFeature(int(data[k]), str(data["hash_kind_" + k[len("hash_buckets_"):]]))
                for k in data.files if k.startswith("hash_buckets_")
            }
        return cls(train_ids=ids, vocab_sizes=sizes, domain_names=names, hashed=hashed)

    def save(self, path: str) -> None:
        """Write the same layout as `mlora_tf.export.run_folder.save_vocabularies`, atomically."""
        arrays = {f"train_ids_{f}": v for f, v in self.train_ids.items()}
        arrays.update({f"vocab_size_{f}": np.int64(v) for f, v in self.vocab_sizes.items()})
        arrays["domain_names"] = np.asarray(self.domain_names)
        arrays.update(hashing_arrays(self.hashed))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())


def hashing_arrays(hashed: dict) -> dict:
    """The `vocab.npz` entries of the hashed features: `hash_buckets_<f>` (int64) and
    `hash_kind_<f>` (`int` / `string`)."""
    arrays = {}
    for f, h in hashed.items():
        h = h if isinstance(h, HashedFeature) else HashedFeature(int(h["buckets"]), str(h["kind"]))
        arrays[f"hash_buckets_{f}"] = np.int64(h.buckets)
        arrays[f"hash_kind_{f}"] = np.asarray(h.kind)
    return arrays
