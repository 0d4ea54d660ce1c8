"""`--hash_buckets`: the hashing function, the flag parser, the CSV loader and the
generic (post-load) path, the run folder's record of it, and the refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlora_tf.data import hashing, load_dataset
from mlora_tf.data.csv_loader import load_csv
from mlora_tf.export.vocab import Vocabulary
from tests.test_data_prepare import run_prepare

pytestmark = pytest.mark.usefixtures("isolated_default_cache")

SYNTHETIC = {"n_rows": 1500, "n_users": 120, "n_items": 60}


def write_clicks(path, n=400, seed=5):
    """A tiny CSV: string user ids, integer item ids, a text extra feature, 3 sites."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "user": [f"u{i}" for i in rng.integers(0, 80, n)],
        "item": rng.integers(1, 500, n),
        "device": rng.choice(["ios", "web", "android"], n),
        "site": np.array(["a", "b", "c"])[np.arange(n) % 3],
        "click": (rng.random(n) < 0.4).astype(int),
    })
    frame.to_csv(path, index=False)
    return frame


# ----------------------------------------------------------------- the function
def test_hash_is_stable_and_integers_hash_as_their_decimal_text():
    # Pinned: FarmHash Fingerprint64 mod N (a change of the function would re-map every trained id).
    np.testing.assert_array_equal(hashing.hash_ids(np.array(["42", "7", "-3", "a"]), 1000), [736, 88, 699, 939])
    np.testing.assert_array_equal(hashing.hash_ids(np.array([42, 7, -3]), 1000), [736, 88, 699])
    ids = hashing.hash_ids(np.arange(-50, 5000), 97)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 97
    assert len(np.unique(ids)) == 97  # every bucket used


def test_numpy_hash_equals_the_graph_op_and_keras_hashing():
    import keras
    import tensorflow as tf

    strings = np.array(["u1", "u2", "zürich", "", "00042", "never seen"], dtype=object)
    ints = np.array([0, 1, -1, 2**62, 10**12], dtype=np.int64)
    mixed = np.array(["a", 1, "1"], dtype=object)  # an object column of mixed values: each as its text
    np.testing.assert_array_equal(hashing.hash_ids(mixed, 1000), hashing.hash_ids(np.array(["a", "1", "1"]), 1000))
    for values, n in ((strings, 13), (ints, 1000003)):
        expected = hashing.hash_ids(values, n)
        graph = tf.function(lambda x: hashing.hash_tensor(x, n))(tf.constant(values)).numpy()
        np.testing.assert_array_equal(graph, expected)
        np.testing.assert_array_equal(keras.layers.Hashing(num_bins=n)(tf.constant(values)).numpy(), expected)


def test_text_kind_keeps_zero_padded_ids_as_strings():
    assert hashing.text_kind(["1", "20", "-3", "0"]) == "int"
    assert hashing.text_kind(["1", "020"]) == "string"  # "020" and "20" must not share a bucket
    assert hashing.text_kind(["+1"]) == "string"
    assert hashing.text_kind(["-0"]) == "string"
    assert hashing.text_kind(["99999999999999999999"]) == "string"  # beyond int64
    assert hashing.text_kind(["u1", "2"]) == "string"
    ids, kind = hashing.hash_text(pd.Series(["5", "17"]), 50)
    assert kind == "int"
    np.testing.assert_array_equal(ids, hashing.hash_ids(np.array([5, 17]), 50))


@pytest.mark.parametrize("value, message", [
    ("uid", "takes feature:N items"),
    ("uid:0", "must be a positive integer. Received: uid:0"),
    ("uid:-5", "must be a positive integer. Received: uid:-5"),
    ("uid:many", "must be a positive integer. Received: uid:many"),
    ("uid:3,uid:4", "names `uid` twice"),
    (":4", "takes feature:N items"),
])
def test_parse_refuses_bad_values_naming_them(value, message):
    with pytest.raises(ValueError, match=message) as error:
        hashing.parse_hash_buckets(value, "--hash_buckets")
    assert "--hash_buckets" in str(error.value)


