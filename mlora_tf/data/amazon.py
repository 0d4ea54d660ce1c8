"""Amazon review data (Amazon-6) loader, and the negative-sampling machinery Taobao shares.

Follows datasets.md §4 (Amazon) and §1.4–§1.6 (negative sampling, ρ, final shuffle).

**Raw files** (the 2018 release, https://nijianmo.github.io/amazon/index.html#complete-data,
per-category **5-core** files, kept gzipped; nothing is downloaded automatically): one
file per category, named after the category with `", "` and then spaces replaced by
`_`, plus `_5.json.gz`. Amazon-6 (`domain_split="category_6"`, the default) needs, in
domain order:

| domain | file |
|---|---|
| 0 | `Musical_Instruments_5.json.gz` |
| 1 | `Office_Products_5.json.gz` |
| 2 | `Patio_Lawn_and_Garden_5.json.gz` |
| 3 | `Prime_Pantry_5.json.gz` |
| 4 | `Toys_and_Games_5.json.gz` |
| 5 | `Video_Games_5.json.gz` |

Each is gzip-compressed UTF-8 with one JSON object per line (a UTF-8 BOM, CRLF line ends
and trailing whitespace are accepted and counted in one INFO log line per file); the keys `reviewerID`
(user), `asin` (item) and `overall` (rating, read and then ignored) are required, the
rest is not read. An unzipped `<name>_5.json` is accepted when the `.gz` is absent.
`domain_split="category_13"` takes the 13 categories of the original `config_13.json`.

**Full-data statistics** (paper Table 1, datasets.md §4.6): Amazon-6 has 6 domains,
445,789 users, 172,653 items, train 9,968,333, val 3,372,666, test 3,585,877 rows
(16,926,876 in all, 58.9 / 19.9 / 21.2 %). `AMAZON6_TABLE1` holds them.

**Preprocessing** (§4.3), in order:

1. Per category in domain order, every line gives (uid = reviewerID, pid = asin,
   score = overall). uid and pid are remapped through **global first-appearance id
   maps** (categories in domain order, then line order), contiguous from 0; a reviewer
   or item in several categories keeps one id. `vocab_sizes` = the map sizes.
2. Per domain k: ρ_k = round(uniform(0.2, 0.5), 2) from Python's `random` seeded with
   `seed` (123), one draw per domain in domain order (§1.5): 0.22, 0.23, 0.32, 0.23,
   0.47, 0.21 for Amazon-6 (`rho_sequence`).
3. Duplicates over **(uid, pid, score)** are dropped (first kept), so one pair with two
   different scores stays as two positive rows. Every remaining review is a positive
   (label 1), 1-star ones included.
4. All positives of the domain are split together with §1.3 (60/20/20, `seed`).
5. Negatives per user (§1.4): k = int(n_u / ρ) with float division (n_u = the user's
   positive rows); candidates = the domain's item pool (distinct pids in first-appearance
   order) minus the user's own positives there; if k ≥ #candidates all candidates are
   taken (pool order), else k are sampled without replacement. Each user's negatives are
   split on their own with §1.3.
6. Per split, the domain's rows (positives, then negatives user by user) are permuted
   with `numpy.random.RandomState(seed).permutation` (§1.6, scikit-learn `shuffle`).

**Deliberate differences** (the original's negatives cannot be reproduced: it samples in
a `multiprocessing.Pool` with unseeded or identically-forked generators, §1.4):

- Negatives come from **one seeded generator per domain**,
  `numpy.random.default_rng([seed, k])`, users in ascending uid order; the counts per
  user are exactly the original's, the sampled items are not.
- A user whose negative set has exactly one row (the original crashes in §1.3) gets that
  row in train; a domain with a single positive is an error naming it, as there is no
  valid split.

Statistics per domain (ρ, distinct users and items, positives, negatives) are in
`info["domains"]`.
"""

from __future__ import annotations

import array
import dataclasses
import gzip
import json
import os
import random
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from absl import logging

from mlora_tf.data import cache as cache_lib
from mlora_tf.data import prepared
from mlora_tf.data import split as split_lib
from mlora_tf.data.dataset import SPLITS, MultiDomainDataset

