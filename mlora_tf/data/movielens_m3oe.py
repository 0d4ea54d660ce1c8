"""M3oE's MovieLens setup: three age domains, two tasks, user and movie features.

Registered as `ml-1m-m3oe` and `ml-100k-m3oe` (domain split `"age3"`, the only
one). The pipeline follows the released M3oE code (m3oe.md §1, datasets.md §7),
rebuilt from the raw GroupLens files instead of its pre-joined CSV:

- **Files.** ML-1M: `users.dat`, `ratings.dat`, `movies.dat` (`::`-separated;
  `movies.dat` is ISO-8859-1). ML-100K: `u.user`, `u.data`, `u.item` (`|`, Latin-1),
  optional `u.occupation` and `u.genre`.
- **Join and row order.** Ratings are inner-joined with the movies, then with the
  users; ratings of unknown movies or users are dropped (counted in `info`). The
  rows are put in the order the original CSV has (m3oe.md §1.1: a pandas < 2.2
  merge): movies ranked by first appearance in the ratings file; users ordered by
  the first appearance of their rows in that movie-grouped table (for ML-1M: by the
  smallest rank among the movies they rated, then UserID); each user's rows
  contiguous, by movie rank. For the real ML-1M this reproduces `ml-1m.csv`'s
  order, so the positional split below gives the original's rows.
- **Domains** (`domain`, the reference's `domain_indicator`) from the raw age, before
  scaling: ML-1M codes {1, 18} -> 0, {25} -> 1, {35, 45, 50, 56} -> 2; ML-100K ages in
  years < 25 -> 0, 25..34 -> 1, >= 35 -> 2 (the same brackets). Domain ids are fixed
  0..2 (the original label-encodes them, which is the same when all three occur).
- **Labels** (tasks, in this order): `click` = rating > 3, `like` = rating > 4
  (rating 5), float32 0/1.
- **Sparse features**, label-encoded to `0..n-1` in sorted order of the raw values over
  all kept rows (vocabulary = number of distinct values, before the split; no OOV
  row): `uid` (UserID; the reference's `user_id`), `pid` (MovieID, `movie_id`),
  `gender` (F -> 0, M -> 1), `occupation` (ML-1M code; ML-100K name), `zip` (as text),
  `cate_id` (the first `|`-separated genre in `movies.dat`, alphabetical; ML-100K:
  the first genre flagged in `u.item`, `"unknown"` if none), and `domain`.
- **Dense feature** `age`: the raw age (ML-1M code, ML-100K years) min-max scaled over
  all kept rows, `(a - min) / (max - min)` (0 if all equal); for ML-1M
  `(code - 1) / 55`.
- **Split**: positional, no shuffle: train = rows `[0, floor(0.8 n))`, val =
  `[floor(0.8 n), floor(0.9 n))`, test = the rest (`fractions`, exact decimal
  arithmetic). Over the user-grouped order this is (nearly) user-disjoint. For
  the full ML-1M: 800,167 / 100,021 / 100,021. The split does not depend on the
  seed. Inside each split the dataset groups rows by domain (the container's
  convention), keeping their order within a domain.
- **`split`** (not in the original; for measuring how the split moves the numbers):
  `"positional"` (default, the above), `"random"` (the rows in a random order
  seeded by `seed`, then the same cut sizes: users shared between the splits, as
  Scenario-Wise-Rec's port; each split keeps its rows in merge order) or
  `"users_shuffled"` (the user blocks of the merge order put in a random order
  seeded by `seed`, each user's rows contiguous and in their own order, then the
  positional cut: still user-disjoint apart from the two boundary users, but other
  users land in val/test). Vocabularies and scaling are computed before the split
  either way, so they do not depend on it.
- **`keep_domain`** (the original's `--domain 0|1|2`): keep one domain before
  encoding, scaling and splitting; it becomes domain 0 of a 1-domain dataset.

The dataset has `features = (uid, pid, domain, gender, occupation, zip, cate_id)`,
`dense_features = ("age",)` and `labels = ("click", "like")`;
`dataset.select_task("click")` gives a single-task view for the single-task models.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
from absl import logging

from mlora_tf.data import cache as cache_lib
from mlora_tf.data import movielens
from mlora_tf.data import split as split_lib
from mlora_tf.data.dataset import MultiDomainDataset

DOMAIN_SPLIT = "age3"
DOMAIN_NAMES: tuple[str, ...] = ("age<25", "age25-34", "age35+")
ML1M_AGE_DOMAIN: dict[int, int] = {1: 0, 18: 0, 25: 1, 35: 2, 45: 2, 50: 2, 56: 2}
ML100K_AGE_BOUNDS: tuple[int, ...] = (25, 35)
TASKS: tuple[str, ...] = ("click", "like")
FEATURES: tuple[str, ...] = ("uid", "pid", "domain", "gender", "occupation", "zip", "cate_id")
DENSE_FEATURES: tuple[str, ...] = ("age",)
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
SPLIT_METHODS: tuple[str, ...] = ("positional", "random", "users_shuffled")
DEFAULT_SPLIT = "positional"
OPTIONS: frozenset[str] = frozenset({"fractions", "keep_domain", "split"})
FORMAT_VERSION = 1
"""Bump when the prepared arrays of these loaders change meaning (part of the cache key)."""

REFERENCE_NAMES: dict[str, str] = {
    "uid": "user_id",
    "pid": "movie_id",
    "domain": "domain_indicator",
    "gender": "gender",
    "occupation": "occupation",
    "zip": "zip",
    "cate_id": "cate_id",
    "age": "age",
}
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


# --------------------------------------------------------------------------- #
# Raw files beyond those of `mlora_tf.data.movielens`.
# --------------------------------------------------------------------------- #


def _lines(path: str):
    """`(lineno, line)` of the non-blank lines of a Latin-1 file (line ends stripped)."""
    with open(path, encoding="latin-1", newline="") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _movie_id(path: str, lineno: int, line: str, text: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit() or int(stripped) > movielens.MAX_ID:
        raise ValueError(
            f"Malformed line {lineno} of {path}: field MovieID must be a non-negative integer. "
            f"Received: {text!r} (line {lineno}: {line!r})"
        )
    return int(stripped)


def _check_movies(path: str, ids: list[int], linenos: list[int]) -> tuple[np.ndarray, int]:
    if not ids:
        raise ValueError(f"{path} is empty: it holds no movie lines. Received: an empty file")
    array = np.array(ids, dtype=np.int64)
    values, first, counts = np.unique(array, return_index=True, return_counts=True)
    if np.any(counts > 1):
        duplicate = int(values[np.argmax(counts > 1)])
        lines = [n for i, n in zip(ids, linenos) if i == duplicate]
        raise ValueError(
            f"Malformed movies file {path}: MovieID {duplicate} appears on more than one line "
            f"(lines {lines}). Received: MovieID={duplicate}"
        )
    return array, len(ids)


def read_ml1m_movies(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Parses ML-1M `movies.dat` (`MovieID::Title::Genres`, ISO-8859-1).

    Returns:
        `(movie_ids, first_genre)`: int64 ids and the first `|`-separated genre of
        each, as an object array of str, in file order.

    Raises:
        ValueError: naming the file, line and value, for a line without three
            `::`-separated fields, a non-integer MovieID, an empty genre list or a
            repeated MovieID.
    """
    ids, genres, linenos = [], [], []
    for lineno, line in _lines(path):
        parts = line.split("::")
        if len(parts) < 3:
            raise ValueError(
                f"Malformed line {lineno} of {path}: expected 3 fields separated by '::' "
                f"(MovieID::Title::Genres), found {len(parts)}. Received: {line!r} "
                f"(expected lines like '1::Toy Story (1995)::Animation|Children\\'s|Comedy')"
            )
        # A title could contain '::'; the id is the first field and the genres the last.
        first = parts[-1].split("|")[0].strip()
        if not first:
            raise ValueError(
                f"Malformed line {lineno} of {path}: field Genres must name at least one genre. "
                f"Received: {parts[-1]!r} (line {lineno}: {line!r})"
            )
        ids.append(_movie_id(path, lineno, line, parts[0]))
        genres.append(first)
        linenos.append(lineno)
    array, _ = _check_movies(path, ids, linenos)
    return array, np.array(genres, dtype=object)


