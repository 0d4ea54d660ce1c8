"""MovieLens-1M / -100K loaders on tiny fixture files written in the raw formats."""

from __future__ import annotations

import collections
import logging
import os

import numpy as np
import pytest

from mlora_tf.data import (
    MovieLensFilesNotFoundError,
    available_datasets,
    load_dataset,
    movielens,
    split_sizes,
)
from tests.fixtures_movielens import replace_line, write_ml1m, write_ml100k

N_DOMAINS = {"gender": 2, "age": 7, "occupation": 21}
WRITERS = {"ml-1m": write_ml1m, "ml-100k": write_ml100k}


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    """Never let a test write into the real default cache folder."""
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.delenv("MLORA_TF_DATA_DIR", raising=False)


def _all_rows(ds):
    return {
        column: np.concatenate([ds.splits[s][column] for s in ("train", "val", "test")])
        for column in ("uid", "pid", "domain", "label")
    }


# --------------------------------------------------------------------------- #
# Canonical table: labels, domains, vocabularies, orphans.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("variant", ["ml-1m", "ml-100k"])
def test_label_is_one_iff_rating_is_five(tmp_path, variant):
    fixture = WRITERS[variant](tmp_path / "raw")
    ds = load_dataset(variant, data_dir=tmp_path / "raw", cache_dir=False)
    rating = {(u, p): r for u, p, r in fixture.ratings}
    rows = _all_rows(ds)
    assert len(rows["uid"]) == len(fixture.ratings)
    expected = [float(rating[(u, p)] == 5) for u, p in zip(rows["uid"], rows["pid"])]
    np.testing.assert_array_equal(rows["label"], np.array(expected, dtype=np.float32))
    assert rows["label"].dtype == np.float32
    assert all(ds.splits[s]["uid"].dtype == np.int64 for s in ("train", "val", "test"))
    assert ds.info["positives"] == sum(r == 5 for _, _, r in fixture.ratings)


@pytest.mark.parametrize("variant", ["ml-1m", "ml-100k"])
@pytest.mark.parametrize("domain_split", ["gender", "age", "occupation"])
def test_domain_maps_give_expected_per_domain_counts(tmp_path, variant, domain_split):
    fixture = WRITERS[variant](tmp_path / "raw")
    ds = load_dataset(
        variant, data_dir=tmp_path / "raw", domain_split=domain_split, cache_dir=False
    )
    assert ds.name == f"{variant}/{domain_split}"
    assert ds.n_domains == N_DOMAINS[domain_split]
    assert ds.vocab_sizes["domain"] == ds.n_domains
    rows = _all_rows(ds)
    by_user = {u.uid: u.domain(domain_split) for u in fixture.users}
    np.testing.assert_array_equal(rows["domain"], [by_user[u] for u in rows["uid"]])
    got = [
        (sum(ds.num_rows(s, d) for s in ("train", "val", "test")),
         int(sum(ds.domain_slice(s, d)["label"].sum() for s in ("train", "val", "test"))))
        for d in range(ds.n_domains)
    ]
    assert got == fixture.expected_counts(domain_split, ds.n_domains)