AMAZON6_CATEGORIES: tuple[str, ...] = (
    "Musical Instruments",
    "Office Products",
    "Patio Lawn and Garden",
    "Prime Pantry",
    "Toys and Games",
    "Video Games",
)
AMAZON13_CATEGORIES: tuple[str, ...] = (
    "Arts Crafts and Sewing",
    "Digital Music",
    "Gift Cards",
    "Industrial and Scientific",
    "Luxury Beauty",
    "Magazine Subscriptions",
    "Musical Instruments",
    "Office Products",
    "Patio Lawn and Garden",
    "Prime Pantry",
    "Software",
    "Toys and Games",
    "Video Games",
)
CATEGORY_SETS: dict[str, tuple[str, ...]] = {
    "category_6": AMAZON6_CATEGORIES,
    "category_13": AMAZON13_CATEGORIES,
}
DEFAULT_DOMAIN_SPLIT = "category_6"
RAW_URL = "http://deepyeti.ucsd.edu/jianmo/amazon/categoryFilesSmall/"
AMAZON6_TABLE1: dict[str, int] = {
    "domains": 6, "users": 445_789, "items": 172_653,
    "train": 9_968_333, "val": 3_372_666, "test": 3_585_877,
}
RHO_LOW, RHO_HIGH = 0.2, 0.5
# datasets.md §1.5: the sequence the original printed with seed 123.
RHO_TABLE_SEED_123: tuple[float, ...] = (
    0.22, 0.23, 0.32, 0.23, 0.47, 0.21, 0.36, 0.30, 0.46, 0.25,
    0.30, 0.30, 0.27, 0.20, 0.33, 0.23, 0.38, 0.22, 0.29, 0.33,
    0.47, 0.23, 0.24, 0.44, 0.21, 0.47, 0.37, 0.28, 0.45, 0.43,
)
NEGATIVE_SAMPLER = "numpy default_rng([seed, domain]) per domain, users ascending"
REQUIRED_KEYS = ("reviewerID", "asin", "overall")


class AmazonFilesNotFoundError(FileNotFoundError):
    """A category file is not in the raw folder."""


def category_file_name(category: str) -> str:
    """`"Patio, Lawn and Garden"` -> `"Patio_Lawn_and_Garden_5.json.gz"` (§4.2)."""
    return category.replace(", ", "_").replace(" ", "_") + "_5.json.gz"


def rho_sequence(n_domains: int, seed: int = split_lib.DEFAULT_SEED) -> list[float]:
    """ρ_k = round(uniform(0.2, 0.5), 2) for k < n_domains, Python `random` seeded `seed`."""
    rng = random.Random(seed)
    return [round(rng.uniform(RHO_LOW, RHO_HIGH), 2) for _ in range(n_domains)]


# --------------------------------------------------------------------------- #
# Negative sampling and the per-domain split (shared with Taobao).
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class SampledDomain:
    """One domain after negative sampling and splitting.

    Attributes:
        splits: split -> `{"uid", "pid", "label"}` plus any extra columns, in the final
            (shuffled) row order.
        stats: JSON-serialisable counts (ρ, distinct users/items, positives, ...).
    """

    splits: dict[str, dict[str, np.ndarray]]
    stats: dict


def negative_counts(n_positive_rows: np.ndarray, rho: float) -> np.ndarray:
    """k = int(n_u / ρ): float64 division truncated towards zero (7 / 0.28 -> 24)."""
    return np.trunc(np.asarray(n_positive_rows, dtype=np.int64) / float(rho)).astype(np.int64)


