"""Tiny MovieLens fixture files in the exact raw formats, for tests.

`write_ml1m(folder)` writes `users.dat` and `ratings.dat`; `write_ml100k(folder)`
writes `u.user`, `u.data` and (optionally) `u.occupation`. Both return a
`MovieLensFixture` that knows, independently of the loader, which domain every
user belongs to under each domain split, so tests can compare counts.

Every user has at least 5 ratings equal to 5 and at least 5 other ratings, so
every domain value of every split can be stratified.
"""

from __future__ import annotations

import dataclasses
import os
import random

ML1M_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)
# Raw ML-100K ages per bracket, including both boundaries of each bracket.
ML100K_BRACKET_AGES = {
    0: (7, 17),
    1: (18, 24),
    2: (25, 34),
    3: (35, 44),
    4: (45, 49),
    5: (50, 55),
    6: (56, 73),
}
ML100K_STANDARD_OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment",
    "executive", "healthcare", "homemaker", "lawyer", "librarian", "marketing",
    "none", "other", "programmer", "retired", "salesman", "scientist", "student",
    "technician", "writer",
)


@dataclasses.dataclass
class FixtureUser:
    """One user as written, with the domain ids the loader should give it."""

    uid: int
    gender: str
    raw_age: int
    age_domain: int
    occupation_raw: int | str
    occupation_domain: int

    def domain(self, domain_split: str) -> int:
        return {
            "gender": 0 if self.gender == "F" else 1,
            "age": self.age_domain,
            "occupation": self.occupation_domain,
        }[domain_split]


@dataclasses.dataclass
class MovieLensFixture:
    """What a fixture folder holds, and what a loader should make of it.

    Attributes:
        folder: where the files are.
        files: file name -> path.
        users: users in file order (including unrated ones).
        ratings: kept ratings `(uid, pid, rating)` in file order (no orphans).
        n_orphan_ratings: ratings written for users missing from the users file.
        occupation_names: the occupation names in domain-id order.
    """

    folder: str
    files: dict[str, str]
    users: list[FixtureUser]
    ratings: list[tuple[int, int, int]]
    n_orphan_ratings: int
    occupation_names: list[str]

    def user(self, uid: int) -> FixtureUser:
        return next(u for u in self.users if u.uid == uid)

    def expected_vocab(self) -> dict[str, int]:
        return {
            "uid": max(u.uid for u in self.users) + 1,
            "pid": max(p for _, p, _ in self.ratings) + 1,
        }

    def expected_counts(self, domain_split: str, n_domains: int) -> list[tuple[int, int]]:
        """Per domain id: (ratings, ratings equal to 5)."""
        by_uid = {u.uid: u.domain(domain_split) for u in self.users}
        counts = [[0, 0] for _ in range(n_domains)]
        for uid, _, rating in self.ratings:
            d = by_uid[uid]
            counts[d][0] += 1
            counts[d][1] += int(rating == 5)
        return [tuple(c) for c in counts]


def _user_ratings(
    rng: random.Random, uid: int, index: int, movie_pool: list[int]
) -> list[tuple[int, int, int]]:
    n_pos, n_neg = 5 + index % 3, 5 + index % 4
    movies = rng.sample(movie_pool, n_pos + n_neg)
    ratings = [5] * n_pos + [rng.choice((1, 2, 3, 4)) for _ in range(n_neg)]
    rows = list(zip([uid] * len(movies), movies, ratings))
    rng.shuffle(rows)
    return rows


