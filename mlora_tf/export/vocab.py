"""The training vocabularies of a run (`vocab.npz`) and the out-of-vocabulary rule.

Serving (`mlora-export`) and new-domain training (`mlora-add-domain`) map raw ids the
same way:

* an id seen in the training split maps to itself (its own, trained, table row);
* every other id (never in the training split, outside `[0, vocab_size)`, negative)
  maps to the OOV row, index `vocab_size` of the feature: one extra row appended to
  each of the feature's tables (embedding and wide weight), holding the **mean of the
  rows of the ids seen in training**.

The domain feature is not mapped: a domain id must lie in `[0, n_domains)`. Every
other sparse feature of the run (a CSV's extra columns too) follows the rule.

`vocab.npz` lists the features in the dataset's order; a single-task run's model is
rebuilt from that list (`mlora_tf.export.weights.rebuild`).
"""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np

from mlora_tf.io import atomic_write_bytes

DOMAIN = "domain"


@dataclasses.dataclass(eq=False)
class Vocabulary:
    """What a run's `vocab.npz` holds.

    Attributes:
        train_ids: feature -> sorted unique int64 ids seen in the training split.
        vocab_sizes: feature -> size of the model's tables for it (max id + 1).
        domain_names: one name per domain, index = domain id.
    """

    train_ids: dict
    vocab_sizes: dict
    domain_names: list

    def __post_init__(self):
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
    def n_domains(self) -> int:
        return len(self.domain_names)

    def oov_index(self, feature: str) -> int:
        """The row unseen ids of `feature` are looked up in: `vocab_sizes[feature]`."""
        return self.vocab_sizes[feature]

    def map_ids(self, feature: str, ids) -> np.ndarray:
        """Numpy twin of the serving lookup: seen ids stay, others -> `oov_index`.

        Args:
            feature: an id feature (not the domain).
            ids: integer array of any shape.

        Returns:
            int64 array of the same shape.
        """
        if feature not in self.id_features:
            raise ValueError(f"`feature` must be one of {self.id_features}. Received: feature={feature!r}")
        ids = np.asarray(ids, dtype=np.int64)
        return np.where(np.isin(ids, self.train_ids[feature]), ids, self.oov_index(feature))

    def unseen_count(self, feature: str, ids) -> int:
        """How many of `ids` go to the OOV row."""
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
        return cls(train_ids=ids, vocab_sizes=sizes, domain_names=names)

    def save(self, path: str) -> None:
        """Write the same layout as `mlora_tf.export.run_folder.save_vocabularies`, atomically."""
        arrays = {f"train_ids_{f}": v for f, v in self.train_ids.items()}
        arrays.update({f"vocab_size_{f}": np.int64(v) for f, v in self.vocab_sizes.items()})
        arrays["domain_names"] = np.asarray(self.domain_names)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())
