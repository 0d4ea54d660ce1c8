"""Per-domain split arithmetic and behaviour, the on-disk cache, the dataset container."""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import zipfile

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from mlora_tf.data import InteractionTable, MultiDomainDataset, cache
from mlora_tf.data.split import split_by_domain, split_indices, split_sizes


def closed_form(n: int) -> tuple[int, int, int]:
    """datasets.md §1.3, in integer arithmetic."""
    a = -(-2 * n // 5)
    if a == 1:
        return n - 1, 0, 1
    test = -(-a // 2)
    return n - a, a - test, test


# --------------------------------------------------------------------------- #
# split_sizes
# --------------------------------------------------------------------------- #


def test_split_sizes_match_the_documented_table():
    table = {2: (1, 0, 1), 3: (1, 1, 1), 4: (2, 1, 1), 5: (3, 1, 1), 6: (3, 1, 2),
             7: (4, 1, 2), 8: (4, 2, 2), 9: (5, 2, 2), 10: (6, 2, 2), 11: (6, 2, 3),
             12: (7, 2, 3), 20: (12, 4, 4), 21: (12, 4, 5)}
    assert {n: split_sizes(n) for n in table} == table


def test_split_sizes_match_the_closed_form_for_many_n():
    ns = list(range(2, 5000)) + [246_440, 753_769, 1_000_209, 1_999_999, 2_000_000]
    for n in ns:
        assert split_sizes(n) == closed_form(n), n
    # Table 1 of the paper from the reported gender counts (datasets.md §2.6).
    assert split_sizes(246_440) == (147_864, 49_288, 49_288)
    assert split_sizes(753_769) == (452_261, 150_754, 150_754)


@pytest.mark.parametrize("n", [0, 1, -3, 2.5])
def test_split_sizes_rejects_too_few_rows(n):
    with pytest.raises(ValueError, match="at least 2 rows"):
        split_sizes(n)


@pytest.mark.parametrize(
    "fractions", [(0.6, 0.2, 0.1), (0.6, 0.4), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1), "abc"]
)
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_sizes(10, fractions)


def test_split_sizes_with_other_fractions_follow_sklearn():
    for n in range(2, 300):
        train, val, test = split_sizes(n, (0.8, 0.1, 0.1))
        held = math.ceil((1.0 - 0.8) * n)
        assert train == n - held and train + val + test == n


# --------------------------------------------------------------------------- #
# split_indices
# --------------------------------------------------------------------------- #


def test_split_indices_sizes_and_partition_for_many_n(caplog):
    rng = np.random.default_rng(0)
    for n in range(2, 160):
        for labels in (rng.random(n) < 0.3, np.zeros(n), np.eye(1, n, 0)[0]):
            train, val, test, _ = split_indices(labels.astype(np.float32), domain_label="x")
            assert (len(train), len(val), len(test)) == split_sizes(n), n
            together = np.concatenate([train, val, test])
            assert sorted(together.tolist()) == list(range(n))


def test_split_matches_sklearn_on_source_order():
    rng = np.random.default_rng(1)
    labels = (rng.random(517) < 0.23).astype(np.float32)
    train, val, test, fell_back = split_indices(labels, seed=123)
    assert not fell_back
    index = np.arange(len(labels))
    ref_train, rest = train_test_split(index, test_size=0.4, random_state=123, stratify=labels)
    ref_val, ref_test = train_test_split(
        rest, test_size=0.5, random_state=123, stratify=labels[rest]
    )
    for got, ref in ((train, ref_train), (val, ref_val), (test, ref_test)):
        np.testing.assert_array_equal(got, ref)


def test_stratification_keeps_label_mix():
    labels = np.array([1.0] * 50 + [0.0] * 150, dtype=np.float32)
    train, val, test, _ = split_indices(labels)
    assert labels[train].sum() == 30 and labels[val].sum() == 10 and labels[test].sum() == 10


def test_unstratifiable_domain_falls_back_with_a_warning(caplog):
    labels = np.zeros(30, dtype=np.float32)
    labels[4] = 1.0  # a class with a single member
    with caplog.at_level(logging.WARNING):
        train, val, test, fell_back = split_indices(labels, domain_label="7 ('farmer')")
    assert fell_back
    assert (len(train), len(val), len(test)) == split_sizes(30)
    assert any("7 ('farmer')" in r.getMessage() for r in caplog.records)


def test_split_seed_matters():
    labels = (np.arange(100) % 3 == 0).astype(np.float32)
    a = split_indices(labels, seed=123)[0]
    b = split_indices(labels, seed=123)[0]
    c = split_indices(labels, seed=5)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.sort(a), np.sort(c))


