"""Tiny raw MovieLens files for M3oE's setup (ML-1M `.dat` and ML-100K `u.*`).

The writers return what they wrote, so tests compute expectations independently of
the loader. ML-1M ratings are grouped by user in ascending UserID, as the real file;
one user rates in an order that the merge reorders, one orphan user (absent from
`users.dat`) is the first to rate a movie, and one rating names a movie absent from
`movies.dat`.
"""

from __future__ import annotations

import dataclasses
import os
import random

ML1M_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Drama", "Western")


@dataclasses.dataclass
class Raw:
    """What a fixture folder holds."""

    folder: str
    users: dict[int, dict]  # uid -> {"gender", "age", "occupation", "zip"}
    movies: dict[int, str]  # movie id -> first genre
    ratings: list[tuple[int, int, int]]  # (uid, movie, rating) in file order, all lines


def write_ml1m(folder, n_users: int = 28, n_movies: int = 18, seed: int = 0) -> Raw:
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    orphan = 5  # rates, but is missing from users.dat
    users = {}
    for uid in range(1, n_users + 1):
        if uid == orphan:
            continue
        users[uid] = {
            "gender": "F" if uid % 3 == 0 else "M",
            "age": ML1M_AGE_CODES[uid % 7],
            "occupation": (uid * 7) % 21,
            "zip": rng.choice(["48067", "70072", "55117", "02460", "55455-1234", "10025", "9"]),
        }
    with open(os.path.join(folder, "users.dat"), "w", encoding="ascii", newline="") as f:
        for uid, u in users.items():
            f.write(f"{uid}::{u['gender']}::{u['age']}::{u['occupation']}::{u['zip']}\n")
        # A user without ratings: not in any vocabulary.
        f.write(f"{n_users + 1}::F::25::3::11111\n")

    movie_ids = [3 * i + 1 for i in range(n_movies)]  # gaps, as the real MovieIDs
    movies = {}
    with open(os.path.join(folder, "movies.dat"), "w", encoding="latin-1", newline="") as f:
        for i, mid in enumerate(movie_ids):
            genres = [GENRES[(i * 5) % len(GENRES)], GENRES[(i * 3 + 1) % len(GENRES)]]
            if genres[1] == genres[0]:
                genres = genres[:1]
            title = "Misérables, Les (1995)" if i == 2 else f"Movie {mid}, The (19{50 + i})"
            f.write(f"{mid}::{title}::{'|'.join(genres)}\n")
            movies[mid] = genres[0]
        f.write(f"{movie_ids[-1] + 3}::Never Rated (2000)::Drama\n")
    missing_movie = movie_ids[-1] + 6  # rated but not in movies.dat
    late_movie = movie_ids[-2]  # first rated by the orphan user

    ratings = []
    for uid in range(1, n_users + 1):
        pool = [m for m in movie_ids if m != late_movie]
        if uid < orphan:  # the second half of the movies first appears at the orphan or later
            pool = pool[: len(pool) // 2]
        chosen = rng.sample(pool, min(len(pool), rng.randint(6, 10)))
        if uid == orphan:
            chosen = [late_movie] + chosen
        elif uid > orphan and uid % 4 == 0:
            chosen.append(late_movie)
        if uid == 2:
            chosen.append(missing_movie)
        for mid in chosen:
            ratings.append((uid, mid, rng.randint(1, 5)))
    # Every rating value occurs.
    for k, r in enumerate((1, 2, 3, 4, 5)):
        uid, mid, _ = ratings[3 * k + 1]
        ratings[3 * k + 1] = (uid, mid, r)
    with open(os.path.join(folder, "ratings.dat"), "w", encoding="ascii", newline="") as f:
        for t, (uid, mid, r) in enumerate(ratings):
            f.write(f"{uid}::{mid}::{r}::{978300760 + t}\n")
    return Raw(str(folder), users, movies, ratings)


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def write_ml100k(folder, seed: int = 0) -> Raw:
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    ages = (7, 17, 24, 25, 30, 34, 35, 44, 60, 73, 19, 28)
    occupations = ("student", "writer", "engineer", "other")
    users = {}
    with open(os.path.join(folder, "u.user"), "w", encoding="ascii", newline="") as f:
        for i, age in enumerate(ages):
            uid = i + 1
            users[uid] = {"gender": "MF"[i % 2], "age": age, "occupation": occupations[i % 4],
                          "zip": ("T8H1N", "85711", "94043", "V3N4P")[i % 4]}
            u = users[uid]
            f.write(f"{uid}|{age}|{u['gender']}|{u['occupation']}|{u['zip']}\n")
    movies = {}
    with open(os.path.join(folder, "u.item"), "w", encoding="latin-1", newline="") as f:
        for i in range(10):
            mid = i + 1
            flags = ["0"] * len(ML100K_GENRES)
            if i != 4:  # movie 5 has no genre flag: "unknown"
                for g in ((i % 18) + 1, ((i * 7) % 18) + 1):
                    flags[g] = "1"
            first = ML100K_GENRES[flags.index("1")] if "1" in flags else "unknown"
            movies[mid] = first
            title = "Misérables, Les (1995)" if i == 3 else f"Film {mid} (1995)"
            f.write(f"{mid}|{title}|01-Jan-1995||http://x/{mid}|{'|'.join(flags)}\n")
    ratings = []
    for _ in range(90):
        ratings.append((rng.choice(list(users)), rng.randint(1, 10), rng.randint(1, 5)))
    with open(os.path.join(folder, "u.data"), "w", encoding="ascii", newline="") as f:
        for t, (uid, mid, r) in enumerate(ratings):
            f.write(f"{uid}\t{mid}\t{r}\t{881250949 + t}\n")
    return Raw(str(folder), users, movies, ratings)


def expected_order(raw: Raw) -> list[tuple[int, int, int]]:
    """The joined rows in pandas < 2.2 merge order, simulated row by row."""
    left = [r for r in raw.ratings if r[1] in raw.movies]
    movie_first: dict[int, int] = {}
    for i, (_, mid, _) in enumerate(left):
        movie_first.setdefault(mid, i)
    joined = sorted(left, key=lambda r: movie_first[r[1]])
    joined = [r for r in joined if r[0] in raw.users]
    user_first: dict[int, int] = {}
    for i, (uid, _, _) in enumerate(joined):
        user_first.setdefault(uid, i)
    return sorted(joined, key=lambda r: user_first[r[0]])