def test_parse_forms():
    assert hashing.parse_hash_buckets("uid:10, pid:20") == {"uid": 10, "pid": 20}
    assert hashing.parse_hash_buckets(["uid:10", "pid:20"]) == {"uid": 10, "pid": 20}
    assert hashing.parse_hash_buckets({"uid": 10}) == {"uid": 10}
    assert hashing.parse_hash_buckets(None) == {} and hashing.parse_hash_buckets([]) == {}


# ----------------------------------------------------------------- the CSV loader
def test_csv_loader_hashes_raw_values_instead_of_a_vocabulary(tmp_path):
    frame = write_clicks(tmp_path / "c.csv")
    common = dict(path=str(tmp_path / "c.csv"), domain_column="site", label_column="click",
                  features=["user", "item", "device"], cache_dir=False)
    plain = load_csv(**common)
    hashed = load_csv(**common, hash_buckets="user:64,pid:40")  # a column name or the dataset name
    assert hashed.vocab_sizes == {**plain.vocab_sizes, "uid": 64, "pid": 40}
    assert hashed.info["hash_buckets"] == {"uid": {"buckets": 64, "kind": "string"},
                                           "pid": {"buckets": 40, "kind": "int"}}
    for split in ("train", "val", "test"):  # same rows, same order: the other columns are untouched
        for column in ("domain", "device", "label"):
            np.testing.assert_array_equal(hashed.splits[split][column], plain.splits[split][column])
    # Every row's bucket is the hash of its raw value: the loader's codes map 1:1 to raw values.
    users = pd.factorize(frame["user"])[1].to_numpy()
    items = pd.factorize(frame["item"].astype(str))[1].to_numpy().astype(np.int64)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(hashed.splits[split]["uid"],
                                      hashing.hash_ids(users[plain.splits[split]["uid"]], 64))
        np.testing.assert_array_equal(hashed.splits[split]["pid"],
                                      hashing.hash_ids(items[plain.splits[split]["pid"]], 40))


def test_csv_cache_key_changes_only_with_hashing(tmp_path):
    write_clicks(tmp_path / "c.csv")
    common = dict(path=str(tmp_path / "c.csv"), domain_column="site", label_column="click",
                  features=["user", "item"], cache_dir=str(tmp_path / "cache"))
    plain, again = load_csv(**common), load_csv(**common, hash_buckets={})
    hashed = load_csv(**common, hash_buckets={"user": 64})
    assert again.info["cache_key"] == plain.info["cache_key"] and again.info["cache_status"] == "hit"
    assert "hash_buckets" not in plain.info["settings"] and "hash_buckets" not in plain.info
    assert hashed.info["cache_key"] != plain.info["cache_key"]
    assert load_csv(**common, hash_buckets={"user": 64}).info["hash_buckets"] == hashed.info["hash_buckets"]


@pytest.mark.parametrize("buckets, message", [
    ({"site": 8}, "cannot hash the domain column 'site'"),
    ({"domain": 8}, "cannot hash the domain column"),
    ({"price": 8}, "numeric feature 'price'"),
    ({"nope": 8}, "unknown feature 'nope'; the categorical features are user, item"),
    ({"user": 8, "uid": 9}, "names the column 'user' twice"),
    ({"user": 0}, "must be a positive integer"),
])
def test_csv_loader_refusals_name_the_value(tmp_path, buckets, message):
    frame = write_clicks(tmp_path / "c.csv")
    frame.assign(price=np.linspace(0, 1, len(frame))).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ValueError, match=message) as error:
        load_csv(path=str(tmp_path / "c.csv"), domain_column="site", label_column="click",
                 features=["user", "item"], numeric_features=["price"], cache_dir=False, hash_buckets=buckets)
    assert "hash_buckets=" in str(error.value)


# ----------------------------------------------------------------- any other loader
def test_generic_loader_hashes_its_integer_ids():
    plain = load_dataset("synthetic", **SYNTHETIC)
    hashed = load_dataset("synthetic", **SYNTHETIC, hash_buckets="uid:50")
    assert hashed.vocab_sizes == {**plain.vocab_sizes, "uid": 50}
    assert hashed.info["hash_buckets"] == {"uid": {"buckets": 50, "kind": "int"}}
    for split in ("train", "test"):
        np.testing.assert_array_equal(hashed.splits[split]["uid"], hashing.hash_ids(plain.splits[split]["uid"], 50))
        np.testing.assert_array_equal(hashed.splits[split]["pid"], plain.splits[split]["pid"])
    unchanged = load_dataset("synthetic", **SYNTHETIC, hash_buckets={})
    np.testing.assert_array_equal(unchanged.splits["train"]["uid"], plain.splits["train"]["uid"])
    assert "hash_buckets" not in unchanged.info