def _table(domains, labels, n_domains=2):
    n = len(domains)
    return InteractionTable(
        name="toy",
        n_domains=n_domains,
        vocab_sizes={"uid": n, "pid": n, "domain": n_domains},
        domain_names=[f"d{i}" for i in range(n_domains)],
        columns={"uid": np.arange(n), "pid": np.arange(n)[::-1].copy(),
                 "domain": np.asarray(domains), "label": np.asarray(labels, np.float32)},
    )


def test_domain_with_one_row_is_an_error_naming_it():
    table = _table([0] * 20 + [1], [0, 1] * 10 + [1])
    with pytest.raises(ValueError, match=r"Domain 1 \('d1'\) of toy has 1 row"):
        split_by_domain(table)


def test_empty_domain_is_an_error_naming_it():
    table = _table([0] * 20, [0, 1] * 10, n_domains=3)
    with pytest.raises(ValueError, match=r"Domain 1 \('d1'\) of toy has 0 row"):
        split_by_domain(table)


def test_split_by_domain_groups_rows_and_uses_source_order():
    rng = np.random.default_rng(3)
    domains = rng.integers(0, 2, 400)
    labels = (rng.random(400) < 0.3).astype(np.float32)
    table = _table(domains, labels)
    splits, info = split_by_domain(table, seed=123)
    assert info["seed"] == 123 and info["fractions"] == [0.6, 0.2, 0.2]
    for d in range(2):
        rows = np.flatnonzero(domains == d)  # source order
        ref_train, _ = train_test_split(rows, test_size=0.4, random_state=123,
                                        stratify=labels[rows])
        got = splits["train"]["uid"][splits["train"]["domain"] == d]
        np.testing.assert_array_equal(got, ref_train)
    for s in ("train", "val", "test"):
        assert np.all(np.diff(splits[s]["domain"]) >= 0)
        np.testing.assert_array_equal(splits[s]["pid"], 399 - splits[s]["uid"])


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "1", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        split_by_domain(_table([0, 0, 1, 1], [0, 1, 0, 1]), seed=seed)


# --------------------------------------------------------------------------- #
# MultiDomainDataset
# --------------------------------------------------------------------------- #


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    domains = np.repeat([0, 1, 2], [50, 30, 20])
    labels = (rng.random(100) < 0.4).astype(np.float32)
    table = InteractionTable(
        name="toy",
        n_domains=3,
        vocab_sizes={"uid": 10, "pid": 7, "domain": 3},
        domain_names=["a", "b", "c"],
        columns={"uid": rng.integers(0, 10, 100), "pid": rng.integers(0, 7, 100),
                 "domain": domains, "label": labels},
    )
    splits, info = split_by_domain(table)
    return MultiDomainDataset("toy", 3, table.vocab_sizes, ["a", "b", "c"], splits,
                              {"split": info}), table


def test_dataset_accessors():
    ds, table = _dataset()
    assert ds.features == ("uid", "pid", "domain")
    assert ds.sizes() == {
        "train": [split_sizes(n)[0] for n in (50, 30, 20)],
        "val": [split_sizes(n)[1] for n in (50, 30, 20)],
        "test": [split_sizes(n)[2] for n in (50, 30, 20)],
    }
    assert ds.num_rows("train") == sum(ds.sizes()["train"])
    assert ds.num_rows("val", domain=2) == split_sizes(20)[1]
    part = ds.domain_slice("test", 1)
    assert set(part) == {"uid", "pid", "domain", "label"}
    assert np.all(part["domain"] == 1) and len(part["uid"]) == split_sizes(30)[2]
    rates = ds.positive_rate("train")
    for d in range(3):
        np.testing.assert_allclose(rates[d], ds.domain_slice("train", d)["label"].mean())
    text = ds.summary()
    assert "toy" in text and "0 a" in text and "2 c" in text and "total" in text
    assert len(text.splitlines()) == 3 + 3
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        ds.num_rows("dev")
    with pytest.raises(ValueError, match="domain=3"):
        ds.domain_slice("train", 3)