def sample_negatives(
    uid: np.ndarray,
    pid: np.ndarray,
    rho: float,
    rng: np.random.Generator,
    *,
    label: str = "negative sampling",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples every user's negatives of one domain (§1.4).

    Args:
        uid, pid: the domain's positive rows (after deduplication), in file order.
        rho: the domain's ratio ρ.
        rng: the domain's generator; users are served in ascending uid order.
        label: progress label.

    Returns:
        `(users, counts, neg_uid, neg_pid, pool)`: users ascending, the number of
        negatives each got, the negative rows (user by user; sampled ones in draw order,
        "take all" ones in pool order) and the item pool (first-appearance order).
    """
    uid = np.asarray(uid, dtype=np.int64)
    pid = np.asarray(pid, dtype=np.int64)
    _, first = np.unique(pid, return_index=True)
    pool = pid[np.sort(first)]
    pool_size = len(pool)
    # Position of every row's item in the pool.
    sorter = np.argsort(pool, kind="stable")
    position = sorter[np.searchsorted(pool, pid, sorter=sorter)]
    order = np.lexsort((position, uid))
    su, sp = uid[order], position[order]
    users, n_rows = np.unique(su, return_counts=True)
    # Distinct positive positions per user (sorted).
    keep = np.ones(len(su), dtype=bool)
    keep[1:] = (su[1:] != su[:-1]) | (sp[1:] != sp[:-1])
    distinct_user = su[keep]
    distinct_pos = sp[keep]
    d_start = np.searchsorted(distinct_user, users, side="left")
    d_end = np.searchsorted(distinct_user, users, side="right")
    n_distinct = d_end - d_start
    k = negative_counts(n_rows, rho)
    candidates = pool_size - n_distinct
    counts = np.minimum(k, candidates)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    neg_pid = np.empty(int(offsets[-1]), dtype=np.int64)
    all_positions = np.arange(pool_size, dtype=np.int64)
    n_users = len(users)
    step = max(1, n_users // 100)
    progress = prepared.progress
    progress(label, 0, n_users)
    for i in range(n_users):
        m = int(counts[i])
        if m > 0:
            excluded = distinct_pos[d_start[i]:d_end[i]]
            c = int(candidates[i])
            if int(k[i]) >= c:
                chosen = np.delete(all_positions, excluded)
            else:
                draw = rng.choice(c, size=m, replace=False)
                shifted = excluded - np.arange(len(excluded))
                chosen = draw + np.searchsorted(shifted, draw, side="right")
            neg_pid[offsets[i]:offsets[i + 1]] = pool[chosen]
        if (i + 1) % step == 0:
            progress(label, i + 1, n_users)
    progress(label, n_users, n_users)
    neg_uid = np.repeat(users, counts)
    return users, counts, neg_uid, neg_pid, pool


_PartitionCache = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _partition(m: int, seed: int, fractions: Sequence[float], cache: _PartitionCache,
               domain_label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§1.3 positions for a one-class set of m rows (depends only on m and the seed)."""
    parts = cache.get(m)
    if parts is None:
        train, val, test, _ = split_lib.split_indices(
            np.zeros(m, dtype=np.float32), seed=seed, fractions=fractions, domain_label=domain_label
        )
        parts = cache[m] = (train, val, test)
    return parts


def split_negatives(
    counts: np.ndarray, seed: int, fractions: Sequence[float], domain_label: str
) -> tuple[dict[str, np.ndarray], int]:
    """Splits each user's negatives on their own with §1.3 (vectorised by set size).

    Args:
        counts: negatives per user, in the order the rows are laid out.

    Returns:
        `(rows, singles)`: split -> row positions into the negative rows (user by user,
        each user's rows in scikit-learn's order) and the number of users with exactly
        one negative (put in train; the original crashes there).
    """
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])[:-1]
    cache: _PartitionCache = {}
    rows: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    keys: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    user_rank = np.arange(len(counts), dtype=np.int64)
    singles = counts == 1
    if singles.any():
        rows["train"].append(offsets[singles])
        keys["train"].append(user_rank[singles])
    for m in np.unique(counts[counts >= 2]):
        members = np.flatnonzero(counts == m)
        for name, positions in zip(SPLITS, _partition(int(m), seed, fractions, cache, domain_label)):
            if len(positions) == 0:
                continue
            rows[name].append((offsets[members][:, None] + positions[None, :]).ravel())
            keys[name].append(np.repeat(user_rank[members], len(positions)))
    out = {}
    for name in SPLITS:
        if not rows[name]:
            out[name] = np.zeros(0, dtype=np.int64)
            continue
        r = np.concatenate(rows[name])
        order = np.argsort(np.concatenate(keys[name]), kind="stable")
        out[name] = r[order]
    return out, int(singles.sum())


