"""In-memory multi-domain CTR datasets.

Every loader in `mlora_tf.data` ends in the same two containers:

- `InteractionTable`: the canonical, unsplit interaction table
  (`uid, pid, domain, label`) with its vocabulary sizes and domain names.
- `MultiDomainDataset`: the same rows after the per-domain train/val/test split,
  which is what models and trainers consume.

Column conventions (shared by both):

- `uid`, `pid`, `domain`: int64 arrays. Domain ids are contiguous, `0..D-1`.
- `label`: float32 array of 0.0 / 1.0.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
FEATURES: tuple[str, ...] = ("uid", "pid", "domain")
LABEL = "label"
COLUMNS: tuple[str, ...] = FEATURES + (LABEL,)

_INT_COLUMNS = FEATURES
_FLOAT_COLUMNS = (LABEL,)


def _as_column(name: str, values: object) -> np.ndarray:
    """Converts `values` to the canonical dtype of column `name` (1-D)."""
    dtype = np.float32 if name in _FLOAT_COLUMNS else np.int64
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"Column `{name}` must be 1-D. Received: shape={array.shape}"
        )
    if array.dtype != dtype:
        if name in _INT_COLUMNS and array.size and not np.issubdtype(
            array.dtype, np.integer
        ):
            raise ValueError(
                f"Column `{name}` must hold integers. Received: dtype={array.dtype}"
            )
        array = array.astype(dtype)
    return array


def _validate_columns(
    where: str,
    columns: Mapping[str, np.ndarray],
    n_domains: int,
    vocab_sizes: Mapping[str, int],
) -> dict[str, np.ndarray]:
    """Checks one set of columns and returns them in canonical dtypes."""
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"{where} lacks columns {missing}; expected {list(COLUMNS)}. "
            f"Received: {sorted(columns)}"
        )
    out = {name: _as_column(name, columns[name]) for name in COLUMNS}
    lengths = {name: len(array) for name, array in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{where}: columns have different lengths. Received: {lengths}"
        )
    if lengths["uid"] == 0:
        return out
    for name in FEATURES:
        low, high = int(out[name].min()), int(out[name].max())
        limit = vocab_sizes[name]
        if low < 0 or high >= limit:
            raise ValueError(
                f"{where}: `{name}` ids must lie in [0, {limit}) "
                f"(vocab_sizes['{name}']={limit}). Received: min={low}, max={high}"
            )
    labels = out[LABEL]
    if not np.all((labels == 0.0) | (labels == 1.0)):
        bad = labels[(labels != 0.0) & (labels != 1.0)][:5]
        raise ValueError(
            f"{where}: `label` must be 0.0 or 1.0. Received: {bad.tolist()}"
        )
    return out


@dataclasses.dataclass(eq=False)  # Arrays make field-wise == ambiguous.
class InteractionTable:
    """The canonical, unsplit interaction table a loader produces.

    Attributes:
        name: dataset name, e.g. `"ml-1m/gender"`.
        n_domains: number of domains `D`; domain ids are `0..D-1`.
        vocab_sizes: `{"uid": ..., "pid": ..., "domain": D}`; every id is
            smaller than its vocabulary size.
        domain_names: human-readable domain names, index = domain id.
        columns: `{"uid", "pid", "domain"}` int64 and `"label"` float32 arrays
            of equal length, in source order.
        info: JSON-serialisable provenance (raw file hashes, dropped rows, ...).
    """

    name: str
    n_domains: int
    vocab_sizes: dict[str, int]
    domain_names: list[str]
    columns: dict[str, np.ndarray]
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_header(self.name, self.n_domains, self.vocab_sizes, self.domain_names)
        self.columns = _validate_columns(
            f"Table '{self.name}'", self.columns, self.n_domains, self.vocab_sizes
        )

    def __len__(self) -> int:
        return len(self.columns[LABEL])


def _check_header(
    name: str,
    n_domains: int,
    vocab_sizes: Mapping[str, int],
    domain_names: Sequence[str],
) -> None:
    if not isinstance(n_domains, (int, np.integer)) or n_domains < 1:
        raise ValueError(
            f"Dataset '{name}': `n_domains` must be a positive integer. "
            f"Received: n_domains={n_domains!r}"
        )
    missing = [f for f in FEATURES if f not in vocab_sizes]
    if missing:
        raise ValueError(
            f"Dataset '{name}': `vocab_sizes` lacks {missing}. "
            f"Received: vocab_sizes={dict(vocab_sizes)}"
        )
    if int(vocab_sizes["domain"]) != int(n_domains):
        raise ValueError(
            f"Dataset '{name}': vocab_sizes['domain'] must equal n_domains={n_domains}. "
            f"Received: vocab_sizes['domain']={vocab_sizes['domain']}"
        )
    if len(domain_names) != n_domains:
        raise ValueError(
            f"Dataset '{name}': need one domain name per domain ({n_domains}). "
            f"Received: domain_names={list(domain_names)}"
        )


@dataclasses.dataclass(eq=False)  # Arrays make field-wise == ambiguous.
class MultiDomainDataset:
    """A multi-domain CTR dataset split into train / val / test.

    Rows of each split are grouped by domain (domain 0 first); inside a domain
    they are in the order the splitter produced.

    Attributes:
        name: dataset name, e.g. `"ml-1m/gender"` or `"synthetic"`.
        n_domains: number of domains `D`; domain ids are `0..D-1`.
        vocab_sizes: `{"uid": max uid + 1, "pid": max pid + 1, "domain": D}`.
        domain_names: human-readable names, index = domain id (e.g. `["F", "M"]`).
        splits: `"train"`, `"val"`, `"test"` -> `{"uid", "pid", "domain"}` int64
            arrays and a `"label"` float32 array.
        info: JSON-serialisable provenance: raw file hashes, cache key, number
            of dropped orphan ratings, split settings, ...
        features: names of the feature columns (the label is not a feature).

    Example:

    ```python
    ds = mlora_tf.data.load_dataset("synthetic", n_rows=6000)
    ds.num_rows("train", domain=0)   # rows of domain 0 in train
    ds.domain_slice("test", 1)       # {"uid", "pid", "domain", "label"} of domain 1
    print(ds.summary())
    ```
    """

    name: str
    n_domains: int
    vocab_sizes: dict[str, int]
    domain_names: list[str]
    splits: dict[str, dict[str, np.ndarray]]
    info: dict
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        _check_header(self.name, self.n_domains, self.vocab_sizes, self.domain_names)
        self.vocab_sizes = {k: int(v) for k, v in self.vocab_sizes.items()}
        self.domain_names = [str(n) for n in self.domain_names]
        self.features = tuple(self.features)
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(
                f"Dataset '{self.name}' lacks splits {missing}. "
                f"Received: {sorted(self.splits)}"
            )
        self.splits = {
            split: _validate_columns(
                f"Dataset '{self.name}', split '{split}'",
                self.splits[split],
                self.n_domains,
                self.vocab_sizes,
            )
            for split in SPLITS
        }
        # Rows are grouped by domain; remember where each domain starts.
        self._offsets: dict[str, np.ndarray] = {}
        for split, columns in self.splits.items():
            domain = columns["domain"]
            if domain.size and np.any(np.diff(domain) < 0):
                order = np.argsort(domain, kind="stable")
                columns = {k: v[order] for k, v in columns.items()}
                self.splits[split] = columns
                domain = columns["domain"]
            self._offsets[split] = np.searchsorted(
                domain, np.arange(self.n_domains + 1), side="left"
            )

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(
                f"Unknown split '{split}'; valid splits are {list(SPLITS)}. "
                f"Received: split={split!r}"
            )

    def _check_domain(self, domain: int) -> None:
        if not isinstance(domain, (int, np.integer)) or not 0 <= domain < self.n_domains:
            raise ValueError(
                f"Domain id must be an integer in [0, {self.n_domains}). "
                f"Received: domain={domain!r}"
            )

    def num_rows(self, split: str, domain: int | None = None) -> int:
        """Number of rows of `split`, of one domain if `domain` is given."""
        self._check_split(split)
        if domain is None:
            return int(len(self.splits[split][LABEL]))
        self._check_domain(domain)
        offsets = self._offsets[split]
        return int(offsets[domain + 1] - offsets[domain])

    def domain_slice(self, split: str, domain: int) -> dict[str, np.ndarray]:
        """The rows of one domain in `split` (views, not copies)."""
        self._check_split(split)
        self._check_domain(domain)
        offsets = self._offsets[split]
        start, stop = int(offsets[domain]), int(offsets[domain + 1])
        return {k: v[start:stop] for k, v in self.splits[split].items()}

    def sizes(self) -> dict[str, list[int]]:
        """`split` -> per-domain row counts."""
        return {
            split: [self.num_rows(split, d) for d in range(self.n_domains)]
            for split in SPLITS
        }

    def positive_rate(self, split: str) -> list[float]:
        """Per-domain share of label-1 rows in `split` (NaN for an empty domain)."""
        rates = []
        for d in range(self.n_domains):
            labels = self.domain_slice(split, d)[LABEL]
            rates.append(float(labels.mean()) if labels.size else float("nan"))
        return rates

    def summary(self) -> str:
        """A short human-readable table: per domain, split rows and positive rate."""
        sizes = self.sizes()
        width = max([len("domain")] + [len(n) for n in self.domain_names]) + 6
        header = (
            f"{'domain':<{width}}{'train':>10}{'val':>10}{'test':>10}{'pos rate':>10}"
        )
        lines = [
            f"{self.name}: {self.n_domains} domains, "
            f"{self.vocab_sizes['uid']} uid, {self.vocab_sizes['pid']} pid",
            header,
        ]
        for d, name in enumerate(self.domain_names):
            n_pos = sum(float(self.domain_slice(s, d)[LABEL].sum()) for s in SPLITS)
            n_all = sum(sizes[s][d] for s in SPLITS)
            rate = n_pos / n_all if n_all else float("nan")
            lines.append(
                f"{f'{d} {name}':<{width}}{sizes['train'][d]:>10}"
                f"{sizes['val'][d]:>10}{sizes['test'][d]:>10}{rate:>10.3f}"
            )
        total_pos = sum(float(self.splits[s][LABEL].sum()) for s in SPLITS)
        total = sum(self.num_rows(s) for s in SPLITS)
        lines.append(
            f"{'total':<{width}}{self.num_rows('train'):>10}"
            f"{self.num_rows('val'):>10}{self.num_rows('test'):>10}"
            f"{(total_pos / total if total else float('nan')):>10.3f}"
        )
        return "\n".join(lines)

    def metadata(self) -> dict:
        """Everything but the arrays, as a JSON-serialisable dict."""
        meta = {
            "name": self.name,
            "n_domains": int(self.n_domains),
            "vocab_sizes": dict(self.vocab_sizes),
            "domain_names": list(self.domain_names),
            "info": self.info,
            "features": list(self.features),
        }
        json.dumps(meta)  # Fails early on a non-serialisable info entry.
        return meta