def test_dataset_validates_its_arrays():
    ds, _ = _dataset()
    splits = {s: dict(c) for s, c in ds.splits.items()}
    splits["train"]["uid"] = splits["train"]["uid"] + 10
    with pytest.raises(ValueError, match=r"`uid` ids must lie in \[0, 10\)"):
        MultiDomainDataset("toy", 3, ds.vocab_sizes, ds.domain_names, splits, {})
    splits = {s: dict(c) for s, c in ds.splits.items()}
    splits["val"]["label"] = splits["val"]["label"] * 2
    with pytest.raises(ValueError, match="0.0 or 1.0"):
        MultiDomainDataset("toy", 3, ds.vocab_sizes, ds.domain_names, splits, {})
    with pytest.raises(ValueError, match="one domain name per domain"):
        MultiDomainDataset("toy", 3, ds.vocab_sizes, ["a"], ds.splits, {})
    with pytest.raises(ValueError, match="lacks splits"):
        MultiDomainDataset("toy", 3, ds.vocab_sizes, ds.domain_names,
                           {"train": ds.splits["train"]}, {})


def test_dataset_sorts_ungrouped_rows_by_domain():
    ds, _ = _dataset()
    splits = {s: {k: v[::-1].copy() for k, v in c.items()} for s, c in ds.splits.items()}
    flipped = MultiDomainDataset("toy", 3, ds.vocab_sizes, ds.domain_names, splits, {})
    assert flipped.sizes() == ds.sizes()
    assert np.all(flipped.domain_slice("train", 1)["domain"] == 1)


# --------------------------------------------------------------------------- #
# cache
# --------------------------------------------------------------------------- #

KEY_ARGS = dict(loader="ml-1m", raw_file_hashes={"users.dat": "aa", "ratings.dat": "bb"},
                domain_split="gender", fractions=(0.6, 0.2, 0.2), seed=123)


@pytest.mark.parametrize(
    "change",
    [dict(loader="ml-100k"), dict(raw_file_hashes={"users.dat": "aa", "ratings.dat": "bc"}),
     dict(domain_split="age"), dict(fractions=(0.5, 0.25, 0.25)), dict(seed=124),
     dict(extra={"x": 1})],
)
def test_cache_key_depends_on_every_input(change):
    base = cache.make_cache_key(**KEY_ARGS)
    assert base == cache.make_cache_key(**KEY_ARGS)
    assert cache.make_cache_key(**{**KEY_ARGS, **change}) != base


def test_cache_key_depends_on_schema_version(monkeypatch):
    base = cache.make_cache_key(**KEY_ARGS)
    monkeypatch.setattr(cache, "SCHEMA_VERSION", cache.SCHEMA_VERSION + 1)
    assert cache.make_cache_key(**KEY_ARGS) != base


def test_hash_file_reads_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 50)
    whole = cache.hash_file(path)
    monkeypatch.setattr(cache, "_CHUNK", 7)
    assert cache.hash_file(path) == whole
    path.write_bytes(bytes(range(256)) * 49 + bytes(range(255)) + b"\x00")
    assert cache.hash_file(path) != whole


