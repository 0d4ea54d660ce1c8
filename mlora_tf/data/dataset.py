"""In-memory multi-domain CTR datasets.

Every loader in `mlora_tf.data` ends in the same two containers:

- `InteractionTable`: the canonical, unsplit interaction table
  (`uid, pid, domain, label`) with its vocabulary sizes and domain names.
- `MultiDomainDataset`: the same rows after the per-domain train/val/test split,
  which is what models and trainers consume.

Column conventions (shared by both):

- `uid`, `pid`, `domain`: int64 arrays. Domain ids are contiguous, `0..D-1`.
- `label`: float32 array of 0.0 / 1.0.

Both containers also take three optional schema fields, for multi-task data with
more features (M3oE's MovieLens variant, `mlora_tf.data.movielens_m3oe`):

- `features`: the sparse (id) columns, int64, each with a `vocab_sizes` entry.
  Default `("uid", "pid", "domain")`; these three are always required, and any
  further ones (e.g. `"gender"`, `"cate_id"`) follow them.
- `labels`: the label columns, float32 0.0 / 1.0, one per task. Default
  `("label",)`; a multi-task dataset uses e.g. `("click", "like")`.
  `MultiDomainDataset.select_task(name)` gives a single-task view whose `label`
  is that column, for the single-task models and trainer.
- `dense_features`: float32 numeric columns (finite), default `()`, e.g. `("age",)`.

With the defaults the containers and their validation are exactly those of a
single-task `uid, pid, domain, label` dataset, and a cache file holds the same arrays.
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


def _as_column(name: str, values: object, integer: bool) -> np.ndarray:
    """Converts `values` to int64 (`integer`) or float32, 1-D."""
    dtype = np.int64 if integer else np.float32
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"Column `{name}` must be 1-D. Received: shape={array.shape}"
        )
    if array.dtype != dtype:
        if integer and array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"Column `{name}` must hold integers. Received: dtype={array.dtype}"
            )
        array = array.astype(dtype)
    return array


def check_schema(
    name: str,
    features: Sequence[str],
    labels: Sequence[str],
    dense_features: Sequence[str],
    vocab_sizes: Mapping[str, int],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Validates the column schema of a dataset; returns it as three tuples.

    `features` must include `uid, pid, domain` and every feature needs a
    vocabulary size; `labels` is non-empty; no name may appear twice.
    """
    features, labels, dense_features = tuple(features), tuple(labels), tuple(dense_features)
    for group, values in (("features", features), ("labels", labels),
                          ("dense_features", dense_features)):
        if not all(isinstance(v, str) and v for v in values):
            raise ValueError(
                f"Dataset '{name}': `{group}` must be non-empty column names. "
                f"Received: {group}={list(values)}"
            )
    missing = [f for f in FEATURES if f not in features]
    if missing:
        raise ValueError(
            f"Dataset '{name}': `features` must include {list(FEATURES)}. "
            f"Received: features={list(features)}"
        )
    if not labels:
        raise ValueError(
            f"Dataset '{name}': `labels` needs at least one label column. Received: labels=()"
        )
    names = features + labels + dense_features
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Dataset '{name}': column names must be unique across features, labels and "
            f"dense_features. Received: duplicates {duplicates}"
        )
    no_vocab = [f for f in features if f not in vocab_sizes]
    if no_vocab:
        raise ValueError(
            f"Dataset '{name}': `vocab_sizes` lacks {no_vocab}. "
            f"Received: vocab_sizes={dict(vocab_sizes)}"
        )
    return features, labels, dense_features