PositiveSplitter = Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def build_sampled_domain(
    uid: np.ndarray,
    pid: np.ndarray,
    *,
    domain: int,
    rho: float,
    seed: int,
    fractions: Sequence[float],
    domain_label: str,
    positive_splitter: PositiveSplitter | None = None,
    positive_extras: dict[str, np.ndarray] | None = None,
    progress_label: str | None = None,
) -> SampledDomain:
    """Positives + sampled negatives of one domain, split and shuffled (§1.3–§1.6).

    Args:
        uid, pid: the domain's positive rows after deduplication, in file order.
        domain: the domain id.
        rho: the domain's ratio ρ.
        seed: split seed; also seeds this domain's negative generator `[seed, domain]`
            and the final shuffle.
        fractions: `(train, val, test)`.
        domain_label: how to name the domain in messages.
        positive_splitter: n -> positions `(train, val, test)` of the positives; default
            one §1.3 call over all of them.
        positive_extras: extra per-positive columns (e.g. `reach_time`); negatives get 0.
        progress_label: label of the progress bar (default `negatives <domain>`).

    Raises:
        ValueError: a domain with fewer than 2 positive rows (naming it).
    """
    uid = np.asarray(uid, dtype=np.int64)
    pid = np.asarray(pid, dtype=np.int64)
    n_pos = len(uid)
    if n_pos < 2:
        raise ValueError(
            f"Domain {domain_label} has {n_pos} positive row(s) after deduplication; at least 2 "
            f"are needed to split it into train/val/test. Received: {n_pos} rows"
        )
    rng = np.random.default_rng([int(seed), int(domain)])
    users, counts, neg_uid, neg_pid, pool = sample_negatives(
        uid, pid, rho, rng, label=progress_label or f"negatives domain {domain}"
    )
    if positive_splitter is None:
        pos_parts = split_lib.split_indices(
            np.ones(n_pos, dtype=np.float32), seed=seed, fractions=fractions, domain_label=domain_label
        )[:3]
    else:
        pos_parts = positive_splitter(n_pos)
    neg_parts, singles = split_negatives(counts, seed, fractions, domain_label)
    if singles:
        logging.warning(
            "Domain %s: %d user(s) have exactly one negative; it goes to train (the original "
            "crashes here).", domain_label, singles,
        )
    extras = dict(positive_extras or {})
    splits: dict[str, dict[str, np.ndarray]] = {}
    for name, pos_rows in zip(SPLITS, pos_parts):
        neg_rows = neg_parts[name]
        n = len(pos_rows) + len(neg_rows)
        permutation = np.random.RandomState(seed).permutation(n)
        columns = {
            "uid": np.concatenate([uid[pos_rows], neg_uid[neg_rows]])[permutation],
            "pid": np.concatenate([pid[pos_rows], neg_pid[neg_rows]])[permutation],
            "label": np.concatenate(
                [np.ones(len(pos_rows), np.float32), np.zeros(len(neg_rows), np.float32)]
            )[permutation],
        }
        for key, values in extras.items():
            values = np.asarray(values)
            columns[key] = np.concatenate(
                [values[pos_rows], np.zeros(len(neg_rows), dtype=values.dtype)]
            )[permutation]
        splits[name] = columns
    stats = {
        "rho": float(rho),
        "n_uid": int(len(users)),
        "n_pid": int(len(pool)),
        "positives": int(n_pos),
        "negatives": int(counts.sum()),
        "users_with_one_negative": singles,
        "users_without_candidates": int(np.sum(counts == 0)),
        "sizes": {name: int(len(splits[name]["label"])) for name in SPLITS},
    }
    return SampledDomain(splits=splits, stats=stats)


def assemble(
    name: str,
    domains: Sequence[SampledDomain],
    *,
    vocab_sizes: dict[str, int],
    domain_names: Sequence[str],
    info: dict,
    extra_columns: Sequence[str] = (),
) -> tuple[MultiDomainDataset, dict[str, np.ndarray]]:
    """Concatenates per-domain splits into a dataset and its extra arrays."""
    splits = {}
    extras: dict[str, np.ndarray] = {}
    for split in SPLITS:
        parts = [d.splits[split] for d in domains]
        splits[split] = {
            "uid": np.concatenate([p["uid"] for p in parts]),
            "pid": np.concatenate([p["pid"] for p in parts]),
            "domain": np.concatenate(
                [np.full(len(p["label"]), k, dtype=np.int64) for k, p in enumerate(parts)]
            ),
            "label": np.concatenate([p["label"] for p in parts]),
        }
        for column in extra_columns:
            extras[f"{split}__{column}"] = np.concatenate([p[column] for p in parts])
    dataset = MultiDomainDataset(
        name=name,
        n_domains=len(domains),
        vocab_sizes=vocab_sizes,
        domain_names=list(domain_names),
        splits=splits,
        info=info,
    )
    return dataset, extras


# --------------------------------------------------------------------------- #
# Raw files.
# --------------------------------------------------------------------------- #