def test_save_and_load_round_trip_atomically(tmp_path):
    ds, _ = _dataset()
    path = str(tmp_path / "c" / "toy.npz")
    cache.save_dataset(ds, path, key="k1")
    assert os.listdir(tmp_path / "c") == ["toy.npz"]  # no temp file left behind
    back = cache.load_cached(path, "k1")
    assert back is not None
    assert back.sizes() == ds.sizes() and back.domain_names == ds.domain_names
    assert back.info == json.loads(json.dumps(ds.info))
    for s in ("train", "val", "test"):
        for c in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(back.splits[s][c], ds.splits[s][c])
            assert back.splits[s][c].dtype == ds.splits[s][c].dtype
    assert cache.load_cached(path, "other-key") is None
    assert cache.load_cached(str(tmp_path / "absent.npz"), "k1") is None


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    ds, _ = _dataset()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        cache.save_dataset(ds, str(tmp_path / "toy.npz"), key="k")
    assert os.listdir(tmp_path) == []


def _rewrite_npz(path, edit):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_array", "drop_entry",
                                    "bad_meta", "empty"])
def test_damaged_cache_file_is_ignored_with_a_warning(tmp_path, caplog, damage):
    ds, _ = _dataset()
    path = str(tmp_path / "toy.npz")
    cache.save_dataset(ds, path, key="k")
    if damage == "truncate":
        data = pathlib.Path(path).read_bytes()
        pathlib.Path(path).write_bytes(data[: len(data) - 100])
    elif damage == "garbage":
        pathlib.Path(path).write_bytes(b"not a zip file at all")
    elif damage == "empty":
        pathlib.Path(path).write_bytes(b"")
    elif damage == "flip_array":
        def edit(arrays):
            arrays["train__label"] = 1.0 - arrays["train__label"]
        _rewrite_npz(path, edit)
    elif damage == "drop_entry":
        _rewrite_npz(path, lambda arrays: arrays.pop("test__pid"))
    elif damage == "bad_meta":
        def edit(arrays):
            arrays["__meta__"] = np.array("{not json")
        _rewrite_npz(path, edit)
    with caplog.at_level(logging.WARNING):
        assert cache.load_cached(path, "k") is None
    assert any(path in r.getMessage() for r in caplog.records)


def test_get_or_build_builds_once_then_hits(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return _dataset()[0]

    kwargs = dict(cache_dir=str(tmp_path), loader="toy", domain_split="x", key="abc" * 10)
    a = cache.get_or_build(build, **kwargs)
    b = cache.get_or_build(build, **kwargs)
    assert len(calls) == 1
    assert a.info["cache_status"] == "built" and b.info["cache_status"] == "hit"
    assert b.info["cache_key"] == "abc" * 10
    c = cache.get_or_build(build, **{**kwargs, "cache_dir": None})
    assert len(calls) == 2 and c.info["cache_status"] == "disabled"


def test_unwritable_cache_folder_does_not_crash(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING):
        ds = cache.get_or_build(lambda: _dataset()[0], cache_dir=str(blocker / "sub"),
                                loader="toy", domain_split="x", key="k" * 20)
    assert ds.num_rows("train") > 0
    assert any("Could not write cache" in r.getMessage() for r in caplog.records)


def test_resolve_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "env"))
    assert cache.resolve_cache_dir(None) == str(tmp_path / "env")
    assert cache.resolve_cache_dir(False) is None
    assert cache.resolve_cache_dir(tmp_path / "x") == str(tmp_path / "x")
    monkeypatch.delenv("MLORA_TF_CACHE")
    assert cache.resolve_cache_dir(None) == os.path.join(
        os.path.expanduser("~"), ".cache", "mlora_tf"
    )
    with pytest.raises(ValueError, match="cache_dir"):
        cache.resolve_cache_dir(3)


def test_cache_file_is_a_plain_npz_without_pickles(tmp_path):
    ds, _ = _dataset()
    path = str(tmp_path / "toy.npz")
    cache.save_dataset(ds, path, key="k")
    with zipfile.ZipFile(path) as z:
        names = sorted(z.namelist())
    assert "__meta__.npy" in names and "train__uid.npy" in names and len(names) == 13
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["__meta__"][()]))
    assert meta["key"] == "k" and meta["schema_version"] == cache.SCHEMA_VERSION
    assert meta["dataset"]["domain_names"] == ["a", "b", "c"]