def _validate_columns(
    where: str,
    columns: Mapping[str, np.ndarray],
    n_domains: int,
    vocab_sizes: Mapping[str, int],
    features: Sequence[str] = FEATURES,
    labels: Sequence[str] = (LABEL,),
    dense_features: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Checks one set of columns and returns them in canonical dtypes.

    Only the schema's columns are kept (features, dense features, labels, in that
    order); any other entry of `columns` is dropped.
    """
    expected = tuple(features) + tuple(dense_features) + tuple(labels)
    missing = [c for c in expected if c not in columns]
    if missing:
        raise ValueError(
            f"{where} lacks columns {missing}; expected {list(expected)}. "
            f"Received: {sorted(columns)}"
        )
    out = {name: _as_column(name, columns[name], name in features) for name in expected}
    lengths = {name: len(array) for name, array in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{where}: columns have different lengths. Received: {lengths}"
        )
    if lengths["uid"] == 0:
        return out
    for name in features:
        low, high = int(out[name].min()), int(out[name].max())
        limit = vocab_sizes[name]
        if low < 0 or high >= limit:
            raise ValueError(
                f"{where}: `{name}` ids must lie in [0, {limit}) "
                f"(vocab_sizes['{name}']={limit}). Received: min={low}, max={high}"
            )
    for name in dense_features:
        finite = np.isfinite(out[name])
        if not finite.all():
            raise ValueError(
                f"{where}: dense feature `{name}` must be finite. "
                f"Received: {out[name][~finite][:5].tolist()}"
            )
    for name in labels:
        values = out[name]
        if not np.all((values == 0.0) | (values == 1.0)):
            bad = values[(values != 0.0) & (values != 1.0)][:5]
            raise ValueError(
                f"{where}: `{name}` must be 0.0 or 1.0. Received: {bad.tolist()}"
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
            of equal length, in source order (more with a wider schema).
        info: JSON-serialisable provenance (raw file hashes, dropped rows, ...).
        features: sparse int64 columns (default `uid, pid, domain`).
        labels: float32 0/1 label columns (default `("label",)`).
        dense_features: float32 numeric columns (default none).
    """

    name: str
    n_domains: int
    vocab_sizes: dict[str, int]
    domain_names: list[str]
    columns: dict[str, np.ndarray]
    info: dict = dataclasses.field(default_factory=dict)
    features: tuple[str, ...] = FEATURES
    labels: tuple[str, ...] = (LABEL,)
    dense_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_header(self.name, self.n_domains, self.vocab_sizes, self.domain_names)
        self.features, self.labels, self.dense_features = check_schema(
            self.name, self.features, self.labels, self.dense_features, self.vocab_sizes
        )
        self.columns = _validate_columns(
            f"Table '{self.name}'", self.columns, self.n_domains, self.vocab_sizes,
            self.features, self.labels, self.dense_features,
        )

    @property
    def column_names(self) -> tuple[str, ...]:
        """Features, dense features, then labels."""
        return self.features + self.dense_features + self.labels

    def __len__(self) -> int:
        return len(self.columns["domain"])


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
            arrays and a `"label"` float32 array (with a wider schema: every
            column of `features`, `dense_features` and `labels`).
        info: JSON-serialisable provenance: raw file hashes, cache key, number
            of dropped orphan ratings, split settings, ...
        features: names of the sparse (int64 id) feature columns; they start
            with `uid, pid, domain`, each has a `vocab_sizes` entry.
        labels: names of the float32 0/1 label columns, one per task; default
            `("label",)`.
        dense_features: names of float32 numeric feature columns; default none.

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
    labels: tuple[str, ...] = (LABEL,)
    dense_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_header(self.name, self.n_domains, self.vocab_sizes, self.domain_names)
        self.vocab_sizes = {k: int(v) for k, v in self.vocab_sizes.items()}
        self.domain_names = [str(n) for n in self.domain_names]
        self.features, self.labels, self.dense_features = check_schema(
            self.name, self.features, self.labels, self.dense_features, self.vocab_sizes
        )
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
                self.features,
                self.labels,
                self.dense_features,
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

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column of a split: features, dense features, then labels."""
        return self.features + self.dense_features + self.labels

    @property
    def is_multitask(self) -> bool:
        """Whether the dataset has more than one label column."""
        return len(self.labels) > 1

    def _check_label(self, label: str | None) -> str:
        if label is None:
            return self.labels[0]
        if label not in self.labels:
            raise ValueError(
                f"Dataset '{self.name}' has no label column {label!r}; its labels are "
                f"{list(self.labels)}. Received: label={label!r}"
            )
        return label

    def select_task(self, label: str) -> "MultiDomainDataset":
        """A single-task view: column `label` becomes `"label"`, other labels dropped.

        The arrays are shared, not copied. Features and dense features are kept, so
        the single-task models (which read `uid, pid, domain`) and trainer can run on
        one task of a multi-task dataset (M3oE's "-MDL" setting, one model per task).
        """
        label = self._check_label(label)
        splits = {}
        for split, columns in self.splits.items():
            kept = {c: columns[c] for c in self.features + self.dense_features}
            kept[LABEL] = columns[label]
            splits[split] = kept
        info = dict(self.info, task=label, tasks=list(self.labels))
        return MultiDomainDataset(
            name=f"{self.name}[{label}]",
            n_domains=self.n_domains,
            vocab_sizes=dict(self.vocab_sizes),
            domain_names=list(self.domain_names),
            splits=splits,
            info=info,
            features=self.features,
            labels=(LABEL,),
            dense_features=self.dense_features,
        )

    def select_labels(self, labels: Sequence[str]) -> "MultiDomainDataset":
        """A view with the label columns `labels` only, in that order (names kept).

        M3oE's "-MDL" setting (one task, every domain) is `select_labels(["click"])`.
        """
        labels = tuple(labels)
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"`labels` must be distinct label names. Received: labels={list(labels)}")
        for label in labels:
            self._check_label(label)
        if labels == self.labels:
            return self
        splits = {
            split: {c: columns[c] for c in self.features + self.dense_features + labels}
            for split, columns in self.splits.items()
        }
        return dataclasses.replace(
            self, splits=splits, labels=labels, info=dict(self.info, tasks=list(labels))
        )

    def select_domains(self, domains: Sequence[int]) -> "MultiDomainDataset":
        """A copy with the rows of `domains` only, renumbered `0..len(domains)-1` in the
        given order; the other vocabularies are kept.

        M3oE's "-MTL" setting (every task, one domain) is `select_domains([d])`. (Its
        code filters the domain before encoding ids, so its other vocabularies hold that
        domain's values only; rows of ids that never occur are never trained either
        way.)
        """
        domains = tuple(domains)
        if not domains or len(set(domains)) != len(domains):
            raise ValueError(f"`domains` must be distinct domain ids. Received: domains={list(domains)}")
        for d in domains:
            self._check_domain(d)
        if domains == tuple(range(self.n_domains)):
            return self
        renumber = np.full(self.n_domains, -1, dtype=np.int64)
        renumber[list(domains)] = np.arange(len(domains))
        splits = {}
        for split, columns in self.splits.items():
            keep = renumber[columns["domain"]] >= 0
            kept = {c: v[keep] for c, v in columns.items()}
            kept["domain"] = renumber[kept["domain"]]
            splits[split] = kept
        return dataclasses.replace(
            self,
            name=f"{self.name}[domains={','.join(map(str, domains))}]",
            n_domains=len(domains),
            vocab_sizes=dict(self.vocab_sizes, domain=len(domains)),
            domain_names=[self.domain_names[d] for d in domains],
            splits=splits,
            info=dict(self.info, kept_domains=[self.domain_names[d] for d in domains]),
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
            return int(len(self.splits[split]["domain"]))
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

    def positive_rate(self, split: str, label: str | None = None) -> list[float]:
        """Per-domain share of label-1 rows in `split` (NaN for an empty domain).

        `label`: which label column (default the first, `"label"` for single-task).
        """
        label = self._check_label(label)
        rates = []
        for d in range(self.n_domains):
            labels = self.domain_slice(split, d)[label]
            rates.append(float(labels.mean()) if labels.size else float("nan"))
        return rates

    def summary(self) -> str:
        """A short human-readable table: per domain, split rows and positive rate(s).

        One positive-rate column per label: `pos rate` for a single-task dataset,
        `pos <label>` for each task of a multi-task one.
        """
        sizes = self.sizes()
        width = max([len("domain")] + [len(n) for n in self.domain_names]) + 6
        heads = ["pos rate"] if not self.is_multitask else [f"pos {l}" for l in self.labels]
        rate_width = max([10] + [len(h) + 2 for h in heads])
        header = f"{'domain':<{width}}{'train':>10}{'val':>10}{'test':>10}" + "".join(
            f"{h:>{rate_width}}" for h in heads
        )
        lines = [
            f"{self.name}: {self.n_domains} domains, "
            f"{self.vocab_sizes['uid']} uid, {self.vocab_sizes['pid']} pid",
            header,
        ]

        def rates(columns_of) -> str:
            parts = []
            for label in self.labels:
                arrays = [columns_of(s)[label] for s in SPLITS]
                n_all = sum(a.size for a in arrays)
                n_pos = sum(float(a.sum()) for a in arrays)
                parts.append(f"{(n_pos / n_all if n_all else float('nan')):>{rate_width}.3f}")
            return "".join(parts)

        for d, name in enumerate(self.domain_names):
            lines.append(
                f"{f'{d} {name}':<{width}}{sizes['train'][d]:>10}"
                f"{sizes['val'][d]:>10}{sizes['test'][d]:>10}"
                + rates(lambda s, d=d: self.domain_slice(s, d))
            )
        lines.append(
            f"{'total':<{width}}{self.num_rows('train'):>10}"
            f"{self.num_rows('val'):>10}{self.num_rows('test'):>10}"
            + rates(lambda s: self.splits[s])
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
            "labels": list(self.labels),
            "dense_features": list(self.dense_features),
        }
        json.dumps(meta)  # Fails early on a non-serialisable info entry.
        return meta
