"""M3oE's MovieLens variant, the multi-task dataset schema and the synthetic generator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlora_tf.data import MultiDomainDataset, available_datasets, load_dataset
from mlora_tf.data import movielens_m3oe as m3
from mlora_tf.data.prepared import dataset_statistics
from tests.m3oe.m3oe_fixtures import expected_order, write_ml1m, write_ml100k

AGE_DOMAIN = {1: 0, 18: 0, 25: 1, 35: 2, 45: 2, 50: 2, 56: 2}


def _rows(ds, column):
    return np.concatenate([ds.splits[s][column] for s in ("train", "val", "test")])


def _codes(values):
    """Sorted-order label encoding, computed the plain way."""
    vocab = sorted(set(values))
    return [vocab.index(v) for v in values], len(vocab)


@pytest.fixture
def ml1m(tmp_path):
    raw = write_ml1m(tmp_path / "ml-1m")
    return raw, load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=False)


def test_registered_and_schema(ml1m):
    assert {"ml-1m-m3oe", "ml-100k-m3oe", "synthetic-mt"} <= set(available_datasets())
    _, ds = ml1m
    assert ds.labels == ("click", "like") and ds.is_multitask
    assert ds.features == ("uid", "pid", "domain", "gender", "occupation", "zip", "cate_id")
    assert ds.dense_features == ("age",)
    assert ds.n_domains == 3 and ds.domain_names == ["age<25", "age25-34", "age35+"]
    for split in ("train", "val", "test"):
        columns = ds.splits[split]
        assert set(columns) == set(ds.column_names)
        assert all(columns[f].dtype == np.int64 for f in ds.features)
        assert columns["age"].dtype == np.float32 and columns["click"].dtype == np.float32


def test_rows_labels_domains_and_features(ml1m):
    raw, ds = ml1m
    rows = expected_order(raw)
    # The fixture discriminates: ordering after dropping the orphan user's ratings
    # (so ranking movies without them) gives another order.
    naive = expected_order(type(raw)(raw.folder, raw.users, raw.movies,
                                     [r for r in raw.ratings if r[0] in raw.users]))
    assert naive != rows
    assert ds.info["dropped_unknown_movie"] == 1 and ds.info["dropped_unknown_user"] > 0
    n = len(rows)
    n_train, n_val = math.floor(0.8 * n), math.floor(0.9 * n) - math.floor(0.8 * n)
    assert [ds.num_rows(s) for s in ("train", "val", "test")] == [n_train, n_val, n - n_train - n_val]

    uids = [u for u, _, _ in rows]
    uid_codes, n_uid = _codes(uids)
    pid_codes, n_pid = _codes([m for _, m, _ in rows])
    users = [raw.users[u] for u in uids]
    expected = {
        "uid": uid_codes,
        "pid": pid_codes,
        "domain": [AGE_DOMAIN[u["age"]] for u in users],
        "gender": [0 if u["gender"] == "F" else 1 for u in users],
        "occupation": _codes([u["occupation"] for u in users])[0],
        "zip": _codes([u["zip"] for u in users])[0],
        "cate_id": _codes([raw.movies[m] for _, m, _ in rows])[0],
        "click": [float(r > 3) for _, _, r in rows],
        "like": [float(r == 5) for _, _, r in rows],
        "age": [(u["age"] - 1) / 55 for u in users],
    }
    assert ds.vocab_sizes == {
        "uid": n_uid, "pid": n_pid, "domain": 3, "gender": 2,
        "occupation": len({u["occupation"] for u in users}),
        "zip": len({u["zip"] for u in users}),
        "cate_id": len({raw.movies[m] for _, m, _ in rows}),
    }
    assert n_uid == len(raw.users)  # the unrated user is in no vocabulary
    # Positional split, then rows grouped by domain inside each split (stable).
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    for split, (a, b) in bounds.items():
        domain = np.array(expected["domain"][a:b])
        order = np.argsort(domain, kind="stable")
        for column, values in expected.items():
            want = np.asarray(values[a:b])[order]
            np.testing.assert_allclose(ds.splits[split][column], want, rtol=1e-6, err_msg=column)


def test_hand_built_merge_order():
    # ratings.dat: u1 m10, u1 m20, u3 m20, u3 m40, u5 m30, u5 m10 -> movie ranks
    # m10, m20, m40, m30; users by first appearance in the movie-grouped table: 1, 5, 3.
    user = np.array([1, 1, 3, 3, 5, 5])
    movie = np.array([10, 20, 20, 40, 30, 10])
    order = m3.merge_order(movie, user)
    assert [(user[i], movie[i]) for i in order] == [(1, 10), (1, 20), (5, 10), (5, 30), (3, 20), (3, 40)]
    # An unknown user's rating still ranks its movie (first join); its row is dropped.
    user = np.array([9, 1, 1, 2])
    movie = np.array([30, 10, 20, 30])
    known_user = user != 9
    order = m3.merge_order(movie, user, known_user=known_user)
    assert [(user[i], movie[i]) for i in order] == [(2, 30), (1, 10), (1, 20)]


def test_positional_split_sizes_of_full_ml1m():
    assert m3.positional_split_sizes(1_000_209) == (800_167, 100_021, 100_021)
    assert m3.positional_split_sizes(10) == (8, 1, 1)
    assert m3.positional_split_sizes(100_000) == (80_000, 10_000, 10_000)
    with pytest.raises(ValueError, match="Received: fractions"):
        m3.positional_split_sizes(10, (0.8, 0.3, 0.1))


def test_movies_file_is_latin1_and_errors_name_the_line(tmp_path):
    raw = write_ml1m(tmp_path / "ml-1m")
    ids, first = m3.read_ml1m_movies(str(tmp_path / "ml-1m" / "movies.dat"))
    assert len(ids) == len(raw.movies) + 1 and first[0] == raw.movies[int(ids[0])]
    bad = tmp_path / "bad.dat"
    bad.write_bytes("1::Toy Story (1995)::Comedy\n2::No genres\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"Malformed line 2 of .*bad.dat.*Received: '2::No genres'"):
        m3.read_ml1m_movies(str(bad))
    bad.write_bytes(b"1::A::Comedy\n1::B::Drama\n")
    with pytest.raises(ValueError, match=r"MovieID 1 appears on more than one line \(lines \[1, 2\]\)"):
        m3.read_ml1m_movies(str(bad))


def test_missing_movies_file_is_named(tmp_path):
    raw = write_ml1m(tmp_path / "ml-1m")
    (tmp_path / "ml-1m" / "movies.dat").unlink()
    with pytest.raises(FileNotFoundError, match="movies.dat"):
        load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=False)
    assert raw.users


def test_cache_round_trip_keeps_labels_and_dense(tmp_path):
    write_ml1m(tmp_path / "ml-1m")
    built = load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    hit = load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=tmp_path / "cache", seed=7)
    assert built.info["cache_status"] == "built" and hit.info["cache_status"] == "hit"
    assert hit.labels == built.labels and hit.dense_features == ("age",) and hit.features == built.features
    for split in ("train", "val", "test"):
        for column in built.column_names:
            np.testing.assert_array_equal(hit.splits[split][column], built.splits[split][column])
    stats = dataset_statistics(hit)
    assert set(stats["positive_rates"]) == {"click", "like"}
    assert stats["positive_rate"] == stats["positive_rates"]["click"]
    # The default split is named like the other datasets' default ("gender" is remapped).
    again = load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=tmp_path / "cache", domain_split="gender")
    assert again.info["cache_status"] == "hit"
    with pytest.raises(ValueError, match="Received: domain_split='age'"):
        load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=False, domain_split="age")


def test_keep_domain_reencodes_and_filters_before_encoding(tmp_path):
    raw = write_ml1m(tmp_path / "ml-1m")
    ds = load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=False, keep_domain=1)
    rows = [r for r in expected_order(raw) if AGE_DOMAIN[raw.users[r[0]]["age"]] == 1]
    assert ds.n_domains == 1 and ds.domain_names == ["age25-34"]
    assert sum(ds.num_rows(s) for s in ("train", "val", "test")) == len(rows)
    assert ds.vocab_sizes["uid"] == len({u for u, _, _ in rows})
    assert set(_rows(ds, "domain")) == {0}
    np.testing.assert_array_equal(_rows(ds, "age"), 0.0)  # one age code: min == max
    with pytest.raises(ValueError, match="Received: keep_domain=3"):
        load_dataset("ml-1m-m3oe", data_dir=tmp_path, cache_dir=False, keep_domain=3)


def test_ml100k_same_age_brackets(tmp_path):
    raw = write_ml100k(tmp_path / "ml-100k")
    ds = load_dataset("ml-100k-m3oe", data_dir=tmp_path, cache_dir=False)
    rows = expected_order(raw)
    users = [raw.users[u] for u, _, _ in rows]
    domain = np.array([0 if u["age"] < 25 else 1 if u["age"] < 35 else 2 for u in users])
    ages = np.array([u["age"] for u in users], dtype=float)
    scaled = (ages - ages.min()) / (ages.max() - ages.min())
    first_genre = [raw.movies[m] for _, m, _ in rows]
    n = len(rows)
    n_train = math.floor(0.8 * n)
    order = np.argsort(domain[:n_train], kind="stable")
    train = ds.splits["train"]
    np.testing.assert_array_equal(train["domain"], domain[:n_train][order])
    np.testing.assert_allclose(train["age"], scaled[:n_train][order], rtol=1e-6)
    np.testing.assert_array_equal(train["cate_id"], np.array(_codes(first_genre)[0])[:n_train][order])
    np.testing.assert_array_equal(train["occupation"],
                                  np.array(_codes([u["occupation"] for u in users])[0])[:n_train][order])
    np.testing.assert_array_equal(train["like"], np.array([r == 5 for *_, r in rows], "float32")[:n_train][order])
    assert "unknown" in ds.info["cate_ids"]


def test_select_task_gives_a_single_task_view(ml1m):
    _, ds = ml1m
    like = ds.select_task("like")
    assert like.labels == ("label",) and not like.is_multitask
    np.testing.assert_array_equal(like.splits["test"]["label"], ds.splits["test"]["like"])
    np.testing.assert_array_equal(like.positive_rate("val"), ds.positive_rate("val", "like"))
    assert "pos rate" in like.summary() and "pos like" in ds.summary()
    with pytest.raises(ValueError, match=r"no label column 'rating'.*Received: label='rating'"):
        ds.select_task("rating")


def test_schema_validation_of_the_container():
    split = {"uid": [0, 1], "pid": [0, 1], "domain": [0, 0], "a": [0.0, 1.0], "b": [1.0, 1.0], "x": [0.5, 0.1]}
    kwargs = dict(name="t", n_domains=1, vocab_sizes={"uid": 2, "pid": 2, "domain": 1},
                  domain_names=["d"], info={})
    ds = MultiDomainDataset(splits={s: dict(split) for s in ("train", "val", "test")},
                            labels=("a", "b"), dense_features=("x",), **kwargs)
    assert ds.column_names == ("uid", "pid", "domain", "x", "a", "b")
    bad = dict(split, b=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"`b` must be 0.0 or 1.0. Received: \[2.0\]"):
        MultiDomainDataset(splits={s: bad for s in ("train", "val", "test")}, labels=("a", "b"), **kwargs)
    bad = dict(split, x=[np.nan, 0.0])
    with pytest.raises(ValueError, match="dense feature `x` must be finite"):
        MultiDomainDataset(splits={s: bad for s in ("train", "val", "test")}, labels=("a",),
                           dense_features=("x",), **kwargs)
    with pytest.raises(ValueError, match=r"`vocab_sizes` lacks \['g'\]"):
        MultiDomainDataset(splits={s: dict(split, g=[0, 0]) for s in ("train", "val", "test")},
                           labels=("a",), features=("uid", "pid", "domain", "g"), **kwargs)
    with pytest.raises(ValueError, match=r"duplicates \['a'\]"):
        MultiDomainDataset(splits={s: split for s in ("train", "val", "test")}, labels=("a",),
                           dense_features=("a",), **kwargs)
    with pytest.raises(ValueError, match=r"lacks columns \['label'\]"):
        MultiDomainDataset(splits={s: split for s in ("train", "val", "test")}, **kwargs)


# --------------------------------------------------------------------------- #
# Synthetic multi-task data.
# --------------------------------------------------------------------------- #


def test_synthetic_multitask_is_deterministic_and_correlated():
    a = load_dataset("synthetic-mt", seed=5, n_rows=6000)
    b = load_dataset("synthetic-mt", seed=5, n_rows=6000)
    c = load_dataset("synthetic-mt", seed=6, n_rows=6000)
    for column in a.column_names:
        np.testing.assert_array_equal(_rows(a, column), _rows(b, column))
    assert not np.array_equal(_rows(a, "click"), _rows(c, "click"))
    assert a.labels == ("click", "like") and a.features == m3.FEATURES and a.dense_features == ("age",)
    assert [a.num_rows(s) for s in ("train", "val", "test")] == [4800, 600, 600]
    click, like = _rows(a, "click"), _rows(a, "like")
    assert abs(click.mean() - 0.575) < 0.03 and abs(like.mean() - 0.226) < 0.03
    assert np.corrcoef(click, like)[0, 1] > 0.2
    independent = load_dataset("synthetic-mt", seed=5, n_rows=6000, label_correlation=0.0,
                               signal=0.0, popularity=0.0, shift=0.0, task_shift=0.0)
    assert abs(np.corrcoef(_rows(independent, "click"), _rows(independent, "like"))[0, 1]) < 0.05
    # Domains follow the age code, as in M3oE; every domain is present.
    age = _rows(a, "age") * 55 + 1
    domain = _rows(a, "domain")
    for code, d in AGE_DOMAIN.items():
        assert set(domain[np.isclose(age, code, atol=1e-3)]) <= {d}
    assert set(domain) == {0, 1, 2}


def test_synthetic_multitask_planted_effects():
    ds = load_dataset("synthetic-mt", seed=1, n_rows=20000)
    oracle = ds.info["oracle_test_auc"]
    assert all(0.7 < v < 1.0 for task in ("click", "like") for v in oracle[task])
    # Task effects: the two tasks' positive rates differ per domain in different ways.
    rates = np.array([ds.positive_rate("train", t) for t in ("click", "like")])
    assert not np.allclose(rates[0] - rates[0].mean(), rates[1] - rates[1].mean(), atol=0.01)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['n_domains'\] for dataset 'synthetic-mt'"):
        load_dataset("synthetic-mt", n_domains=4)
    with pytest.raises(ValueError, match="Received: label_correlation=1.0"):
        load_dataset("synthetic-mt", label_correlation=1.0)