@pytest.mark.parametrize("variant", ["ml-1m", "ml-100k"])
def test_domain_names(tmp_path, variant):
    fixture = WRITERS[variant](tmp_path / "raw")
    names = {
        split: load_dataset(
            variant, data_dir=tmp_path / "raw", domain_split=split, cache_dir=False
        ).domain_names
        for split in N_DOMAINS
    }
    assert names["gender"] == ["F", "M"]
    assert names["age"] == ["Under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
    assert names["occupation"] == fixture.occupation_names
    if variant == "ml-1m":
        assert names["occupation"][0] == "other/not specified"
        assert names["occupation"][20] == "writer"


def test_ml1m_age_codes_are_contiguous_not_the_original_gap(tmp_path):
    write_ml1m(tmp_path)
    ds = load_dataset("ml-1m", data_dir=tmp_path, domain_split="age", cache_dir=False)
    assert sorted(set(_all_rows(ds)["domain"].tolist())) == list(range(7))
    by_code = {}
    users = movielens.parse_raw_file(str(tmp_path / "users.dat"), movielens.ML1M_USERS)
    rows = _all_rows(ds)
    user_domain = dict(zip(rows["uid"].tolist(), rows["domain"].tolist()))
    for uid, code in zip(users["UserID"].tolist(), users["Age"].tolist()):
        if uid in user_domain:
            by_code[code] = user_domain[uid]
    assert by_code == {1: 0, 18: 1, 25: 2, 35: 3, 45: 4, 50: 5, 56: 6}


def test_ml100k_age_binning_boundaries():
    ages = np.array([0, 7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 99])
    users = movielens.Users(
        uid=np.arange(1, len(ages) + 1),
        gender=np.array(["F"] * len(ages), dtype=object),
        age=ages,
        occupation=np.zeros(len(ages), dtype=np.int64),
        occupation_names=list(movielens.ML100K_OCCUPATIONS),
        path="u.user",
    )
    ids, names = movielens.DOMAIN_SPLITS["age"](movielens.ML100K, users)
    np.testing.assert_array_equal(ids, [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])
    assert len(names) == 7


def test_ml100k_occupation_order_comes_from_u_occupation(tmp_path):
    shuffled = write_ml100k(tmp_path / "a", shuffle_occupations=True)
    ds = load_dataset("ml-100k", data_dir=tmp_path / "a", domain_split="occupation",
                      cache_dir=False)
    assert ds.domain_names == shuffled.occupation_names
    assert ds.domain_names != list(movielens.ML100K_OCCUPATIONS)


def test_ml100k_without_u_occupation_uses_standard_list(tmp_path):
    fixture = write_ml100k(tmp_path, with_occupation_file=False)
    assert not os.path.exists(tmp_path / "u.occupation")
    ds = load_dataset("ml-100k", data_dir=tmp_path, domain_split="occupation", cache_dir=False)
    assert ds.domain_names == list(movielens.ML100K_OCCUPATIONS)
    rows = _all_rows(ds)
    student = next(u for u in fixture.users if u.occupation_raw == "student")
    assert set(rows["domain"][rows["uid"] == student.uid].tolist()) == {18}


@pytest.mark.parametrize("variant", ["ml-1m", "ml-100k"])
def test_vocab_sizes_and_orphan_ratings_dropped(tmp_path, variant, caplog):
    fixture = WRITERS[variant](tmp_path, orphan_ratings=7, unrated_users=2)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(variant, data_dir=tmp_path, cache_dir=False)
    assert ds.info["dropped_orphan_ratings"] == 7
    assert any("dropped 7 ratings" in r.getMessage() for r in caplog.records)
    # uid vocab: max over the users file (the unrated users have the highest
    # ids); pid vocab: over kept ratings only (orphans carry a larger MovieID).
    expected = fixture.expected_vocab()
    assert ds.vocab_sizes == {**expected, "domain": 2}
    assert expected["uid"] == fixture.users[-1].uid + 1
    rows = _all_rows(ds)
    assert len(rows["uid"]) == len(fixture.ratings)
    assert set(rows["uid"].tolist()) <= {u.uid for u in fixture.users}


def test_crlf_line_ends_give_the_same_dataset(tmp_path):
    write_ml1m(tmp_path / "lf", line_end="\n")
    write_ml1m(tmp_path / "crlf", line_end="\r\n")
    a = load_dataset("ml-1m", data_dir=tmp_path / "lf", cache_dir=False)
    b = load_dataset("ml-1m", data_dir=tmp_path / "crlf", cache_dir=False)
    for split in ("train", "val", "test"):
        for column in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(a.splits[split][column], b.splits[split][column])


# --------------------------------------------------------------------------- #
# Split: sizes, stratification, partition.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("variant", ["ml-1m", "ml-100k"])
@pytest.mark.parametrize("domain_split", ["gender", "age", "occupation"])
def test_split_sizes_and_stratification_per_domain(tmp_path, variant, domain_split):
    WRITERS[variant](tmp_path, n_users=63)
    ds = load_dataset(variant, data_dir=tmp_path, domain_split=domain_split, cache_dir=False)
    assert ds.info["split"]["unstratified_domains"] == []
    for d in range(ds.n_domains):
        n = sum(ds.num_rows(s, d) for s in ("train", "val", "test"))
        assert (ds.num_rows("train", d), ds.num_rows("val", d), ds.num_rows("test", d)) == (
            split_sizes(n)
        )
        n_pos = sum(float(ds.domain_slice(s, d)["label"].sum()) for s in ("train", "val", "test"))
        for split, fraction, tolerance in (("train", 0.6, 1.0), ("val", 0.2, 1.5),
                                            ("test", 0.2, 1.5)):
            pos = float(ds.domain_slice(split, d)["label"].sum())
            assert abs(pos - fraction * n_pos) <= tolerance, (d, split, pos, n_pos)


def test_splits_partition_each_domain(tmp_path):
    fixture = write_ml1m(tmp_path, n_users=63)
    ds = load_dataset("ml-1m", data_dir=tmp_path, domain_split="age", cache_dir=False)
    seen = collections.Counter()
    for split in ("train", "val", "test"):
        c = ds.splits[split]
        assert np.all(np.diff(c["domain"]) >= 0), "rows must be grouped by domain"
        seen.update(zip(c["uid"].tolist(), c["pid"].tolist()))
    assert seen == collections.Counter((u, p) for u, p, _ in fixture.ratings)


def test_seed_changes_membership_but_not_sizes(tmp_path):
    write_ml1m(tmp_path)
    a = load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False, seed=123)
    b = load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False, seed=7)
    c = load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False, seed=123)
    assert a.sizes() == b.sizes()
    assert not np.array_equal(a.splits["train"]["pid"], b.splits["train"]["pid"])
    np.testing.assert_array_equal(a.splits["train"]["pid"], c.splits["train"]["pid"])


