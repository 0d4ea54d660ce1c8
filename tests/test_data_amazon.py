"""Amazon-6 loader and the shared negative-sampling machinery, on tiny raw fixture files."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from mlora_tf.data import amazon, load_dataset
from mlora_tf.data.split import split_indices
from tests.fixtures_amazon import CATEGORIES, RHO, file_name, split_sizes, write_amazon


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("amazon")
    fixture = write_amazon(folder / "raw")
    ds = load_dataset("amazon", data_dir=folder / "raw", cache_dir=False)
    return fixture, ds


# --------------------------------------------------------------------------- #
# ρ and the count arithmetic.
# --------------------------------------------------------------------------- #


def test_rho_sequence_equals_the_documented_table():
    assert amazon.rho_sequence(30, 123) == list(amazon.RHO_TABLE_SEED_123)
    assert amazon.rho_sequence(6) == [0.22, 0.23, 0.32, 0.23, 0.47, 0.21]
    assert amazon.rho_sequence(6, 5) != amazon.rho_sequence(6, 123)


def test_negative_counts_use_truncated_float_division():
    # datasets.md §1.4: 7 / 0.28 gives 24, not 25; 135 / 0.27 gives 499, not 500.
    assert amazon.negative_counts(np.array([7]), 0.28).tolist() == [24]
    assert amazon.negative_counts(np.array([135]), 0.27).tolist() == [499]
    assert amazon.negative_counts(np.array([1, 2, 3]), 0.5).tolist() == [2, 4, 6]


def test_category_file_names():
    assert amazon.category_file_name("Patio, Lawn and Garden") == "Patio_Lawn_and_Garden_5.json.gz"
    assert [amazon.category_file_name(c) for c in amazon.AMAZON6_CATEGORIES] == [
        "Musical_Instruments_5.json.gz", "Office_Products_5.json.gz", "Patio_Lawn_and_Garden_5.json.gz",
        "Prime_Pantry_5.json.gz", "Toys_and_Games_5.json.gz", "Video_Games_5.json.gz",
    ]


# --------------------------------------------------------------------------- #
# sample_negatives / split_negatives units.
# --------------------------------------------------------------------------- #


def test_sample_negatives_excludes_own_positives_and_takes_all_when_short():
    # Pool in first-appearance order: 30, 10, 20, 40, 50.
    uid = np.array([0, 0, 1, 2, 2, 2, 0])
    pid = np.array([30, 10, 20, 40, 50, 30, 30])  # user 0 has 30 twice (2 rows, 1 distinct)
    users, counts, neg_uid, neg_pid, pool = amazon.sample_negatives(
        uid, pid, 0.5, np.random.default_rng(0)
    )
    assert pool.tolist() == [30, 10, 20, 40, 50]
    assert users.tolist() == [0, 1, 2]
    # user 0: 3 rows -> k = 6 >= 3 candidates -> all, in pool order.
    # user 1: 1 row -> k = 2 < 4 candidates -> 2 sampled.  user 2: k = 6 >= 2 -> all.
    assert counts.tolist() == [3, 2, 2]
    assert neg_pid[:3].tolist() == [20, 40, 50]
    assert set(neg_pid[3:5]) <= {30, 10, 40, 50} and len(set(neg_pid[3:5])) == 2
    assert neg_pid[5:].tolist() == [10, 20]
    assert neg_uid.tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_sampling_is_uniform_over_the_candidates():
    uid = np.array([0] * 3 + [1] * 12)
    pid = np.array([5, 7, 9] + list(range(100, 112)))
    hits = np.zeros(200, dtype=np.int64)
    rng = np.random.default_rng(1)
    for _ in range(400):
        _, counts, neg_uid, neg_pid, _ = amazon.sample_negatives(uid, pid, 0.5, rng)
        mine = neg_pid[neg_uid == 0]
        assert len(set(mine.tolist())) == len(mine) == 6
        assert not set(mine.tolist()) & {5, 7, 9}
        np.add.at(hits, mine, 1)
    counts = hits[100:112]
    assert counts.sum() == 2400 and counts.min() > 140 and counts.max() < 260


def test_split_negatives_follows_the_small_n_table_per_user():
    counts = np.array([0, 1, 2, 5, 5, 21])
    rows, singles = amazon.split_negatives(counts, 123, (0.6, 0.2, 0.2), "d")
    assert singles == 1
    offsets = np.concatenate([[0], np.cumsum(counts)])
    owner = np.repeat(np.arange(len(counts)), counts)
    for u, m in enumerate(counts):
        got = tuple(int(np.sum(owner[rows[s]] == u)) for s in ("train", "val", "test"))
        assert got == split_sizes(int(m)), (u, m)
    # Exactly the §1.3 call on a one-class set of that size, user by user.
    tr, va, te, _ = split_indices(np.zeros(21), seed=123)
    assert rows["train"][-len(tr):].tolist() == (offsets[5] + tr).tolist()
    assert rows["test"][-len(te):].tolist() == (offsets[5] + te).tolist()
    every = np.sort(np.concatenate(list(rows.values())))
    assert every.tolist() == list(range(int(counts.sum())))


# --------------------------------------------------------------------------- #
# The loader on fixture files.
# --------------------------------------------------------------------------- #


def test_vocabularies_are_global_first_appearance_maps(loaded):
    fixture, ds = loaded
    assert ds.name == "amazon/category_6" and ds.n_domains == 6
    assert ds.domain_names == [file_name(c)[: -len("_5.json.gz")] for c in CATEGORIES]
    assert ds.vocab_sizes == {"uid": len(fixture.uid_map), "pid": len(fixture.pid_map), "domain": 6}
    first_user, first_item, _ = fixture.lines[CATEGORIES[0]][0]
    assert fixture.uid_map[first_user] == 0 and fixture.pid_map[first_item] == 0
    assert ds.info["rho"] == list(RHO)


def test_split_sizes_follow_the_formula_per_domain(loaded):
    fixture, ds = loaded
    sizes = ds.sizes()
    for k in range(6):
        got = (sizes["train"][k], sizes["val"][k], sizes["test"][k])
        assert got == fixture.expected_sizes(k, RHO[k]), k


def test_positives_and_negatives_per_domain(loaded):
    fixture, ds = loaded
    for k in range(6):
        rows = {c: np.concatenate([ds.domain_slice(s, k)[c] for s in ("train", "val", "test")])
                for c in ("uid", "pid", "label")}
        pos = rows["label"] == 1
        expected_pos = fixture.positives(k)
        assert sorted(zip(rows["uid"][pos].tolist(), rows["pid"][pos].tolist())) == sorted(expected_pos)
        # The (uid, pid) pair with two scores is kept twice in domain 0..5 alike.
        own = {}
        for u, p in expected_pos:
            own.setdefault(u, set()).add(p)
        pool = set(fixture.pool(k))
        neg_u, neg_p = rows["uid"][~pos].tolist(), rows["pid"][~pos].tolist()
        for u, p in zip(neg_u, neg_p):
            assert p in pool and p not in own[u]
        per_user = {u: neg_u.count(u) for u in set(neg_u)}
        expected = {u: m for u, m in fixture.negatives_per_user(k, RHO[k]).items() if m}
        assert per_user == expected
        assert len(set(zip(neg_u, neg_p))) == len(neg_u)  # without replacement


def test_duplicate_quirk(loaded):
    fixture, ds = loaded
    for k, category in enumerate(CATEGORIES):
        lines = fixture.lines[category]
        assert ds.info["domains"][k]["duplicates_dropped"] == len(lines) - len(set(lines))
        assert ds.info["domains"][k]["positives"] == len(fixture.positives(k))
        pairs = [(u, p) for u, p, _ in set(lines)]
        assert len(pairs) > len(set(pairs))  # one pair with two scores survives twice


def test_deterministic_and_seeded(tmp_path, loaded):
    fixture, ds = loaded
    again = load_dataset("amazon", data_dir=fixture.folder, cache_dir=False)
    for s in ("train", "val", "test"):
        for c in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(again.splits[s][c], ds.splits[s][c])
    other = load_dataset("amazon", data_dir=fixture.folder, cache_dir=False, seed=7)
    assert not np.array_equal(other.splits["train"]["pid"], ds.splits["train"]["pid"]) or not np.array_equal(
        other.splits["train"]["uid"], ds.splits["train"]["uid"])
    assert other.info["rho"] == amazon.rho_sequence(6, 7)


def test_cache_round_trip(tmp_path, loaded):
    fixture, ds = loaded
    first = load_dataset("amazon", data_dir=fixture.folder, cache_dir=tmp_path / "c")
    second = load_dataset("amazon", data_dir=fixture.folder, cache_dir=tmp_path / "c")
    assert (first.info["cache_status"], second.info["cache_status"]) == ("built", "hit")
    np.testing.assert_array_equal(second.splits["test"]["pid"], ds.splits["test"]["pid"])
    assert second.info["rho"] == list(RHO)


def test_gender_default_means_category_6(loaded):
    fixture, _ = loaded
    ds = load_dataset("amazon", data_dir=fixture.folder, domain_split="gender", cache_dir=False)
    assert ds.name == "amazon/category_6"


# --------------------------------------------------------------------------- #
# Errors.
# --------------------------------------------------------------------------- #


def test_missing_file_is_named(tmp_path):
    write_amazon(tmp_path / "raw")
    os.remove(tmp_path / "raw" / "Prime_Pantry_5.json.gz")
    with pytest.raises(FileNotFoundError, match="Prime_Pantry_5.json.gz"):
        load_dataset("amazon", data_dir=tmp_path / "raw", cache_dir=False)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"reviewerID": "A1", "asin": "B1"', "line 3 of .*Musical_Instruments.*not a JSON object"),
        ('{"reviewerID": "A1", "overall": 5.0}', "line 3 of .*lacks key 'asin'"),
        ('{"reviewerID": "A1", "asin": "B1", "overall": "five"}', "line 3 .*overall=.five."),
        ('[1, 2]', "line 3 .*expected a JSON object"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    write_amazon(tmp_path / "raw")
    path = tmp_path / "raw" / "Musical_Instruments_5.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines[2] = line
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        load_dataset("amazon", data_dir=tmp_path / "raw", cache_dir=False)


def test_truncated_gzip_is_reported(tmp_path):
    write_amazon(tmp_path / "raw")
    path = tmp_path / "raw" / "Video_Games_5.json.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="Video_Games_5.json.gz.*truncated"):
        load_dataset("amazon", data_dir=tmp_path / "raw", cache_dir=False)


def test_domain_with_one_positive_is_named(tmp_path):
    write_amazon(tmp_path / "raw")
    path = tmp_path / "raw" / "Prime_Pantry_5.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write('{"reviewerID": "A9", "asin": "B9", "overall": 3.0}\n')
    with pytest.raises(ValueError, match="Domain 3 .*Prime_Pantry.*1 positive row"):
        load_dataset("amazon", data_dir=tmp_path / "raw", cache_dir=False)


def test_user_with_one_candidate_gets_it_in_train(tmp_path):
    uid = np.array([0, 0, 1, 1, 1])
    pid = np.array([1, 2, 1, 2, 3])  # user 0 has one candidate (3)
    dom = amazon.build_sampled_domain(uid, pid, domain=0, rho=0.5, seed=123, fractions=(0.6, 0.2, 0.2),
                                      domain_label="t")
    assert dom.stats["users_with_one_negative"] == 1
    train = dom.splits["train"]
    assert ((train["uid"] == 0) & (train["pid"] == 3) & (train["label"] == 0)).sum() == 1