def resolve_files(categories: Sequence[str], data_dir: str | os.PathLike | None) -> dict[str, str]:
    """Category -> path of its 5-core file (`.json.gz`, else an unzipped `.json`).

    Raises:
        AmazonFilesNotFoundError: naming every missing file and the folder.
    """
    if data_dir is None:
        raise AmazonFilesNotFoundError(
            "Amazon needs data_dir: the folder holding the 5-core files "
            f"({', '.join(category_file_name(c) for c in categories)}). Received: data_dir=None"
        )
    root = os.fspath(data_dir)
    found, missing = {}, []
    for category in categories:
        gz = os.path.join(root, category_file_name(category))
        plain = gz[: -len(".gz")]
        if os.path.isfile(gz):
            found[category] = gz
        elif os.path.isfile(plain):
            found[category] = plain
        else:
            missing.append(os.path.basename(gz))
    if missing:
        raise AmazonFilesNotFoundError(
            f"Amazon raw files not found in {root}: {', '.join(missing)}. Download the 5-core files "
            f"from {RAW_URL}<file name> (https://nijianmo.github.io/amazon/) and put them, still "
            f"gzipped, in {root}/. Received: data_dir={root!r}"
        )
    return found


def read_reviews(
    path: str, uid_map: dict[str, int], pid_map: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parses one category file, extending the global id maps (first appearance).

    Returns:
        `(uid, pid, score)` arrays in line order.

    Raises:
        ValueError: empty or damaged file, or a malformed line (naming the file, the
            1-based line number and the value).
    """
    from mlora_tf.data.movielens import UTF8_BOM, TextFixes

    uid_out, pid_out, score_out = array.array("q"), array.array("q"), array.array("d")
    opener = gzip.open if path.endswith(".gz") else open
    fixes = TextFixes(path)
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                # Files as they come (JSON reads them as they are): counted, then logged.
                if lineno == 1 and raw.startswith(UTF8_BOM):
                    fixes.bom = True
                if raw.endswith(b"\r\n"):
                    fixes.crlf += 1
                body = raw.rstrip(b"\r\n")
                if body != body.rstrip(b" \t"):
                    fixes.trailing_space += 1
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    raise ValueError(
                        f"Malformed line {lineno} of {path}: not a JSON object ({error}). "
                        f"Received: {raw[:120]!r}"
                    ) from None
                if not isinstance(record, dict):
                    raise ValueError(
                        f"Malformed line {lineno} of {path}: expected a JSON object. "
                        f"Received: {raw[:120]!r}"
                    )
                try:
                    user, item, score = record["reviewerID"], record["asin"], record["overall"]
                except KeyError as error:
                    raise ValueError(
                        f"Malformed line {lineno} of {path}: lacks key {error.args[0]!r} (needs "
                        f"{list(REQUIRED_KEYS)}). Received: keys {sorted(record)}"
                    ) from None
                if not isinstance(user, str) or not user or not isinstance(item, str) or not item:
                    raise ValueError(
                        f"Malformed line {lineno} of {path}: reviewerID and asin must be non-empty "
                        f"strings. Received: reviewerID={user!r}, asin={item!r}"
                    )
                if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 5:
                    raise ValueError(
                        f"Malformed line {lineno} of {path}: overall must be a rating in 1..5. "
                        f"Received: overall={score!r}"
                    )
                uid_out.append(uid_map.setdefault(user, len(uid_map)))
                pid_out.append(pid_map.setdefault(item, len(pid_map)))
                score_out.append(float(score))
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"Could not read {path} after line {lineno}: {type(error).__name__}: {error} (a damaged "
            f"or truncated gzip file? download it again). Received: {path}"
        ) from None
    if not uid_out:
        raise ValueError(f"{path} holds no reviews. Received: an empty file")
    fixes.log()
    return (
        np.frombuffer(uid_out, dtype=np.int64).copy(),
        np.frombuffer(pid_out, dtype=np.int64).copy(),
        np.frombuffer(score_out, dtype=np.float64).copy(),
    )


def dedup_first(*columns: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of every distinct row, in row order."""
    frame = pd.DataFrame({str(i): c for i, c in enumerate(columns)})
    return np.flatnonzero(~frame.duplicated(keep="first").to_numpy())


def _check_domain_split(domain_split: str) -> tuple[str, ...]:
    categories = CATEGORY_SETS.get(domain_split)
    if categories is None:
        raise ValueError(
            f"Unknown Amazon domain split; valid ones are {sorted(CATEGORY_SETS)}. "
            f"Received: domain_split={domain_split!r}"
        )
    return categories


def load_amazon(
    *,
    data_dir: str | os.PathLike | None = None,
    domain_split: str = DEFAULT_DOMAIN_SPLIT,
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = split_lib.DEFAULT_FRACTIONS,
) -> MultiDomainDataset:
    """Loads, samples, splits and caches Amazon-6 (or -13); see the module docstring.

    Args:
        data_dir: the folder holding the `<Category>_5.json.gz` files.
        domain_split: `"category_6"` (default) or `"category_13"`.
        cache_dir: cache folder; None -> `$MLORA_TF_CACHE` or `~/.cache/mlora_tf`;
            False -> no caching.
        seed: split seed, ρ seed and negative-sampling seed (123 as the original).
        fractions: `(train, val, test)`, default `(0.6, 0.2, 0.2)`.
    """
    categories = _check_domain_split(domain_split)
    fractions = split_lib.check_fractions(fractions)
    seed = split_lib.check_seed(seed)
    paths = resolve_files(categories, data_dir)
    hashes = {}
    for i, (category, path) in enumerate(paths.items()):
        prepared.progress("hashing raw files", i, len(paths))
        hashes[os.path.basename(path)] = cache_lib.hash_file(path)
    prepared.progress("hashing raw files", len(paths), len(paths))
    rhos = rho_sequence(len(categories), seed)
    key = cache_lib.make_cache_key(
        loader="amazon",
        raw_file_hashes=hashes,
        domain_split=domain_split,
        fractions=fractions,
        seed=seed,
        extra={"categories": list(categories), "rho": rhos, "negatives": NEGATIVE_SAMPLER},
    )

    def build() -> MultiDomainDataset:
        uid_map: dict[str, int] = {}
        pid_map: dict[str, int] = {}
        raw = []
        for k, (category, path) in enumerate(paths.items()):
            logging.info("Amazon: reading %s (domain %d)", path, k)
            raw.append(read_reviews(path, uid_map, pid_map))
        vocab = {"uid": len(uid_map), "pid": len(pid_map), "domain": len(categories)}
        del uid_map, pid_map
        domains, per_domain = [], []
        names = [os.path.basename(p).split("_5.json")[0] for p in paths.values()]
        for k, (uid, pid, score) in enumerate(raw):
            keep = dedup_first(uid, pid, score)
            label = f"{k} ('{names[k]}', {paths[categories[k]]})"
            logging.info("Amazon domain %d %s: %d reviews, %d after dedup, rho %.2f",
                         k, names[k], len(uid), len(keep), rhos[k])
            sampled = build_sampled_domain(
                uid[keep], pid[keep], domain=k, rho=rhos[k], seed=seed, fractions=fractions,
                domain_label=label, progress_label=f"negatives {k} {names[k]}",
            )
            sampled.stats.update(domain_name=names[k], reviews=int(len(uid)),
                                 duplicates_dropped=int(len(uid) - len(keep)))
            domains.append(sampled)
            per_domain.append(sampled.stats)
            raw[k] = None  # type: ignore[call-overload]
        info = {
            "loader": "amazon",
            "domain_split": domain_split,
            "data_dir": os.path.abspath(os.fspath(data_dir)),
            "categories": list(categories),
            "rho": rhos,
            "domains": per_domain,
            "negative_sampler": NEGATIVE_SAMPLER,
            "label_rule": "every review is a positive (label 1); negatives sampled per user",
            "raw_files": {
                os.path.basename(p): {"sha256": hashes[os.path.basename(p)], "bytes": os.path.getsize(p)}
                for p in paths.values()
            },
            "split": {"method": "positives per domain, negatives per user (§1.3); §1.6 shuffle",
                      "fractions": list(fractions), "seed": seed},
            "schema_version": cache_lib.SCHEMA_VERSION,
            "notes": [
                "negatives are drawn from one seeded generator per domain (the original's "
                "cannot be reproduced); their counts per user are the original's",
            ],
        }
        dataset, _ = assemble(
            f"amazon/{domain_split}", domains, vocab_sizes=vocab, domain_names=names, info=info
        )
        return dataset

    dataset = cache_lib.get_or_build(
        build,
        cache_dir=cache_lib.resolve_cache_dir(cache_dir),
        loader="amazon",
        domain_split=domain_split,
        key=key,
    )
    dataset.info["data_dir"] = os.path.abspath(os.fspath(data_dir))
    return dataset