# --------------------------------------------------------------------------- #
# Folder layout and missing files.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "variant, subdir",
    [("ml-1m", ""), ("ml-1m", "ml-1m"), ("ml-1m", "ml_1m"), ("ml-100k", ""),
     ("ml-100k", "ml-100k")],
)
def test_data_dir_may_be_the_folder_or_its_parent(tmp_path, variant, subdir):
    WRITERS[variant](tmp_path / subdir if subdir else tmp_path)
    ds = load_dataset(variant, data_dir=tmp_path, cache_dir=False)
    assert ds.num_rows("train") > 0
    assert ds.info["data_dir"] == os.path.abspath(tmp_path / subdir if subdir else tmp_path)


def test_default_data_dir_from_environment(tmp_path, monkeypatch):
    write_ml1m(tmp_path / "ml-1m")
    monkeypatch.setenv("MLORA_TF_DATA_DIR", str(tmp_path))
    assert load_dataset("ml-1m", cache_dir=False).num_rows("test") > 0


@pytest.mark.parametrize(
    "variant, files",
    [("ml-1m", ["users.dat", "ratings.dat", "ml-1m.zip", "ml_1m"]),
     ("ml-100k", ["u.user", "u.data", "ml-100k.zip", "u.occupation"])],
)
def test_missing_files_give_a_clear_message(tmp_path, variant, files):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(variant, data_dir=tmp_path / "nowhere", cache_dir=False)
    assert isinstance(error.value, MovieLensFilesNotFoundError)
    message = str(error.value)
    for expected in files + [str(tmp_path / "nowhere")]:
        assert expected in message


def test_partial_folder_names_the_missing_file(tmp_path):
    write_ml1m(tmp_path / "ml-1m")
    os.remove(tmp_path / "ml-1m" / "ratings.dat")
    with pytest.raises(FileNotFoundError, match=r"has \['users.dat'\] but lacks \['ratings.dat'\]"):
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False)


# --------------------------------------------------------------------------- #
# Malformed files.
# --------------------------------------------------------------------------- #

ML1M_BAD_LINES = [
    ("users.dat", 3, "3::M::25::15", "expected 5 fields", "3::M::25::15"),
    ("users.dat", 4, "4::X::25::15::55117", "Gender", "'X'"),
    ("users.dat", 5, "5::F::20::15::55117", "Age", "'20'"),
    ("users.dat", 6, "6::F::25::21::55117", "Occupation", "'21'"),
    ("users.dat", 2, "two::F::25::1::55117", "UserID", "'two'"),
    ("ratings.dat", 7, "1::abc::5::978300760", "MovieID", "'abc'"),
    ("ratings.dat", 9, "1::5::6::978300760", "Rating", "'6'"),
    ("ratings.dat", 10, "1::5::0::978300760", "Rating", "'0'"),
    ("ratings.dat", 12, "1::5::3::978300760::9", "expected 4 fields", "found 5"),
    ("ratings.dat", 13, "1:5::3::978300760", "expected 4 fields", "found 3"),
    ("ratings.dat", 14, "1::5::4.5::978300760", "Rating", "'4.5'"),
]


