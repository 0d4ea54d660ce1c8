"""Tiny Taobao "Cloud Theme Click" fixture files in the raw formats (datasets.md §3.2, §6).

`write_taobao(folder)` writes `theme_click_log.csv` (columns in a non-standard order,
read by name), `user_embedding.csv` and `item_embedding.csv` (header, raw id, one field of
`dim` space-separated numbers). It returns a `TaoboaFixture` that computes, independently
of the loader, what the loader must give.

Built in (§6): raw theme ids out of sorted order; some users and items without an
embedding; the first theme of the log loses all its rows to that filter (so domain
numbers differ from theme ranks); repeated clicks of one pair (at different times);
every theme keeps >= 2 distinct pairs; no user has exactly one candidate item.
"""

from __future__ import annotations

import dataclasses
import os
import random

HEADER = ("theme_id", "user_id", "item_id", "leaf_cate_id", "cate_level1_id", "clk_cnt", "reach_time")


def split_sizes(n: int) -> tuple[int, int, int]:
    """§1.3 closed form; 1 -> train (the loader's choice), 0 -> nothing."""
    if n == 0:
        return 0, 0, 0
    if n == 1:
        return 1, 0, 0
    a = -(-2 * n // 5)
    if a == 1:
        return n - 1, 0, 1
    test = -(-a // 2)
    return n - a, a - test, test


def time_sizes(n: int) -> tuple[int, int, int]:
    """§3.5: train = floor(0.6 n), the rest 50/50 with test = ceil(m/2)."""
    train = int(0.6 * n)
    m = n - train
    if m <= 1:
        return train, 0, m
    return train, m - (m + 1) // 2, (m + 1) // 2


@dataclasses.dataclass
class TaobaoFixture:
    """What the fixture holds.

    Attributes:
        folder: raw folder.
        clicks: `(user_id, theme_id, item_id, reach_time)` in file order.
        user_vectors, item_vectors: raw id -> vector (only ids with an embedding).
    """

    folder: str
    clicks: list[tuple[int, int, int, str]]
    user_vectors: dict[int, list[float]]
    item_vectors: dict[int, list[float]]

    def kept(self) -> list[tuple[int, int, int, str]]:
        return [c for c in self.clicks if c[0] in self.user_vectors and c[2] in self.item_vectors]

    def themes(self, n: int | None) -> list[int]:
        """Selected raw theme ids: first appearance in the whole log, kept if rows remain."""
        order: list[int] = []
        for _, t, _, _ in self.clicks:
            if t not in order:
                order.append(t)
        alive = {t for _, t, _, _ in self.kept()}
        left = [t for t in order if t in alive]
        return left if n is None else left[:n]

    def maps(self, n: int | None) -> tuple[dict[int, int], dict[int, int]]:
        users: dict[int, int] = {}
        items: dict[int, int] = {}
        for theme in self.themes(n):
            for u, t, i, _ in self.kept():
                if t == theme:
                    users.setdefault(u, len(users))
                    items.setdefault(i, len(items))
        return users, items

    def positives(self, n: int | None, k: int, with_time: bool = False) -> list[tuple]:
        users, items = self.maps(n)
        theme = self.themes(n)[k]
        seen, out = set(), []
        for u, t, i, when in self.kept():
            if t != theme:
                continue
            row = (users[u], items[i], when) if with_time else (users[u], items[i])
            if row not in seen:
                seen.add(row)
                out.append(row)
        return out

    def negatives_per_user(self, n: int | None, k: int, rho: float, with_time: bool = False) -> dict[int, int]:
        rows = self.positives(n, k, with_time)
        pool = {r[1] for r in rows}
        per_user: dict[int, list[int]] = {}
        for r in rows:
            per_user.setdefault(r[0], []).append(r[1])
        return {u: min(int(len(p) / rho), len(pool) - len(set(p))) for u, p in per_user.items()}

    def expected_sizes(self, n: int | None, k: int, rho: float, with_time: bool = False) -> tuple[int, int, int]:
        n_pos = len(self.positives(n, k, with_time))
        sizes = list(time_sizes(n_pos) if with_time else split_sizes(n_pos))
        for m in self.negatives_per_user(n, k, rho, with_time).values():
            for j, s in enumerate(split_sizes(m)):
                sizes[j] += s
        return tuple(sizes)


def write_taobao(folder: str | os.PathLike, *, n_themes: int = 12, dim: int = 16, seed: int = 0) -> TaobaoFixture:
    """Writes the three raw files into `folder` (created)."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    theme_ids = [900_000 + 37 * ((j * 7) % n_themes) for j in range(n_themes)]  # not sorted
    users = [500_000 + 13 * u for u in range(30)]
    items = [7_000_000 + 11 * i for i in range(60)]
    no_user_emb = set(users[-3:])
    no_item_emb = set(items[-4:])
    clicks: list[tuple[int, int, int, str]] = []
    for j, theme in enumerate(theme_ids):
        if j == 0:
            # The first theme of the log: only users without embeddings.
            for u in sorted(no_user_emb):
                clicks.append((u, theme, items[0], f"2018-10-0{1 + j % 9} 10:00:00"))
            continue
        pool = rng.sample(items, 8)
        for u in rng.sample(users, 9):
            for i in rng.sample(pool, rng.randint(1, 3)):
                day, hour = rng.randint(1, 28), rng.randint(0, 23)
                clicks.append((u, theme, i, f"2018-10-{day:02d} {hour:02d}:{rng.randint(0, 59):02d}:00"))
        u, _, i, _ = clicks[-1]
        clicks.append((u, theme, i, "2018-10-30 23:59:59"))  # a repeated click, later
    rng.shuffle(clicks)
    # Keep the first theme first in the file (it must be rank 0 of first appearance).
    first = [c for c in clicks if c[1] == theme_ids[0]]
    clicks = first + [c for c in clicks if c[1] != theme_ids[0]]
    folder = os.fspath(folder)
    with open(os.path.join(folder, "theme_click_log.csv"), "w", encoding="ascii", newline="\n") as f:
        f.write(",".join(HEADER) + "\n")
        for u, t, i, when in clicks:
            f.write(f"{t},{u},{i},{i % 97},{i % 7},{rng.randint(1, 3)},{when}\n")

    def vector() -> list[float]:
        return [round(rng.uniform(-1, 1), 4) for _ in range(dim)]

    user_vectors = {u: vector() for u in users if u not in no_user_emb}
    item_vectors = {i: vector() for i in items if i not in no_item_emb}
    for name, vectors, extra in (("user_embedding.csv", user_vectors, 999_999_001),
                                 ("item_embedding.csv", item_vectors, 999_999_002)):
        rows = list(vectors.items()) + [(extra, vector())]  # an id no click uses
        rng.shuffle(rows)
        with open(os.path.join(folder, name), "w", encoding="ascii", newline="\n") as f:
            f.write("id,emb\n")
            for raw, vec in rows:
                f.write(f"{raw},{' '.join(repr(v) for v in vec)}\n")
    return TaobaoFixture(folder, clicks, user_vectors, item_vectors)
