"""Taobao "Cloud Theme Click" loader (Taobao-10 / -20 / -30 and the time-based variant).

Follows datasets.md §3 and the shared machinery of §1.3–§1.6 (see `mlora_tf.data.amazon`,
whose negative sampling, per-user split and final shuffle this loader reuses).

**Raw files** (Tianchi dataset 9716, https://tianchi.aliyun.com/dataset/9716; unzip into
one folder, `data_dir`; nothing is downloaded automatically). Three are read:

| file | format |
|---|---|
| `theme_click_log.csv` | comma-separated with a header; the columns `user_id`, `theme_id`, `item_id` (integers) are read by name, plus `reach_time` (`YYYY-MM-DD HH:MM:SS`) for the time variant; other columns are ignored |
| `user_embedding.csv` | header, then `raw user_id,<D numbers separated by single spaces>` (D = 128 in the real data) |
| `item_embedding.csv` | the same for items |

Files as they come are accepted: a UTF-8 BOM, CRLF line ends, trailing whitespace and a
trailing empty field (a line ending in `,`) are read as if absent and counted in one INFO
log line per file; a line with more fields than the header is an error naming the line.

**Domain splits** (`domain_split=`): `"theme_10"` (default), `"theme_20"`, `"theme_30"`, any
`"theme_<N>"`, or `"theme_all"`; append `"_time"` for the time-based variant (§3.5).
`mlora-prepare --dataset=taobao --domains=20 [--time_split]` picks them.

**Full-data statistics** (paper Table 1, datasets.md §3.8; `TABLE1`):

| | D | users | items | train | val | test |
|---|---|---|---|---|---|---|
| Taobao-10 | 10 | 23,778 | 6,932 | 92,137 | 37,645 | 43,502 |
| Taobao-20 | 20 | 58,190 | 16,319 | 243,592 | 96,591 | 106,500 |
| Taobao-30 | 30 | 99,143 | 29,945 | 394,805 | 151,369 | 179,252 |

**Preprocessing** (§3.3–§3.4), in order:

1. Theme index = rank of first appearance of `theme_id` in the whole click log.
2. Keep the clicks whose `user_id` has a user embedding **and** whose `item_id` has an
   item embedding.
3. Domains = the first N themes by that index that still have rows (file order, not size).
4. uid / pid = global first-appearance ids over the selected themes (theme order, then
   row order); `vocab_sizes` = distinct users / items there, all of which have an
   embedding.
5. Per domain k (a counter; the name is `theme_<raw theme id>`): ρ_k from Python
   `random` seeded with `seed` (§1.5: 0.22, 0.23, 0.32, ...); exact duplicate (uid, pid)
   rows are dropped (repeated clicks count once); all positives are split with §1.3;
   each user gets min(int(n_u / ρ), #candidates) negatives from the domain's item pool,
   split on their own with §1.3; each split is then permuted (§1.6).

**Time variant** (`theme_<N>_time`, §3.5): duplicates are dropped over (uid, pid,
reach_time); a domain's positives are sorted by `reach_time` (stable: ties keep file
order; the original's sort left them in no fixed order), train = the first
⌊0.6 n⌋, and the rest go through one stratified 50/50 split (seed) into val and test
(test = ⌈m/2⌉; a single leftover row goes to test). Negatives as above, with
`reach_time` 0. `reach_time` (Unix seconds, 0 for negatives) is kept as an extra column,
`get_extras(ds)["<split>__reach_time"]`; it is not a model feature.

**Pretrained embeddings** (§3.6): the frozen 128-d user / item vectors the original's
Taobao configs load (`load_pretrain_emb`, `emb_trainable` false) are kept as extra arrays:
`pretrained_embeddings(ds)` returns `{"uid": (n_uid, D), "pid": (n_pid, D)}` float32, row
= the remapped id. They are stored in the cache's `.extras.npz` sidecar. The model side
(initialising and freezing the `uid` / `pid` tables from them) is not wired yet.

**Deliberate differences:** negatives from one seeded generator per domain, users
ascending (the original's cannot be reproduced, §1.4); a user with exactly one negative
gets it in train (the original crashes); asking for more themes than the log has is an
error (the original silently makes fewer domains). There is no re-run corruption (§3.7):
nothing is reloaded from JSON id maps.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from absl import logging
from sklearn.model_selection import train_test_split

from mlora_tf.data import amazon
from mlora_tf.data import cache as cache_lib
from mlora_tf.data import prepared
from mlora_tf.data import split as split_lib
from mlora_tf.data.csv_loader import split_header
from mlora_tf.data.dataset import MultiDomainDataset
from mlora_tf.data.movielens import normalised_file

CLICK_LOG = "theme_click_log.csv"
USER_EMBEDDING = "user_embedding.csv"
ITEM_EMBEDDING = "item_embedding.csv"
RAW_FILES: tuple[str, ...] = (CLICK_LOG, USER_EMBEDDING, ITEM_EMBEDDING)
RAW_URL = "https://tianchi.aliyun.com/dataset/9716"
DEFAULT_DOMAIN_SPLIT = "theme_10"
TABLE1: dict[str, dict[str, int]] = {
    "theme_10": {"domains": 10, "users": 23_778, "items": 6_932,
                 "train": 92_137, "val": 37_645, "test": 43_502},
    "theme_20": {"domains": 20, "users": 58_190, "items": 16_319,
                 "train": 243_592, "val": 96_591, "test": 106_500},
    "theme_30": {"domains": 30, "users": 99_143, "items": 29_945,
                 "train": 394_805, "val": 151_369, "test": 179_252},
}
_SPLIT_RE = re.compile(r"theme_(\d+|all)(_time)?")
_CHUNK_ROWS = 200_000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class TaobaoFilesNotFoundError(FileNotFoundError):
    """A Taobao raw file is not in the raw folder."""


def parse_domain_split(domain_split: str) -> tuple[int | None, bool]:
    """`"theme_20_time"` -> `(20, True)`; `"theme_all"` -> `(None, False)`."""
    match = _SPLIT_RE.fullmatch(str(domain_split))
    if not match or match.group(1) == "0":
        raise ValueError(
            "Unknown Taobao domain split; valid ones are 'theme_<N>' (N >= 1, e.g. theme_10, "
            f"theme_20, theme_30) or 'theme_all', optionally followed by '_time'. "
            f"Received: domain_split={domain_split!r}"
        )
    count = None if match.group(1) == "all" else int(match.group(1))
    return count, bool(match.group(2))


def resolve_files(data_dir: str | os.PathLike | None) -> dict[str, str]:
    """File name -> path of the three raw files; error naming the missing ones."""
    if data_dir is None:
        raise TaobaoFilesNotFoundError(
            f"Taobao needs data_dir: the folder holding {', '.join(RAW_FILES)}. Received: data_dir=None"
        )
    root = os.fspath(data_dir)
    missing = [f for f in RAW_FILES if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise TaobaoFilesNotFoundError(
            f"Taobao raw files not found in {root}: {', '.join(missing)}. Download the Cloud Theme "
            f"Click dataset ({RAW_URL}) and unzip it into {root}/. Received: data_dir={root!r}"
        )
    return {f: os.path.join(root, f) for f in RAW_FILES}


def _bad_row_error(path: str, column: str, values: pd.Series, bad: np.ndarray, expected: str) -> ValueError:
    row = int(np.argmax(bad))
    return ValueError(
        f"Malformed line {row + 2} of {path}: column {column} must be {expected}. "
        f"Received: {values.iloc[row]!r}"
    )


def _int_column(path: str, frame: pd.DataFrame, column: str) -> np.ndarray:
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    bad = (numeric.isna() | (numeric != numeric.round()) | (numeric < 0)).to_numpy()
    if bad.any():
        raise _bad_row_error(path, column, values, bad, "a non-negative integer id")
    return numeric.to_numpy(dtype=np.int64)


def _read_header(path: str) -> list[str]:
    """The names of line 1 (a BOM and a trailing delimiter accepted)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return split_header(next(csv.reader(f), []))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"Could not read the header of {path}: {error}. Received: {path}") from None