@pytest.mark.parametrize("filename, lineno, line, field, value", ML1M_BAD_LINES)
def test_ml1m_malformed_line_names_file_line_and_value(tmp_path, filename, lineno, line,
                                                      field, value):
    write_ml1m(tmp_path)
    path = str(tmp_path / filename)
    replace_line(path, lineno, line)
    with pytest.raises(ValueError) as error:
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False)
    message = str(error.value)
    assert path in message
    assert f"line {lineno}" in message
    assert field in message
    assert value in message


ML100K_BAD_LINES = [
    ("u.user", 2, "2|53|Q|other|94043", "Gender", "'Q'"),
    ("u.user", 3, "3|23|M|astronaut|32067", "Occupation", "'astronaut'"),
    ("u.user", 4, "4|old|M|writer|43537", "Age", "'old'"),
    ("u.data", 5, "1\t6\t7\t881250949", "Rating", "'7'"),
    ("u.data", 6, "1 6 4 881250949", "expected 4 fields", "found 1"),
]


@pytest.mark.parametrize("filename, lineno, line, field, value", ML100K_BAD_LINES)
def test_ml100k_malformed_line_names_file_line_and_value(tmp_path, filename, lineno, line,
                                                        field, value):
    write_ml100k(tmp_path)
    path = str(tmp_path / filename)
    replace_line(path, lineno, line)
    with pytest.raises(ValueError) as error:
        load_dataset("ml-100k", data_dir=tmp_path, cache_dir=False)
    message = str(error.value)
    assert path in message and f"line {lineno}" in message
    assert field in message and value in message


def test_blank_lines_are_skipped_but_counted_in_line_numbers(tmp_path):
    fixture = write_ml1m(tmp_path)
    path = tmp_path / "ratings.dat"
    lines = path.read_text().splitlines()
    lines.insert(3, "")
    lines.insert(5, "   ")
    path.write_text("\n".join(lines) + "\n\n")
    ds = load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False)
    assert sum(ds.num_rows(s) for s in ("train", "val", "test")) == len(fixture.ratings)
    replace_line(str(path), 20, "1::2::9::3")
    with pytest.raises(ValueError, match=r"line 20 .*Received: '9'"):
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False)
    # The line-by-line locator, scanning from the top, skips the same lines.
    error = movielens._scan_for_error(str(path), movielens.ML1M_RATINGS)
    assert "Malformed line 20 " in str(error)


@pytest.mark.parametrize("variant, filename", [("ml-1m", "ratings.dat"), ("ml-1m", "users.dat"),
                                               ("ml-100k", "u.data"), ("ml-100k", "u.occupation")])
def test_empty_file_is_named(tmp_path, variant, filename):
    WRITERS[variant](tmp_path)
    (tmp_path / filename).write_text("")
    with pytest.raises(ValueError, match="empty") as error:
        load_dataset(variant, data_dir=tmp_path, cache_dir=False)
    assert str(tmp_path / filename) in str(error.value)


def test_duplicate_user_is_an_error(tmp_path):
    write_ml1m(tmp_path)
    replace_line(str(tmp_path / "users.dat"), 9, "3::F::25::1::12345")
    expected = r"UserID 3 appears on more than one line \(lines \[3, 9\]\)"
    with pytest.raises(ValueError, match=expected):
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False)


def test_unknown_domain_split_lists_valid_ones(tmp_path):
    write_ml1m(tmp_path)
    with pytest.raises(ValueError, match=r"\['age', 'gender', 'occupation'\].*'zip'"):
        load_dataset("ml-1m", data_dir=tmp_path, domain_split="zip", cache_dir=False)


# --------------------------------------------------------------------------- #
# Cache.
# --------------------------------------------------------------------------- #