def test_generic_loader_refusals():
    with pytest.raises(ValueError, match="cannot hash the domain feature.*Received: --hash_buckets=domain:4"):
        load_dataset("synthetic", **SYNTHETIC, hash_buckets="domain:4")
    with pytest.raises(ValueError, match="unknown feature `user`.*uid, pid.*Received: --hash_buckets=user:4"):
        load_dataset("synthetic", **SYNTHETIC, hash_buckets="user:4")


# ----------------------------------------------------------------- the run folder's record
def test_vocabulary_records_the_hashing_and_maps_raw_ids(tmp_path):
    from mlora_tf.export.run_folder import save_vocabularies

    dataset = load_dataset("synthetic", **SYNTHETIC, hash_buckets="uid:50,pid:30")
    save_vocabularies(dataset, str(tmp_path / "vocab.npz"))
    vocabulary = Vocabulary.load(str(tmp_path / "vocab.npz"))
    assert {f: h.to_dict() for f, h in vocabulary.hashed.items()} == {
        "uid": {"buckets": 50, "kind": "int"}, "pid": {"buckets": 30, "kind": "int"}}
    assert vocabulary.oov_features == [] and vocabulary.id_features == ["uid", "pid"]
    raw = np.array([3, 10**9, -1])  # unseen ids too: each has its bucket, no OOV
    np.testing.assert_array_equal(vocabulary.map_ids("uid", raw), hashing.hash_ids(raw, 50))
    assert vocabulary.unseen_count("uid", raw) == 0
    vocabulary.save(str(tmp_path / "again.npz"))
    assert Vocabulary.load(str(tmp_path / "again.npz")).hashed == vocabulary.hashed
    plain = load_dataset("synthetic", **SYNTHETIC)
    save_vocabularies(plain, str(tmp_path / "plain.npz"))
    with np.load(str(tmp_path / "plain.npz")) as data:
        assert not [k for k in data.files if k.startswith("hash_")]
    with pytest.raises(ValueError, match="bucket count"):
        Vocabulary(train_ids={"uid": [0]}, vocab_sizes={"uid": 5}, domain_names=[], hashed={"uid": {"buckets": 6, "kind": "int"}})


# ----------------------------------------------------------------- mlora-prepare
def test_prepare_hashes_and_records_it(tmp_path, capsys):
    write_clicks(tmp_path / "c.csv")
    out = tmp_path / "prepared"
    assert run_prepare("--dataset=csv", f"--path={tmp_path / 'c.csv'}", "--domain_column=site",
                       "--label_column=click", "--features=user,item", "--hash_buckets=user:64",
                       f"--out_dir={out}") == 0
    assert "uid <- user (64 hash buckets, string ids)" in capsys.readouterr().out
    dataset = load_dataset("csv", data_dir=str(out))
    assert dataset.vocab_sizes["uid"] == 64 and dataset.info["hash_buckets"]["uid"]["kind"] == "string"
    with pytest.raises(ValueError, match="was prepared with hash_buckets"):
        load_dataset("csv", data_dir=str(out), hash_buckets={"user": 65})


@pytest.mark.parametrize("extra, message", [
    (["--hash_buckets=user:0"], "--hash_buckets: the number of buckets of `user` must be a positive integer. "
                                "Received: user:0"),
    (["--hash_buckets=user"], "--hash_buckets takes feature:N items"),
    (["--hash_buckets=user:8", "--format=tfrecord"], "--hash_buckets applies to --format=npz only"),
    (["--hash_buckets=site:8"], "cannot hash the domain column 'site'"),
])
def test_prepare_refusals(tmp_path, capsys, extra, message):
    write_clicks(tmp_path / "c.csv")
    out = tmp_path / "prepared"
    assert run_prepare("--dataset=csv", f"--path={tmp_path / 'c.csv'}", "--domain_column=site",
                       "--label_column=click", "--features=user,item", f"--out_dir={out}", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (out / "prepared.json").exists()