def _ratings_with_orphans(
    rng: random.Random,
    users: list[FixtureUser],
    n_rated: int,
    orphan_ratings: int,
    movie_pool: list[int],
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(all ratings in file order including orphans, kept ratings)."""
    kept, written = [], []
    orphan_base = max(u.uid for u in users) + 7
    orphans = [
        # Orphans use a MovieID no kept rating has, so it must not reach the vocab.
        (orphan_base + j % 3, max(movie_pool) + 1000 + j, 5 if j % 2 else 3)
        for j in range(orphan_ratings)
    ]
    middle = n_rated // 2
    for index, user in enumerate(users[:n_rated]):
        rows = _user_ratings(rng, user.uid, index, movie_pool)
        kept.extend(rows)
        written.extend(rows)
        if index == middle:
            written.extend(orphans[: len(orphans) // 2])
    written.extend(orphans[len(orphans) // 2 :])
    return written, kept


def write_ml1m(
    folder: str | os.PathLike,
    *,
    n_users: int = 42,
    unrated_users: int = 0,
    orphan_ratings: int = 0,
    n_movies: int = 60,
    seed: int = 0,
    line_end: str = "\n",
) -> MovieLensFixture:
    """Writes ML-1M `users.dat` and `ratings.dat` into `folder` (created).

    Args:
        folder: target folder.
        n_users: rated users (>= 21 so every occupation code is present).
        unrated_users: extra users with no rating, with the highest UserIDs.
        orphan_ratings: ratings of UserIDs missing from `users.dat` (dropped
            by the loader).
        n_movies: size of the MovieID pool (ids 1, 3, 5, ...: with gaps).
        seed: seed of the fixture's own random choices.
        line_end: `"\\n"` or `"\\r\\n"`.
    """
    if n_users < 21:
        raise ValueError(f"n_users must be >= 21. Received: n_users={n_users}")
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    users = []
    for i in range(n_users + unrated_users):
        bracket = i % 7
        users.append(
            FixtureUser(
                uid=i + 1,
                gender="FM"[(i // 3) % 2],
                raw_age=ML1M_AGE_CODES[bracket],
                age_domain=bracket,
                occupation_raw=(i * 5) % 21,
                occupation_domain=(i * 5) % 21,
            )
        )
    movie_pool = [1 + 2 * j for j in range(n_movies)]
    written, kept = _ratings_with_orphans(rng, users, n_users, orphan_ratings, movie_pool)
    files = {
        "users.dat": os.path.join(folder, "users.dat"),
        "ratings.dat": os.path.join(folder, "ratings.dat"),
    }
    with open(files["users.dat"], "w", newline="", encoding="ascii") as f:
        for j, u in enumerate(users):
            zip_code = f"{10000 + 37 * u.uid:05d}" if j % 5 else f"{10000 + u.uid}-{1234:04d}"
            f.write(f"{u.uid}::{u.gender}::{u.raw_age}::{u.occupation_raw}::{zip_code}{line_end}")
    with open(files["ratings.dat"], "w", newline="", encoding="ascii") as f:
        for k, (uid, pid, rating) in enumerate(written):
            f.write(f"{uid}::{pid}::{rating}::{978300000 + k}{line_end}")
    from_readme = [
        "other/not specified", "academic/educator", "artist", "clerical/admin",
        "college/grad student", "customer service", "doctor/health care",
        "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
        "programmer", "retired", "sales/marketing", "scientist", "self-employed",
        "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
    ]
    return MovieLensFixture(
        folder=os.fspath(folder),
        files=files,
        users=users,
        ratings=kept,
        n_orphan_ratings=orphan_ratings,
        occupation_names=from_readme,
    )


def write_ml100k(
    folder: str | os.PathLike,
    *,
    n_users: int = 42,
    unrated_users: int = 0,
    orphan_ratings: int = 0,
    n_movies: int = 60,
    with_occupation_file: bool = True,
    shuffle_occupations: bool = True,
    seed: int = 0,
) -> MovieLensFixture:
    """Writes ML-100K `u.user`, `u.data` and optionally `u.occupation`.

    Args:
        folder: target folder.
        n_users: rated users (>= 21 so every occupation is present).
        unrated_users: extra users with no rating, with the highest ids.
        orphan_ratings: ratings of user ids missing from `u.user`.
        n_movies: size of the item id pool (ids 2, 5, 8, ...).
        with_occupation_file: write `u.occupation`; otherwise the loader must
            fall back to the standard list.
        shuffle_occupations: write `u.occupation` in a non-standard order, so
            a loader that ignores the file gets the domain ids wrong.
        seed: seed of the fixture's own random choices.
    """
    if n_users < 21:
        raise ValueError(f"n_users must be >= 21. Received: n_users={n_users}")
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    occupations = list(ML100K_STANDARD_OCCUPATIONS)
    if with_occupation_file and shuffle_occupations:
        occupations = occupations[::-1]
        occupations[0], occupations[5] = occupations[5], occupations[0]
    users = []
    for i in range(n_users + unrated_users):
        bracket = i % 7
        occupation = occupations[(i * 5) % 21]
        users.append(
            FixtureUser(
                uid=i + 1,
                gender="MF"[(i // 2) % 2],
                raw_age=ML100K_BRACKET_AGES[bracket][(i // 7) % 2],
                age_domain=bracket,
                occupation_raw=occupation,
                occupation_domain=occupations.index(occupation),
            )
        )
    movie_pool = [2 + 3 * j for j in range(n_movies)]
    written, kept = _ratings_with_orphans(rng, users, n_users, orphan_ratings, movie_pool)
    files = {
        "u.user": os.path.join(folder, "u.user"),
        "u.data": os.path.join(folder, "u.data"),
    }
    with open(files["u.user"], "w", newline="", encoding="ascii") as f:
        for u in users:
            zip_code = f"{55000 + u.uid}" if u.uid % 4 else f"T{u.uid}H1N"
            f.write(f"{u.uid}|{u.raw_age}|{u.gender}|{u.occupation_raw}|{zip_code}\n")
    with open(files["u.data"], "w", newline="", encoding="ascii") as f:
        for k, (uid, pid, rating) in enumerate(written):
            f.write(f"{uid}\t{pid}\t{rating}\t{881250949 + k}\n")
    if with_occupation_file:
        files["u.occupation"] = os.path.join(folder, "u.occupation")
        with open(files["u.occupation"], "w", newline="", encoding="ascii") as f:
            f.write("".join(f"{name}\n" for name in occupations))
    return MovieLensFixture(
        folder=os.fspath(folder),
        files=files,
        users=users,
        ratings=kept,
        n_orphan_ratings=orphan_ratings,
        occupation_names=occupations,
    )


def replace_line(path: str, lineno: int, new_line: str) -> None:
    """Replaces 1-based line `lineno` of `path` (keeping the line end)."""
    with open(path, encoding="latin-1", newline="") as f:
        lines = f.readlines()
    end = lines[lineno - 1][len(lines[lineno - 1].rstrip("\r\n")) :]
    lines[lineno - 1] = new_line + end
    with open(path, "w", encoding="latin-1", newline="") as f:
        f.writelines(lines)