def _forbid_parsing(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("raw files were parsed although the cache should hit")

    monkeypatch.setattr(movielens, "parse_raw_file", boom)


def _assert_same(a, b):
    assert a.sizes() == b.sizes() and a.vocab_sizes == b.vocab_sizes
    assert a.domain_names == b.domain_names and a.name == b.name
    for split in ("train", "val", "test"):
        for column in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(a.splits[split][column], b.splits[split][column])
            assert a.splits[split][column].dtype == b.splits[split][column].dtype


def test_second_load_is_a_cache_hit(tmp_path, monkeypatch):
    write_ml1m(tmp_path / "raw", orphan_ratings=3)
    cache = tmp_path / "cache"
    first = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=cache)
    assert first.info["cache_status"] == "built"
    assert len(list(cache.glob("*.npz"))) == 1
    _forbid_parsing(monkeypatch)
    second = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=cache)
    assert second.info["cache_status"] == "hit"
    assert second.info["dropped_orphan_ratings"] == 3
    assert second.info["cache_key"] == first.info["cache_key"]
    _assert_same(first, second)


@pytest.mark.parametrize(
    "change",
    ["raw_byte", "seed", "domain_split", "fractions"],
)
def test_cache_key_changes_force_a_rebuild(tmp_path, monkeypatch, change):
    write_ml1m(tmp_path / "raw")
    cache = tmp_path / "cache"
    kwargs = dict(data_dir=tmp_path / "raw", cache_dir=cache)
    first = load_dataset("ml-1m", **kwargs)
    if change == "raw_byte":
        path = tmp_path / "raw" / "ratings.dat"
        lines = path.read_text().splitlines()
        lineno = next(i for i, line in enumerate(lines, 1) if line.split("::")[2] == "5")
        uid, pid, _, stamp = lines[lineno - 1].split("::")
        replace_line(str(path), lineno, f"{uid}::{pid}::4::{stamp}")  # one byte: 5 -> 4
    else:
        kwargs.update(
            {"seed": dict(seed=124), "domain_split": dict(domain_split="age"),
             "fractions": dict(fractions=(0.5, 0.25, 0.25))}[change]
        )
    second = load_dataset("ml-1m", **kwargs)
    assert second.info["cache_status"] == "built"
    assert second.info["cache_key"] != first.info["cache_key"]
    assert len(list(cache.glob("*.npz"))) == 2
    if change == "raw_byte":
        assert second.info["positives"] == first.info["positives"] - 1


def test_truncated_cache_file_is_rebuilt(tmp_path, caplog):
    write_ml1m(tmp_path / "raw")
    cache = tmp_path / "cache"
    first = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=cache)
    (path,) = cache.glob("*.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        second = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=cache)
    assert second.info["cache_status"] == "built"
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    _assert_same(first, second)
    third = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=cache)
    assert third.info["cache_status"] == "hit"


def test_cache_disabled_and_default_folder(tmp_path, monkeypatch):
    write_ml1m(tmp_path / "raw")
    ds = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=False)
    assert ds.info["cache_status"] == "disabled"
    assert not (tmp_path / "default-cache").exists()
    ds = load_dataset("ml-1m", data_dir=tmp_path / "raw")  # cache_dir=None -> env folder
    assert ds.info["cache_status"] == "built"
    assert len(list((tmp_path / "default-cache").glob("ml-1m-gender-*.npz"))) == 1


def test_cache_hit_from_a_copy_reports_its_own_folder(tmp_path, monkeypatch):
    write_ml1m(tmp_path / "a")
    cache = tmp_path / "cache"
    load_dataset("ml-1m", data_dir=tmp_path / "a", cache_dir=cache)
    os.rename(tmp_path / "a", tmp_path / "b")
    ds = load_dataset("ml-1m", data_dir=tmp_path / "b", cache_dir=cache)
    assert ds.info["cache_status"] == "hit"
    assert ds.info["data_dir"] == os.path.abspath(tmp_path / "b")


# --------------------------------------------------------------------------- #
# Registry.
# --------------------------------------------------------------------------- #


def test_available_datasets():
    assert available_datasets() == [
        "amazon", "csv", "ml-100k", "ml-100k-m3oe", "ml-1m", "ml-1m-m3oe", "synthetic",
        "synthetic-mt", "taobao",
    ]


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match=r"\['amazon', 'csv', 'ml-100k', 'ml-100k-m3oe', 'ml-1m', 'ml-1m-m3oe', "
                       r"'synthetic', 'synthetic-mt', 'taobao'\].*'ml-10m'"):
        load_dataset("ml-10m")


def test_unknown_option_is_named(tmp_path):
    write_ml1m(tmp_path)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['n_users'\] for dataset 'ml-1m'"):
        load_dataset("ml-1m", data_dir=tmp_path, cache_dir=False, n_users=3)