def read_ml100k_genres(path: str) -> list[str]:
    """Parses ML-100K `u.genre` (`name|index`); returns the names by index."""
    entries: dict[int, str] = {}
    for lineno, line in _lines(path):
        name, _, index = line.rpartition("|")
        if not name or not index.strip().isdigit():
            raise ValueError(
                f"Malformed line {lineno} of {path}: expected 'name|index'. Received: {line!r}"
            )
        entries[int(index)] = name
    if sorted(entries) != list(range(len(entries))) or not entries:
        raise ValueError(
            f"{path} must number its genres 0..n-1. Received: indices {sorted(entries)}"
        )
    return [entries[i] for i in range(len(entries))]


def read_ml100k_items(path: str, genres: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parses ML-100K `u.item` (`id|title|release|video release|URL|<genre flags>`).

    Returns:
        `(movie_ids, first_genre)`: the first genre whose flag is 1 (`genres[0]`,
        "unknown", if none is set).
    """
    n_flags = len(genres)
    ids, first_genres, linenos = [], [], []
    for lineno, line in _lines(path):
        parts = line.split("|")
        if len(parts) < 1 + n_flags + 1:
            raise ValueError(
                f"Malformed line {lineno} of {path}: expected at least {n_flags + 2} fields "
                f"separated by '|' (id, title, ..., {n_flags} genre flags), found {len(parts)}. "
                f"Received: {line!r}"
            )
        flags = [p.strip() for p in parts[-n_flags:]]
        if any(f not in ("0", "1") for f in flags):
            raise ValueError(
                f"Malformed line {lineno} of {path}: the last {n_flags} fields must be genre "
                f"flags 0 or 1. Received: {flags} (line {lineno}: {line!r})"
            )
        ids.append(_movie_id(path, lineno, line, parts[0]))
        first_genres.append(genres[flags.index("1")] if "1" in flags else genres[0])
        linenos.append(lineno)
    array, _ = _check_movies(path, ids, linenos)
    return array, np.array(first_genres, dtype=object)


def _keep_zip(fmt: movielens.FileFormat) -> movielens.FileFormat:
    """`fmt` with its `Zip-code` field kept (the MLoRA loaders drop it)."""
    fields = tuple(
        dataclasses.replace(f, keep=True) if f.name == "Zip-code" else f for f in fmt.fields
    )
    return dataclasses.replace(fmt, fields=fields)


@dataclasses.dataclass
class _Users:
    uid: np.ndarray
    gender: np.ndarray
    age: np.ndarray
    occupation: np.ndarray
    zip: np.ndarray


def _read_ml1m_users(paths: dict[str, str]) -> _Users:
    path = paths["users.dat"]
    fmt = _keep_zip(movielens.ML1M_USERS)
    columns = movielens.parse_raw_file(path, fmt)
    movielens._check_unique_users(columns["UserID"], path, fmt)
    return _Users(
        uid=columns["UserID"],
        gender=columns["Gender"],
        age=columns["Age"],
        occupation=columns["Occupation"],
        zip=columns["Zip-code"].astype(str).astype(object),
    )


def _read_ml100k_users(paths: dict[str, str]) -> _Users:
    occupations = (
        movielens.read_occupation_list(paths["u.occupation"])
        if "u.occupation" in paths
        else list(movielens.ML100K_OCCUPATIONS)
    )
    path = paths["u.user"]
    fmt = _keep_zip(movielens.ml100k_users_format(occupations))
    columns = movielens.parse_raw_file(path, fmt)
    movielens._check_unique_users(columns["UserID"], path, fmt)
    return _Users(
        uid=columns["UserID"],
        gender=columns["Gender"],
        age=columns["Age"],
        occupation=columns["Occupation"],  # names; encoded in sorted (text) order
        zip=columns["Zip-code"].astype(str).astype(object),
    )


def _ml1m_movies(paths: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    return read_ml1m_movies(paths["movies.dat"])


def _ml100k_movies(paths: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    genres = read_ml100k_genres(paths["u.genre"]) if "u.genre" in paths else list(ML100K_GENRES)
    return read_ml100k_items(paths["u.item"], genres)


def _ml1m_domains(age: np.ndarray) -> np.ndarray:
    lookup = np.full(max(ML1M_AGE_DOMAIN) + 1, -1, dtype=np.int64)
    for code, domain in ML1M_AGE_DOMAIN.items():
        lookup[code] = domain
    return lookup[age]


def _ml100k_domains(age: np.ndarray) -> np.ndarray:
    return np.digitize(age, ML100K_AGE_BOUNDS).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class M3oEVariant:
    """One MovieLens release in M3oE's setup."""

    name: str
    base: movielens.MovieLensVariant
    movies_file: str
    read_users: Callable[[dict[str, str]], _Users]
    read_movies: Callable[[dict[str, str]], tuple[np.ndarray, np.ndarray]]
    age_domains: Callable[[np.ndarray], np.ndarray]
    age_note: str


ML1M = M3oEVariant(
    name="ml-1m-m3oe",
    base=dataclasses.replace(movielens.ML1M, required=("users.dat", "ratings.dat", "movies.dat")),
    movies_file="movies.dat",
    read_users=_read_ml1m_users,
    read_movies=_ml1m_movies,
    age_domains=_ml1m_domains,
    age_note="ML-1M age codes {1, 18} -> 0, {25} -> 1, {35, 45, 50, 56} -> 2",
)
ML100K = M3oEVariant(
    name="ml-100k-m3oe",
    base=dataclasses.replace(
        movielens.ML100K,
        required=("u.user", "u.data", "u.item"),
        optional=("u.occupation", "u.genre"),
    ),
    movies_file="u.item",
    read_users=_read_ml100k_users,
    read_movies=_ml100k_movies,
    age_domains=_ml100k_domains,
    age_note="ML-100K ages in years < 25 -> 0, 25..34 -> 1, >= 35 -> 2",
)
VARIANTS: dict[str, M3oEVariant] = {v.name: v for v in (ML1M, ML100K)}


# --------------------------------------------------------------------------- #
# Row order, encoding and the positional split.
# --------------------------------------------------------------------------- #


def group_by_first_appearance(keys: np.ndarray) -> np.ndarray:
    """The permutation a pandas < 2.2 inner merge applies to its left table.

    Rows are grouped by key, groups in order of the key's first appearance, rows in
    their original order inside a group (m3oe.md §1.1).
    """
    keys = np.asarray(keys)
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return np.argsort(first[inverse.ravel()], kind="stable")


def merge_order(
    movie_ids: np.ndarray,
    user_ids: np.ndarray,
    known_movie: np.ndarray | None = None,
    known_user: np.ndarray | None = None,
) -> np.ndarray:
    """Positions of the rows of `(ratings ⋈ movies) ⋈ users`, in pandas < 2.2 order.

    The first join drops ratings of unknown movies and groups the rest by movie (in
    order of first appearance in the ratings file, which still includes ratings of
    unknown users); the second drops unknown users and groups by user, in order of
    first appearance in the first join's output.

    Args:
        movie_ids: MovieID of every rating, in ratings-file order.
        user_ids: UserID of the same ratings.
        known_movie: bool mask of ratings whose movie is in the movies file (all
            if None).
        known_user: bool mask of ratings whose user is in the users file (all if
            None).

    Returns:
        int64 positions into the ratings, in the joined table's order.
    """
    movie_ids, user_ids = np.asarray(movie_ids), np.asarray(user_ids)
    n = len(movie_ids)
    known_movie = np.ones(n, bool) if known_movie is None else np.asarray(known_movie, bool)
    known_user = np.ones(n, bool) if known_user is None else np.asarray(known_user, bool)
    first = np.flatnonzero(known_movie)
    first = first[group_by_first_appearance(movie_ids[first])]
    second = first[known_user[first]]
    return second[group_by_first_appearance(user_ids[second])].astype(np.int64)


def label_encode(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes `0..n-1` in sorted order of the distinct `values`, and `n`."""
    uniques, codes = np.unique(values, return_inverse=True)
    return codes.ravel().astype(np.int64), int(len(uniques))


def min_max(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """`(values - min) / (max - min)` as float32 (0 where max == min), min and max."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return scaled.astype(np.float32), low, high


def positional_split_sizes(
    n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> tuple[int, int, int]:
    """`(train, val, test)` of the positional split of `n` rows.

    `train = floor(f_train n)`, `val = floor((f_train + f_val) n) - train`, test the
    rest, computed on the fractions' decimal values exactly (no float rounding), so
    `(0.8, 0.1, 0.1)` and `n = 1,000,209` give 800,167 / 100,021 / 100,021.
    """
    train_f, val_f, _ = split_lib.check_fractions(fractions)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer. Received: n={n!r}")
    first = Fraction(repr(train_f))
    second = first + Fraction(repr(val_f))
    cut1 = int(first * int(n))  # floor: both factors are non-negative
    cut2 = int(second * int(n))
    return cut1, cut2 - cut1, int(n) - cut2


def _check_keep_domain(keep_domain: object) -> int | None:
    if keep_domain is None:
        return None
    if isinstance(keep_domain, bool) or not isinstance(keep_domain, (int, np.integer)) or not (
        0 <= keep_domain < len(DOMAIN_NAMES)
    ):
        raise ValueError(
            f"`keep_domain` must be None (all domains) or a domain id in "
            f"[0, {len(DOMAIN_NAMES)}). Received: keep_domain={keep_domain!r}"
        )
    return int(keep_domain)


def _check_split(split: object) -> str:
    if not isinstance(split, str) or split not in SPLIT_METHODS:
        raise ValueError(
            f"`split` must be one of {list(SPLIT_METHODS)}. Received: split={split!r}"
        )
    return split


def split_order(
    uids: np.ndarray, split: str = DEFAULT_SPLIT, seed: int = split_lib.DEFAULT_SEED
) -> np.ndarray:
    """The row order the positional cut is applied to, for a `split` method.

    Args:
        uids: the user of every row, in merge order (each user's rows contiguous).
        split: `"positional"` (the identity), `"random"` (a permutation of the rows
            drawn with `numpy.random.default_rng(seed)`) or `"users_shuffled"` (the
            user blocks, in order of first appearance, permuted with
            `default_rng(seed)`; rows inside a block keep their order).
        seed: the seed of the random methods.

    Returns:
        int64 positions into the rows.
    """
    split = _check_split(split)
    uids = np.asarray(uids)
    n = len(uids)
    if split == "positional":
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(int(seed))
    if split == "random":
        return rng.permutation(n).astype(np.int64)
    # Blocks: runs of equal uid (a user's rows are contiguous in merge order).
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if n else np.zeros(0, np.int64)
    stops = np.r_[starts[1:], n].astype(np.int64)
    blocks = rng.permutation(len(starts))
    if not len(blocks):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(starts[b], stops[b]) for b in blocks]).astype(np.int64)


_SPLIT_DESCRIPTIONS = {
    "positional": "positional, no shuffle (train = first rows)",
    "random": "random: rows in a seeded random order, then the positional cut sizes "
              "(users shared between splits; each split in merge order)",
    "users_shuffled": "users_shuffled: user blocks in a seeded random order (rows of a user "
                      "contiguous, in merge order), then the positional cut (user-disjoint "
                      "apart from the boundary users)",
}


def build_dataset(
    variant: M3oEVariant,
    paths: dict[str, str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    keep_domain: int | None = None,
    split: str = DEFAULT_SPLIT,
    seed: int = split_lib.DEFAULT_SEED,
) -> MultiDomainDataset:
    """Parses the raw files and builds the split multi-task dataset (no cache).

    `split` and `seed`: see `split_order` (`seed` is unused by `"positional"`).
    """
    split = _check_split(split)
    users = variant.read_users(paths)
    movie_ids, first_genre = variant.read_movies(paths)
    ratings_path = paths[variant.base.ratings_format.filename]
    ratings = movielens.parse_raw_file(ratings_path, variant.base.ratings_format)
    r_user, r_movie, rating = ratings["UserID"], ratings["MovieID"], ratings["Rating"]

    # (ratings ⋈ movies) ⋈ users, inner joins, in the original CSV's row order.
    known_movie = np.isin(r_movie, movie_ids)
    known_user = np.isin(r_user, users.uid)
    keep = np.flatnonzero(known_movie & known_user)
    n_unknown_movie = int((~known_movie).sum())
    n_unknown_user = int((known_movie & ~known_user).sum())
    if n_unknown_movie or n_unknown_user:
        logging.warning(
            "%s: dropped %d ratings of movies missing from %s and %d of users missing from the "
            "users file (inner joins, as the original).",
            variant.name, n_unknown_movie, variant.movies_file, n_unknown_user,
        )
    if keep.size == 0:
        raise ValueError(
            f"No rating of {ratings_path} has both a known movie and a known user. "
            f"Received: {len(rating)} ratings"
        )
    rows = merge_order(r_movie, r_user, known_movie, known_user)

    user_order = np.argsort(users.uid, kind="stable")
    user_pos = user_order[np.searchsorted(users.uid, r_user[rows], sorter=user_order)]
    movie_order = np.argsort(movie_ids, kind="stable")
    movie_pos = movie_order[np.searchsorted(movie_ids, r_movie[rows], sorter=movie_order)]
    raw_age = users.age[user_pos]
    domain = variant.age_domains(raw_age)
    names = list(DOMAIN_NAMES)
    if keep_domain is not None:
        selected = domain == keep_domain
        if not selected.any():
            raise ValueError(
                f"Domain {keep_domain} ('{DOMAIN_NAMES[keep_domain]}') has no ratings. "
                f"Received: keep_domain={keep_domain}"
            )
        rows, user_pos, movie_pos, raw_age = (
            rows[selected], user_pos[selected], movie_pos[selected], raw_age[selected]
        )
        domain = np.zeros(len(rows), dtype=np.int64)
        names = [DOMAIN_NAMES[keep_domain]]

    raw = {
        "uid": r_user[rows],
        "pid": r_movie[rows],
        "gender": users.gender[user_pos],
        "occupation": users.occupation[user_pos],
        "zip": users.zip[user_pos],
        "cate_id": first_genre[movie_pos],
    }
    columns: dict[str, np.ndarray] = {"domain": domain}
    vocab_sizes = {"domain": len(names)}
    for name, values in raw.items():
        columns[name], vocab_sizes[name] = label_encode(values)
    columns["age"], age_min, age_max = min_max(raw_age)
    r = rating[rows]
    columns["click"] = (r > 3).astype(np.float32)
    columns["like"] = (r > 4).astype(np.float32)

    n = len(rows)
    n_train, n_val, n_test = positional_split_sizes(n, fractions)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    if split == "positional":
        splits = {
            name: {c: v[start:stop] for c, v in columns.items()}
            for name, (start, stop) in bounds.items()
        }
    else:
        order = split_order(columns["uid"], split, seed)
        splits = {}
        for name, (start, stop) in bounds.items():
            part = order[start:stop]
            if split == "random":
                part = np.sort(part)  # membership is random; rows stay in merge order
            splits[name] = {c: v[part] for c, v in columns.items()}
    split_info = {
        "method": _SPLIT_DESCRIPTIONS[split],
        "fractions": list(split_lib.check_fractions(fractions)),
        "sizes": [n_train, n_val, n_test],
    }
    if split != "positional":
        split_info.update(name=split, seed=int(seed))
    genres = np.unique(first_genre[movie_pos])
    info = {
        "loader": variant.name,
        "domain_split": DOMAIN_SPLIT,
        "domain_rule": variant.age_note,
        "keep_domain": keep_domain,
        "tasks": list(TASKS),
        "label_rules": {"click": "rating > 3", "like": "rating > 4 (rating == 5)"},
        "feature_map": dict(REFERENCE_NAMES),
        "encoding": "sparse features label-encoded 0..n-1 in sorted order of the raw values "
                    "over all kept rows (before the split)",
        "age_scaling": {"min": age_min, "max": age_max},
        "cate_ids": [str(g) for g in genres],
        "data_dir": os.path.abspath(os.path.dirname(paths[variant.base.ratings_format.filename])),
        "n_ratings_raw": int(len(rating)),
        "n_ratings": int(n),
        "dropped_unknown_movie": n_unknown_movie,
        "dropped_unknown_user": n_unknown_user,
        "row_order": "pandas<2.2 merge order: movies by first appearance in the ratings "
                     "file, users by first appearance in that movie-grouped table",
        "positives": {t: int(columns[t].sum()) for t in TASKS},
        "split": split_info,
        "seed_independent": split == "positional",
        "format_version": FORMAT_VERSION,
        "schema_version": cache_lib.SCHEMA_VERSION,
    }
    return MultiDomainDataset(
        name=f"{variant.name}/{DOMAIN_SPLIT}" + (f"-d{keep_domain}" if keep_domain is not None else ""),
        n_domains=len(names),
        vocab_sizes=vocab_sizes,
        domain_names=names,
        splits=splits,
        info=info,
        features=FEATURES,
        labels=TASKS,
        dense_features=DENSE_FEATURES,
    )


def load_movielens_m3oe(
    variant: str,
    *,
    data_dir: str | os.PathLike | None = None,
    domain_split: str = DOMAIN_SPLIT,
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    keep_domain: int | None = None,
    split: str = DEFAULT_SPLIT,
) -> MultiDomainDataset:
    """Loads, splits and caches M3oE's MovieLens variant.

    Args:
        variant: `"ml-1m-m3oe"` or `"ml-100k-m3oe"`.
        data_dir: folder with the raw files, or its parent holding `ml-1m/`
            (`ml_1m/`, `ml-100k/`). Default `$MLORA_TF_DATA_DIR` or `./datasets`.
        domain_split: `"age3"` (the only one).
        cache_dir: cache folder; None -> the default one; False -> no caching.
        seed: the seed of the random `split` methods (`DataConfig.split_seed`);
            checked but unused by `"positional"` (whose cache key ignores it).
        fractions: `(train, val, test)` of the positional split, default
            `(0.8, 0.1, 0.1)`.
        keep_domain: None (all three domains) or one domain id (the original's
            `--domain`), which becomes domain 0.
        split: `"positional"` (default, the original's), `"random"` or
            `"users_shuffled"` (see `split_order`); recorded in `info["split"]`.

    Returns:
        A multi-task `MultiDomainDataset` (see the module docstring).
    """
    spec = VARIANTS.get(variant)
    if spec is None:
        raise ValueError(
            f"Unknown M3oE MovieLens variant; valid ones are {sorted(VARIANTS)}. "
            f"Received: variant={variant!r}"
        )
    if domain_split != DOMAIN_SPLIT:
        raise ValueError(
            f"{variant} has one domain split, '{DOMAIN_SPLIT}' (three age groups). "
            f"Received: domain_split={domain_split!r}"
        )
    split_lib.check_seed(seed)
    fractions = split_lib.check_fractions(fractions)
    keep_domain = _check_keep_domain(keep_domain)
    split = _check_split(split)
    paths = movielens.resolve_files(spec.base, data_dir)
    hashes = {name: cache_lib.hash_file(path) for name, path in paths.items()}
    extra = {"keep_domain": keep_domain, "format_version": FORMAT_VERSION}
    if split != DEFAULT_SPLIT:  # the default's key stays what it was
        extra["split"] = split
    key = cache_lib.make_cache_key(
        loader=spec.name,
        raw_file_hashes={f: hashes.get(f) for f in spec.base.required + spec.base.optional},
        domain_split=DOMAIN_SPLIT,
        fractions=fractions,
        seed=0 if split == DEFAULT_SPLIT else seed,  # the positional split has no randomness
        extra=extra,
    )

    def build() -> MultiDomainDataset:
        dataset = build_dataset(spec, paths, fractions, keep_domain, split, seed)
        dataset.info["raw_files"] = {
            name: {"sha256": hashes[name], "bytes": os.path.getsize(path)}
            for name, path in paths.items()
        }
        return dataset

    tag = DOMAIN_SPLIT + (f"-d{keep_domain}" if keep_domain is not None else "")
    if split != DEFAULT_SPLIT:
        tag += f"-{split}"
    dataset = cache_lib.get_or_build(
        build, cache_dir=cache_lib.resolve_cache_dir(cache_dir), loader=spec.name,
        domain_split=tag, key=key,
    )
    dataset.info["data_dir"] = os.path.abspath(os.path.dirname(paths[spec.base.users_file]))
    return dataset


__all__ = [
    "DENSE_FEATURES",
    "DOMAIN_NAMES",
    "DOMAIN_SPLIT",
    "FEATURES",
    "SPLIT_METHODS",
    "TASKS",
    "load_movielens_m3oe",
    "merge_order",
    "positional_split_sizes",
    "split_order",
]