def read_click_log(path: str, with_time: bool) -> dict[str, np.ndarray]:
    """Reads the columns of `theme_click_log.csv` the loader uses, validated.

    Raises:
        ValueError: empty file, missing columns, a non-integer id or a bad `reach_time`
            (naming the file, the line and the value).
    """
    needed = ["user_id", "theme_id", "item_id"] + (["reach_time"] if with_time else [])
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; expected a header with {needed}. Received: an empty file")
    header = _read_header(path)
    missing = [c for c in needed if c not in header]
    if missing:
        hint = " (is the file comma-separated?)" if len(header) == 1 else ""
        raise ValueError(
            f"{path} lacks the column(s) {missing}{hint}; its header line 1 has {header}. "
            f"Received: {header}"
        )
    duplicated = sorted({c for c in header if header.count(c) > 1 or re.fullmatch(r".+\.\d+", str(c))})
    if duplicated:
        raise ValueError(f"Line 1 of {path} repeats column name(s) {duplicated}. Received: {header}")
    try:
        with normalised_file(path, ",", max_fields=len(header)) as (f, _):
            frame = pd.read_csv(f, usecols=needed, dtype=str, skip_blank_lines=False, keep_default_na=False,
                                encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"Could not parse {path}: {error}. Received: {path}") from None
    if len(frame) == 0:
        raise ValueError(f"{path} holds a header but no clicks. Received: {header}")
    out = {c: _int_column(path, frame, c) for c in ("user_id", "theme_id", "item_id")}
    if with_time:
        times = pd.to_datetime(frame["reach_time"], format=TIME_FORMAT, errors="coerce")
        bad = times.isna().to_numpy()
        if bad.any():
            raise _bad_row_error(path, "reach_time", frame["reach_time"], bad, f"a time like '2018-10-21 07:09:42'")
        out["reach_time"] = (times.astype("int64") // 10**9).to_numpy(dtype=np.int64)
    return out


def read_embedding_ids(path: str) -> np.ndarray:
    """The raw ids (first column) of an embedding file, validated and distinct."""
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; expected a header and 'id,<numbers>' lines. Received: an empty file")
    try:
        with normalised_file(path, ",", max_fields=len(_read_header(path))) as (f, _):
            frame = pd.read_csv(f, usecols=[0], dtype=str, keep_default_na=False, skip_blank_lines=False,
                                encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"Could not parse {path}: {error}. Received: {path}") from None
    ids = _int_column(path, frame, frame.columns[0])
    values, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = int(np.argmax(counts > 1))
        rows = np.flatnonzero(ids == values[dup])[:2] + 2
        raise ValueError(
            f"{path}: id {int(values[dup])} has more than one embedding (lines {rows.tolist()}). "
            f"Received: id={int(values[dup])}"
        )
    return ids


def read_embeddings(path: str, wanted: np.ndarray, label: str) -> np.ndarray:
    """Vectors of the raw ids `wanted` (row i = `wanted[i]`), float32 `(len(wanted), D)`.

    The file is read in chunks; only the wanted rows are parsed. Every vector must have
    the same number D of space-separated numbers.
    """
    position = pd.Index(wanted)
    out: np.ndarray | None = None
    found = np.zeros(len(wanted), dtype=bool)
    dim = None
    line0 = 2
    with normalised_file(path, ",", log=False) as (f, _), pd.read_csv(
            f, dtype=str, keep_default_na=False, chunksize=_CHUNK_ROWS, skip_blank_lines=False,
            encoding="utf-8") as reader:
        for chunk in reader:
            if chunk.shape[1] != 2:
                raise ValueError(
                    f"{path} must have exactly two columns (id, vector). Received: {chunk.shape[1]} "
                    f"columns {list(chunk.columns)}"
                )
            ids = pd.to_numeric(chunk.iloc[:, 0], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
            where = position.get_indexer(ids)
            hit = np.flatnonzero(where >= 0)
            if hit.size:
                texts = chunk.iloc[hit, 1].to_numpy(dtype=object)
                lengths = np.fromiter((t.count(" ") + 1 if t else 0 for t in texts), dtype=np.int64, count=len(texts))
                if dim is None:
                    dim = int(lengths[0])
                    out = np.zeros((len(wanted), dim), dtype=np.float32)
                bad = lengths != dim
                if bad.any():
                    i = int(np.argmax(bad))
                    raise ValueError(
                        f"Malformed line {line0 + int(hit[i])} of {path}: the vector must have {dim} numbers "
                        f"separated by single spaces (as the first one used). Received: {int(lengths[i])} numbers"
                    )
                try:
                    values = np.array(" ".join(texts).split(" "), dtype=np.float32).reshape(len(texts), dim)
                except ValueError:
                    for i, text in enumerate(texts):
                        try:
                            np.array(text.split(" "), dtype=np.float32)
                        except ValueError:
                            raise ValueError(
                                f"Malformed line {line0 + int(hit[i])} of {path}: the vector holds a value "
                                f"that is not a number. Received: {text[:80]!r}"
                            ) from None
                    raise
                assert out is not None
                out[where[hit]] = values
                found[where[hit]] = True
            line0 += len(chunk)
            prepared.progress(label, int(found.sum()), len(wanted))
    if out is None or not found.all():
        raise ValueError(f"{path}: {int((~found).sum())} wanted ids have no vector. Received: {path}")
    return out


def _time_splitter(times: np.ndarray, seed: int, fractions: Sequence[float]):
    train_f, val_f, test_f = fractions

    def split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(times, kind="stable")
        n_train = int(np.floor(train_f * n))
        rest = order[n_train:]
        if len(rest) <= 1:
            return order[:n_train], rest[:0], rest
        val, test = train_test_split(
            rest, test_size=test_f / (val_f + test_f), random_state=seed,
            stratify=np.ones(len(rest)),
        )
        return order[:n_train], np.asarray(val), np.asarray(test)

    return split


def load_taobao(
    *,
    data_dir: str | os.PathLike | None = None,
    domain_split: str = DEFAULT_DOMAIN_SPLIT,
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = split_lib.DEFAULT_FRACTIONS,
) -> MultiDomainDataset:
    """Loads, samples, splits and caches Taobao-N; see the module docstring.

    Args:
        data_dir: the folder holding the three raw files.
        domain_split: `"theme_<N>"` / `"theme_all"`, optionally `+ "_time"`.
        cache_dir: cache folder; None -> `$MLORA_TF_CACHE` or `~/.cache/mlora_tf`;
            False -> no caching.
        seed: split, ρ and negative-sampling seed (123 as the original).
        fractions: `(train, val, test)`, default `(0.6, 0.2, 0.2)`.
    """
    n_themes, with_time = parse_domain_split(domain_split)
    fractions = split_lib.check_fractions(fractions)
    seed = split_lib.check_seed(seed)
    paths = resolve_files(data_dir)
    hashes = {}
    for i, (name, path) in enumerate(paths.items()):
        prepared.progress("hashing raw files", i, len(paths))
        hashes[name] = cache_lib.hash_file(path)
    prepared.progress("hashing raw files", len(paths), len(paths))
    key = cache_lib.make_cache_key(
        loader="taobao",
        raw_file_hashes=hashes,
        domain_split=domain_split,
        fractions=fractions,
        seed=seed,
        extra={"negatives": amazon.NEGATIVE_SAMPLER, "embeddings": True},
    )

    def build() -> tuple[MultiDomainDataset, dict[str, np.ndarray]]:
        clicks = read_click_log(paths[CLICK_LOG], with_time)
        theme_index, theme_values = pd.factorize(clicks["theme_id"], sort=False)
        logging.info("Taobao: %d clicks, %d themes", len(theme_index), len(theme_values))
        user_ids = read_embedding_ids(paths[USER_EMBEDDING])
        item_ids = read_embedding_ids(paths[ITEM_EMBEDDING])
        keep = np.isin(clicks["user_id"], user_ids) & np.isin(clicks["item_id"], item_ids)
        dropped = int(len(keep) - keep.sum())
        themes_left = np.unique(theme_index[keep])
        if n_themes is not None and len(themes_left) < n_themes:
            raise ValueError(
                f"{paths[CLICK_LOG]} has {len(themes_left)} theme(s) with clicks of users and items "
                f"that have embeddings; {n_themes} were asked for. Received: domain_split={domain_split!r}"
            )
        selected = themes_left if n_themes is None else themes_left[:n_themes]
        rows = np.flatnonzero(keep & np.isin(theme_index, selected))
        rows = rows[np.argsort(theme_index[rows], kind="stable")]  # theme order, then file order
        uid_all, raw_users = pd.factorize(clicks["user_id"][rows], sort=False)
        pid_all, raw_items = pd.factorize(clicks["item_id"][rows], sort=False)
        theme_of_row = theme_index[rows]
        times_all = clicks["reach_time"][rows] if with_time else None
        del clicks
        vocab = {"uid": len(raw_users), "pid": len(raw_items), "domain": len(selected)}
        user_emb = read_embeddings(paths[USER_EMBEDDING], np.asarray(raw_users), "user embeddings")
        item_emb = read_embeddings(paths[ITEM_EMBEDDING], np.asarray(raw_items), "item embeddings")
        if user_emb.shape[1] != item_emb.shape[1]:
            logging.warning("Taobao: user vectors have %d numbers, item vectors %d.",
                            user_emb.shape[1], item_emb.shape[1])
        rhos = amazon.rho_sequence(len(selected), seed)
        bounds = np.searchsorted(theme_of_row, selected)
        bounds = np.append(bounds, len(rows))
        domains, per_domain, names = [], [], []
        for k, theme in enumerate(selected):
            lo, hi = bounds[k], bounds[k + 1]
            uid, pid = uid_all[lo:hi], pid_all[lo:hi]
            name = f"theme_{int(theme_values[theme])}"
            names.append(name)
            label = f"{k} ('{name}', {paths[CLICK_LOG]})"
            if with_time:
                times = np.asarray(times_all[lo:hi])
                first = amazon.dedup_first(uid, pid, times)
                times = times[first]
                splitter = _time_splitter(times, seed, fractions)
                extras_in = {"reach_time": times}
            else:
                first = amazon.dedup_first(uid, pid)
                splitter, extras_in = None, None
            sampled = amazon.build_sampled_domain(
                uid[first], pid[first], domain=k, rho=rhos[k], seed=seed, fractions=fractions,
                domain_label=label, positive_splitter=splitter, positive_extras=extras_in,
                progress_label=f"negatives {k} {name}",
            )
            sampled.stats.update(domain_name=name, clicks=int(hi - lo),
                                 duplicates_dropped=int(hi - lo - len(first)))
            domains.append(sampled)
            per_domain.append(sampled.stats)
        info = {
            "loader": "taobao",
            "domain_split": domain_split,
            "time_split": with_time,
            "data_dir": os.path.abspath(os.fspath(data_dir)),
            "n_themes_in_log": int(len(theme_values)),
            "selected_themes": [int(theme_values[t]) for t in selected],
            "clicks_without_embedding": dropped,
            "rho": rhos,
            "domains": per_domain,
            "embedding_dim": {"uid": int(user_emb.shape[1]), "pid": int(item_emb.shape[1])},
            "negative_sampler": amazon.NEGATIVE_SAMPLER,
            "raw_files": {
                name: {"sha256": hashes[name], "bytes": os.path.getsize(path)} for name, path in paths.items()
            },
            "split": {
                "method": ("positives by reach_time (train = earliest), " if with_time else "positives ")
                + "per domain, negatives per user (§1.3); §1.6 shuffle",
                "fractions": list(fractions), "seed": seed,
            },
            "schema_version": cache_lib.SCHEMA_VERSION,
            "notes": [
                "negatives are drawn from one seeded generator per domain (the original's cannot be "
                "reproduced); their counts per user are the original's",
                "the pretrained user/item embeddings are stored (pretrained_embeddings(ds)) but the "
                "models do not load them yet",
            ],
        }
        dataset, extras = amazon.assemble(
            f"taobao/{domain_split}", domains, vocab_sizes=vocab, domain_names=names, info=info,
            extra_columns=("reach_time",) if with_time else (),
        )
        extras.update(user_emb=user_emb, item_emb=item_emb)
        return dataset, extras

    dataset = prepared.get_or_build_with_extras(
        build,
        cache_dir=cache_lib.resolve_cache_dir(cache_dir),
        loader="taobao",
        domain_split=domain_split,
        key=key,
    )
    dataset.info["data_dir"] = os.path.abspath(os.fspath(data_dir))
    return dataset


def pretrained_embeddings(dataset: MultiDomainDataset) -> dict[str, np.ndarray]:
    """`{"uid": (n_uid, D), "pid": (n_pid, D)}` float32 vectors of a Taobao dataset.

    Row i is the vector of remapped id i (§3.6: the original puts it in row int(key)).

    Raises:
        ValueError: `dataset` has no pretrained embeddings (not Taobao).
    """
    extras = prepared.get_extras(dataset)
    if "user_emb" not in extras or "item_emb" not in extras:
        raise ValueError(
            f"Dataset '{dataset.name}' has no pretrained embeddings (only Taobao has). "
            f"Received: extras {sorted(extras)}"
        )
    return {"uid": extras["user_emb"], "pid": extras["item_emb"]}
