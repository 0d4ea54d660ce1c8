"""Tiny Amazon 5-core fixture files in the raw format (datasets.md §4.2, §6), for tests.

`write_amazon(folder)` writes one gzip file per Amazon-6 category, one JSON object per
line with `reviewerID`, `asin`, `overall` and a few unused keys. It returns an
`AmazonFixture` that computes, independently of the loader, what the loader must give:
first-appearance id maps, rows after the (uid, pid, score) deduplication, the item
pools, and per user the negative count min(int(n_u / ρ), #candidates).

Design constraints (§6): every category has at least 2 distinct reviews; no user has
exactly one candidate item; one (reviewer, asin) pair appears with two different
`overall` values (kept twice) and one exact duplicate line (dropped); reviewers and
items are shared between categories.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import random

CATEGORIES = (
    "Musical Instruments", "Office Products", "Patio Lawn and Garden",
    "Prime Pantry", "Toys and Games", "Video Games",
)
RHO = (0.22, 0.23, 0.32, 0.23, 0.47, 0.21)


def file_name(category: str) -> str:
    return category.replace(", ", "_").replace(" ", "_") + "_5.json.gz"


def split_sizes(n: int) -> tuple[int, int, int]:
    """datasets.md §1.3 closed form (n >= 2); n == 1 -> all in train (loader's choice)."""
    if n == 0:
        return 0, 0, 0
    if n == 1:
        return 1, 0, 0
    a = -(-2 * n // 5)
    if a == 1:
        return n - 1, 0, 1
    test = -(-a // 2)
    return n - a, a - test, test


@dataclasses.dataclass
class AmazonFixture:
    """What the fixture holds and what a loader should make of it.

    Attributes:
        folder: the raw folder.
        files: category -> path.
        lines: category -> list of (reviewerID, asin, overall) as written.
        uid_map, pid_map: raw id -> expected integer id (global first appearance).
    """

    folder: str
    files: dict[str, str]
    lines: dict[str, list[tuple[str, str, float]]]
    uid_map: dict[str, int]
    pid_map: dict[str, int]

    def positives(self, k: int) -> list[tuple[int, int]]:
        """Domain k's positive rows (mapped ids) after (uid, pid, score) dedup, in order."""
        seen, out = set(), []
        for row in self.lines[CATEGORIES[k]]:
            if row in seen:
                continue
            seen.add(row)
            out.append((self.uid_map[row[0]], self.pid_map[row[1]]))
        return out

    def pool(self, k: int) -> list[int]:
        out: list[int] = []
        for _, p in self.positives(k):
            if p not in out:
                out.append(p)
        return out

    def negatives_per_user(self, k: int, rho: float) -> dict[int, int]:
        pool = self.pool(k)
        rows: dict[int, list[int]] = {}
        for u, p in self.positives(k):
            rows.setdefault(u, []).append(p)
        out = {}
        for u, items in rows.items():
            candidates = len(pool) - len(set(items))
            out[u] = min(int(len(items) / rho), candidates)
        return out

    def expected_sizes(self, k: int, rho: float) -> tuple[int, int, int]:
        sizes = list(split_sizes(len(self.positives(k))))
        for m in self.negatives_per_user(k, rho).values():
            for i, s in enumerate(split_sizes(m)):
                sizes[i] += s
        return tuple(sizes)


def _line(rng: random.Random, user: str, item: str, score: float) -> str:
    record = {
        "overall": score,
        "verified": rng.random() < 0.5,
        "reviewTime": "01 5, 2016",
        "reviewerID": user,
        "asin": item,
        "reviewerName": "x",
        "reviewText": "ok, \"quoted\" and ünïcode",
        "summary": "ok",
        "unixReviewTime": 1451952000,
    }
    return json.dumps(record, ensure_ascii=False)


def write_amazon(folder: str | os.PathLike, *, seed: int = 0, n_users: int = 24,
                 items_per_category: int = 12) -> AmazonFixture:
    """Writes the six category files into `folder` (created)."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    users = [f"A{1000 + 7 * i:05d}XYZ" for i in range(n_users)]
    files, lines = {}, {}
    for k, category in enumerate(CATEGORIES):
        # Each category has its own items plus two shared with the previous category.
        items = [f"B{k:02d}{j:07d}" for j in range(items_per_category)]
        if k > 0:
            items[:2] = [f"B{k - 1:02d}{j:07d}" for j in range(2)]
        rows: list[tuple[str, str, float]] = []
        members = rng.sample(users, n_users // 2 + k)
        for user in members:
            # 1..4 distinct items, never exactly len(items) - 1 (one candidate).
            n = rng.randint(1, 4)
            for item in rng.sample(items, n):
                rows.append((user, item, float(rng.randint(1, 5))))
        # Quirk: the same pair with two scores stays twice; an exact duplicate goes.
        u, p, s = rows[0]
        rows.append((u, p, 5.0 if s != 5.0 else 4.0))
        rows.append(rows[1])
        rng.shuffle(rows)
        path = os.path.join(os.fspath(folder), file_name(category))
        with gzip.open(path, "wt", encoding="utf-8", newline="\n") as f:
            for user, item, score in rows:
                f.write(_line(rng, user, item, score) + "\n")
        files[category] = path
        lines[category] = rows
    uid_map: dict[str, int] = {}
    pid_map: dict[str, int] = {}
    for category in CATEGORIES:
        for user, item, _ in lines[category]:
            uid_map.setdefault(user, len(uid_map))
            pid_map.setdefault(item, len(pid_map))
    return AmazonFixture(os.fspath(folder), files, lines, uid_map, pid_map)
