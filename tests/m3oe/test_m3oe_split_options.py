"""The `split` option of M3oE's MovieLens loaders: positional, random, users_shuffled."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlora_tf.data import load_dataset
from mlora_tf.data import movielens_m3oe as m3
from tests.m3oe.m3oe_fixtures import expected_order, write_ml1m

SPLITS = ("train", "val", "test")


def _load(folder, **options):
    return load_dataset("ml-1m-m3oe", data_dir=folder, cache_dir=False, **options)


def _users(ds, split):
    return set(ds.splits[split]["uid"].tolist())


def _pairs(ds, split):
    """The (uid, pid) code of every row of a split, as a sorted list (a row's identity)."""
    columns = ds.splits[split]
    return sorted(zip(columns["uid"].tolist(), columns["pid"].tolist()))


@pytest.fixture
def raw_dir(tmp_path):
    # More users than the default fixture, so every split holds several users.
    raw = write_ml1m(tmp_path / "ml-1m", n_users=60)
    return tmp_path, raw


def _expected_sizes(n):
    n_train = math.floor(0.8 * n)
    n_val = math.floor(0.9 * n) - n_train
    return [n_train, n_val, n - n_train - n_val]


@pytest.mark.parametrize("split", ["positional", "random", "users_shuffled"])
def test_sizes_and_rows_per_method(raw_dir, split):
    folder, raw = raw_dir
    n = len(expected_order(raw))
    ds = _load(folder, split=split, seed=3)
    assert [ds.num_rows(s) for s in SPLITS] == _expected_sizes(n)
    assert ds.info["split"]["sizes"] == _expected_sizes(n)
    # Every joined row lands in exactly one split.
    base = _load(folder)
    assert sorted(sum((_pairs(ds, s) for s in SPLITS), [])) == sorted(
        sum((_pairs(base, s) for s in SPLITS), [])
    )
    # Vocabularies are computed before the split: the same for every method.
    assert ds.vocab_sizes == base.vocab_sizes
    assert ds.info["age_scaling"] == base.info["age_scaling"]
    if split == "positional":
        assert ds.info["split"] == base.info["split"] and ds.info["seed_independent"]
    else:
        assert ds.info["split"]["name"] == split and ds.info["split"]["seed"] == 3
        assert ds.info["split"]["method"].startswith(split)
        assert not ds.info["seed_independent"]


def test_default_is_the_positional_split_unchanged(raw_dir, tmp_path):
    folder, raw = raw_dir
    default = _load(folder)
    explicit = _load(folder, split="positional", seed=99)
    for s in SPLITS:
        for column in default.column_names:
            np.testing.assert_array_equal(explicit.splits[s][column], default.splits[s][column])
    assert default.info["split"]["method"] == "positional, no shuffle (train = first rows)"
    assert "name" not in default.info["split"]
    # The rows are the first ones of the merge order (the original's split).
    rows = expected_order(raw)
    n_train, n_val, _ = _expected_sizes(len(rows))
    uid_code = {u: i for i, u in enumerate(sorted({u for u, _, _ in rows}))}
    assert _users(default, "train") == {uid_code[u] for u, _, _ in rows[:n_train]}
    assert _users(default, "test") == {uid_code[u] for u, _, _ in rows[n_train + n_val:]}
    # The cache key of the default is the one it had before the option existed.
    paths = m3.movielens.resolve_files(m3.ML1M.base, folder)
    hashes = {name: m3.cache_lib.hash_file(path) for name, path in paths.items()}
    old_key = m3.cache_lib.make_cache_key(
        loader="ml-1m-m3oe",
        raw_file_hashes={f: hashes.get(f) for f in m3.ML1M.base.required + m3.ML1M.base.optional},
        domain_split="age3",
        fractions=(0.8, 0.1, 0.1),
        seed=0,
        extra={"keep_domain": None, "format_version": m3.FORMAT_VERSION},
    )
    cache = tmp_path / "cache"
    built = load_dataset("ml-1m-m3oe", data_dir=folder, cache_dir=cache, seed=5)
    assert built.info["cache_key"] == old_key
    assert load_dataset("ml-1m-m3oe", data_dir=folder, cache_dir=cache, split="positional",
                        seed=6).info["cache_status"] == "hit"


def test_random_mixes_users_and_is_seeded(raw_dir):
    folder, _ = raw_dir
    a = _load(folder, split="random", seed=1)
    b = _load(folder, split="random", seed=1)
    c = _load(folder, split="random", seed=2)
    for s in SPLITS:
        for column in a.column_names:
            np.testing.assert_array_equal(a.splits[s][column], b.splits[s][column])
    assert any(_pairs(a, s) != _pairs(c, s) for s in SPLITS)
    # Users are shared between the splits: most val/test users also train.
    train = _users(a, "train")
    for s in ("val", "test"):
        shared = _users(a, s) & train
        assert len(shared) >= len(_users(a, s)) // 2 and len(shared) > 2
    positional = _load(folder)
    assert _pairs(a, "test") != _pairs(positional, "test")


def test_users_shuffled_is_user_disjoint_and_seeded(raw_dir):
    folder, raw = raw_dir
    a = _load(folder, split="users_shuffled", seed=1)
    b = _load(folder, split="users_shuffled", seed=1)
    c = _load(folder, split="users_shuffled", seed=2)
    positional = _load(folder)
    for s in SPLITS:
        for column in a.column_names:
            np.testing.assert_array_equal(a.splits[s][column], b.splits[s][column])
    assert any(_pairs(a, s) != _pairs(c, s) for s in SPLITS)
    assert _users(a, "test") != _users(positional, "test")
    # User-disjoint apart from at most one user straddling each boundary.
    train, val, test = (_users(a, s) for s in SPLITS)
    assert len(train & val) + len(train & test) + len(val & test) <= 2
    assert len(train | val | test) == len(raw.users)
    # Inside a split each user's rows stay contiguous and in their merge order.
    rows = expected_order(raw)
    uid_code = {u: i for i, u in enumerate(sorted({u for u, _, _ in rows}))}
    pid_code = {m: i for i, m in enumerate(sorted({m for _, m, _ in rows}))}
    merge_pids = {}
    for u, m, _ in rows:
        merge_pids.setdefault(uid_code[u], []).append(pid_code[m])
    for s in SPLITS:
        uids = a.splits[s]["uid"]
        pids = a.splits[s]["pid"]
        starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]])
        assert len(starts) == len(set(uids.tolist()))  # one run per user
        for start, stop in zip(starts, np.r_[starts[1:], len(uids)]):
            got = pids[start:stop].tolist()
            full = merge_pids[int(uids[start])]
            # A boundary user holds a contiguous piece of its rows.
            assert any(full[i:i + len(got)] == got for i in range(len(full) - len(got) + 1))


