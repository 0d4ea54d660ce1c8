"""A shard folder as a dataset that the single-task trainer streams.

`StreamedDataset` wraps a `mlora_tf.data.shards.ShardedDataset` and offers what the run
needs of a `MultiDomainDataset` without holding any row: `name`, `n_domains`,
`domain_names`, `vocab_sizes`, `features`, `labels`, `dense_features`, `info`,
`extras`, `sizes()`, `num_rows()`, `summary()` (all from the manifest; `extras` from
`extras.npz`, read once when first asked). It has no `splits`: `Trainer` sees
`streamed = True` and reads its passes and evaluations from `shards.dataset_for` /
`shards.mixed_dataset` (see `mlora_tf.training.trainer`). `train_ids(features)` streams the train split once for the ids
`vocab.npz` records (`mlora_tf.export.run_folder.save_vocabularies`).

`mlora_tf.data.load_dataset(name, data_dir=SHARDS, stream=True)` (what `mlora-train`
calls) returns one; with `stream=False` a shard folder is read into memory
(`ShardedDataset.to_memory`).
"""

from __future__ import annotations

import os
import types

import numpy as np

from mlora_tf.data.dataset import SPLITS
from mlora_tf.data.shards import ShardedDataset, open_shards

_ID_BATCH = 1 << 16  # rows per batch when streaming the train ids


class StreamedDataset:
    """A shard folder, streamed: everything but the rows, from its manifest.

    Attributes:
        shards: the `ShardedDataset`.
        streamed: True (what `Trainer` checks).
        name, n_domains, domain_names, vocab_sizes, features, labels,
        dense_features, info: as in `MultiDomainDataset`.
    """

    streamed = True

    def __init__(self, shards: ShardedDataset):
        self.shards = shards
        self.name = shards.name
        self.n_domains = shards.n_domains
        self.domain_names = list(shards.domain_names)
        self.vocab_sizes = dict(shards.vocab_sizes)
        self.features = tuple(shards.features)
        self.labels = tuple(shards.labels)
        self.dense_features = tuple(shards.dense_features)
        self.info = dict(shards.info)
        self._extras = None

    @classmethod
    def open(cls, folder: str | os.PathLike, verify: str = "lazy") -> "StreamedDataset":
        return cls(open_shards(folder, verify=verify))

    @property
    def folder(self) -> str:
        return self.shards.folder

    @property
    def column_names(self) -> tuple[str, ...]:
        return self.shards.column_names

    @property
    def is_multitask(self) -> bool:
        return len(self.labels) > 1

    @property
    def extras(self) -> dict:
        """The extra arrays (`prepared.get_extras`), read on first use; `{}` if none."""
        if self._extras is None:
            self._extras = self.shards.extras()
        return self._extras

    def num_rows(self, split: str, domain: int | None = None) -> int:
        return self.shards.num_rows(split, domain)

    def sizes(self) -> dict[str, list[int]]:
        return self.shards.sizes()

    def train_ids(self, features=None) -> dict[str, np.ndarray]:
        """The distinct ids of each of `features` (default all) in the train split,
        sorted, int64: one streamed pass; memory holds the distinct ids only."""
        features = tuple(self.features if features is None else features)
        seen = {f: [] for f in features}
        for d in range(self.n_domains):
            if not self.num_rows("train", d):
                continue
            for batch in self.shards.dataset_for("train", d, batch_size=_ID_BATCH).as_numpy_iterator():
                for f in features:
                    seen[f].append(np.unique(batch[f]))
                    if len(seen[f]) > 16:
                        seen[f] = [np.unique(np.concatenate(seen[f]))]
        return {
            f: np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)
            for f, parts in seen.items()
        }

    def vocabulary_view(self):
        """What `mlora_tf.export.run_folder.save_vocabularies` reads of a dataset, with
        the train split's distinct ids (`train_ids`, one streamed pass) standing in
        for its rows: `features`, `vocab_sizes`, `domain_names`, `splits["train"]`."""
        return types.SimpleNamespace(
            name=self.name, features=self.features, vocab_sizes=dict(self.vocab_sizes),
            domain_names=list(self.domain_names), splits={"train": self.train_ids()},
        )

    def summary(self) -> str:
        """Rows per domain and split (from the manifest: no row is read)."""
        sizes = self.sizes()
        width = max([len("domain")] + [len(n) for n in self.domain_names]) + 6
        lines = [
            f"{self.name}: {self.n_domains} domains, {self.vocab_sizes['uid']} uid, {self.vocab_sizes['pid']} pid "
            f"(streamed from {self.folder}, {self.shards.file_format} shards)",
            f"{'domain':<{width}}{'train':>10}{'val':>10}{'test':>10}",
        ]
        for d, name in enumerate(self.domain_names):
            lines.append(f"{f'{d} {name}':<{width}}" + "".join(f"{sizes[s][d]:>10}" for s in SPLITS))
        lines.append(f"{'total':<{width}}" + "".join(f"{self.num_rows(s):>10}" for s in SPLITS))
        return "\n".join(lines)