# --------------------------------------------------------------------------- #
# Files as they come: BOM, CRLF, trailing whitespace, a trailing empty field.
# --------------------------------------------------------------------------- #


def _as_found_in_the_wild(path, sep):
    """The file with a BOM, CRLF line ends, a trailing separator on every third line and
    trailing spaces on every fifth."""
    with open(path, "rb") as f:
        lines = f.read().decode("latin-1").splitlines()
    out = []
    for i, line in enumerate(lines):
        if i % 3 == 1:
            line += sep
        if i % 5 == 2:
            line += "  "
        out.append(line)
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + "\r\n".join(out).encode("latin-1") + b"\r\n")
    return len(lines)


@pytest.mark.parametrize("variant, files", [("ml-100k", {"u.data": "\t", "u.user": "|", "u.occupation": None}),
                                            ("ml-1m", {"ratings.dat": "::", "users.dat": "::"})])
def test_files_as_they_come_give_the_same_dataset(tmp_path, variant, files, caplog):
    WRITERS[variant](tmp_path / "clean", orphan_ratings=3)
    WRITERS[variant](tmp_path / "wild", orphan_ratings=3)
    for name, sep in files.items():
        if sep is None:  # u.occupation: one name per line
            path = tmp_path / "wild" / name
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"  \r\n"))
        else:
            _as_found_in_the_wild(tmp_path / "wild" / name, sep)
    clean = load_dataset(variant, data_dir=tmp_path / "clean", cache_dir=False)
    with caplog.at_level(logging.INFO, logger="absl"):
        wild = load_dataset(variant, data_dir=tmp_path / "wild", cache_dir=False)
    for split in ("train", "val", "test"):
        for column in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(clean.splits[split][column], wild.splits[split][column])
    assert wild.info["dropped_orphan_ratings"] == 3
    ratings = next(n for n in files if n in ("u.data", "ratings.dat"))
    lines = [r.getMessage() for r in caplog.records if ratings in r.getMessage() and "accepted" in r.getMessage()]
    assert len(lines) == 1, lines  # one line per file
    assert "UTF-8 byte-order mark" in lines[0] and "CRLF" in lines[0]
    assert "trailing empty field" in lines[0] and "trailing whitespace" in lines[0]


def test_ml100k_u_data_with_orphan_rows_one_with_a_trailing_tab(tmp_path, caplog):
    """The copy of u.data found in the wild: extra rows of a user missing from u.user,
    one of them ending in a tab. The rows are dropped and counted; nothing fails."""
    fixture = write_ml100k(tmp_path)
    path = tmp_path / "u.data"
    with open(path, "a", encoding="latin-1") as f:
        f.write("944\t10\t5\t881250949\n944\t11\t3\t881250950\t\n944\t12\t4\t881250951\n")
    with caplog.at_level(logging.INFO, logger="absl"):
        ds = load_dataset("ml-100k", data_dir=tmp_path, cache_dir=False)
    assert ds.info["dropped_orphan_ratings"] == 3
    assert sum(ds.num_rows(s) for s in ("train", "val", "test")) == len(fixture.ratings)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "1 line(s) with a trailing empty field" in messages and "dropped 3 ratings" in messages


@pytest.mark.parametrize("variant, filename, line, expected", [
    ("ml-100k", "u.data", "1\t6\t4\t881250949\tx", "found 5"),          # a non-empty fifth field
    ("ml-100k", "u.data", "1\t6\t4\t881250949\t\t", "found 5"),         # two trailing fields
    ("ml-100k", "u.data", "1\t6\t4 5\t881250949", "Received: '4 5'"),  # inner whitespace
    ("ml-1m", "ratings.dat", "1::5::3::978300760::::", "found 5"),
    ("ml-1m", "ratings.dat", "1::5::3::978300760:", "Received: '978300760:'"),
    ("ml-1m", "users.dat", "\xef\xbb\xbf4::F::1::10::48067", "UserID"),  # a BOM inside the file
])
def test_really_malformed_lines_still_fail(tmp_path, variant, filename, line, expected):
    WRITERS[variant](tmp_path)
    path = str(tmp_path / filename)
    replace_line(path, 4, line)
    with pytest.raises(ValueError) as error:
        load_dataset(variant, data_dir=tmp_path, cache_dir=False)
    message = str(error.value)
    assert path in message and "line 4" in message and expected in message, message