def test_split_order_directly():
    uids = np.array([7, 7, 3, 3, 3, 9, 1, 1])
    np.testing.assert_array_equal(m3.split_order(uids), np.arange(8))
    order = m3.split_order(uids, "users_shuffled", seed=0)
    assert sorted(order.tolist()) == list(range(8))
    runs = np.split(order, np.flatnonzero(np.diff(uids[order]) != 0) + 1)
    assert sorted(tuple(r.tolist()) for r in runs) == [(0, 1), (2, 3, 4), (5,), (6, 7)]
    random = m3.split_order(uids, "random", seed=0)
    assert sorted(random.tolist()) == list(range(8))
    np.testing.assert_array_equal(random, m3.split_order(uids, "random", seed=0))


@pytest.mark.parametrize("bad", ["shuffled", "Random", "", 1, None])
def test_unknown_split_is_refused(raw_dir, bad):
    folder, _ = raw_dir
    with pytest.raises(ValueError, match=r"positional.*random.*users_shuffled.*Received: split="):
        _load(folder, split=bad)


def test_option_is_registered_and_keyed(raw_dir, tmp_path):
    folder, _ = raw_dir
    cache = tmp_path / "cache"
    default = load_dataset("ml-1m-m3oe", data_dir=folder, cache_dir=cache)

    def load(**options):
        return load_dataset("ml-1m-m3oe", data_dir=folder, cache_dir=cache, **options)

    shuffled = load(split="users_shuffled", seed=1)
    other_seed = load(split="users_shuffled", seed=2)
    random = load(split="random", seed=1)
    keys = {d.info["cache_key"] for d in (default, shuffled, other_seed, random)}
    assert len(keys) == 4
    hit = load(split="users_shuffled", seed=1)
    assert hit.info["cache_status"] == "hit" and hit.info["split"]["name"] == "users_shuffled"
    for s in SPLITS:
        np.testing.assert_array_equal(hit.splits[s]["uid"], shuffled.splits[s]["uid"])
