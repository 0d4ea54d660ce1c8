"""The generic CSV / parquet loader and `mlora-prepare --dataset=csv`."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mlora_tf.data import load_dataset, split_sizes
from mlora_tf.data.prepared import get_extras

SPLITS = ("train", "val", "test")
HEADER = ["user", "item", "site", "click", "price", "device", "split"]
SITES = ["10", "2", "33"]  # sorted numerically: 2, 10, 33


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))


def write_clicks(path, n=300, seed=0, sep=","):
    """A small click file: 3 sites (domains), 0/1 clicks, a numeric and an extra column."""
    rng = random.Random(seed)
    rows = []
    for r in range(n):
        site = SITES[r % 3]
        split = ("train", "train", "train", "val", "test")[r % 5] if r >= 15 else ("train", "val", "test")[r % 3]
        rows.append({
            "user": f"u{rng.randint(0, 40)}", "item": f"i{rng.randint(0, 60)}", "site": site,
            "click": str(int(rng.random() < 0.3 + 0.1 * (r % 3))), "price": f"{rng.uniform(0, 100):.2f}",
            "device": rng.choice(["ios", "android", "web"]), "split": split,
        })
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(sep.join(HEADER) + "\n")
        for row in rows:
            f.write(sep.join(row[h] for h in HEADER) + "\n")
    return rows


def load(path, **kw):
    options = dict(path=str(path), domain_column="site", label_column="click", features=["user", "item", "device"],
                   numeric_features=["price"], cache_dir=False)
    options.update(kw)
    return load_dataset("csv", **options)


def test_csv_loader_maps_domains_ids_and_buckets(tmp_path):
    rows = write_clicks(tmp_path / "clicks.csv")
    ds = load(tmp_path / "clicks.csv")
    assert ds.domain_names == ["2", "10", "33"] and ds.info["domain_map"] == {"2": 0, "10": 1, "33": 2}
    users = list(dict.fromkeys(r["user"] for r in rows))
    items = list(dict.fromkeys(r["item"] for r in rows))
    # The extra columns are sparse features of their own (csv schema 2).
    assert ds.vocab_sizes == {"uid": len(users), "pid": len(items), "domain": 3, "device": 3, "price": 10}
    assert ds.features == ("uid", "pid", "domain", "device", "price")
    # Per-domain §1.3 sizes.
    for d, site in enumerate(ds.domain_names):
        n = sum(r["site"] == site for r in rows)
        assert tuple(ds.sizes()[s][d] for s in SPLITS) == split_sizes(n)
    # Rows and extra columns stay aligned: rebuild every (user, item, site, click, device).
    extras = get_extras(ds)
    devices = list(dict.fromkeys(r["device"] for r in rows))
    got = []
    for s in SPLITS:
        c = ds.splits[s]
        for j in range(ds.num_rows(s)):
            got.append((users[c["uid"][j]], items[c["pid"][j]], ds.domain_names[c["domain"][j]],
                        str(int(c["label"][j])), devices[extras[f"{s}__device"][j]]))
    assert sorted(got) == sorted((r["user"], r["item"], r["site"], r["click"], r["device"]) for r in rows)
    price = np.concatenate([extras[f"{s}__price"] for s in SPLITS])
    counts = np.bincount(price)
    assert len(counts) == 10 and counts.min() >= 28 and counts.max() <= 32  # quantile buckets
    assert len(ds.info["buckets"]["price"]) == 11
    assert ds.info["extra_vocab_sizes"] == {"device": 3, "price": 10}


def test_split_column(tmp_path):
    rows = write_clicks(tmp_path / "clicks.csv")
    ds = load(tmp_path / "clicks.csv", split_column="split")
    for s in SPLITS:
        assert ds.num_rows(s) == sum(r["split"] == s for r in rows)


def test_csv_cache_and_prepare_cli(tmp_path, capsys):
    from tests.test_data_prepare import run_prepare

    write_clicks(tmp_path / "clicks.csv")
    out = tmp_path / "out"
    code = run_prepare("--dataset=csv", f"--path={tmp_path / 'clicks.csv'}", "--domain_column=site",
                       "--label_column=click", "--features=user,item,device", "--numeric_features=price",
                       "--n_buckets=5", f"--out_dir={out}")
    assert code == 0
    printed = capsys.readouterr().out
    assert "Domain map (value -> id): 2 -> 0, 10 -> 1, 33 -> 2" in printed
    assert "extra features ['device', 'price'] are stored" in printed
    ds = load_dataset("csv", data_dir=out)
    assert ds.info["cache_status"] == "prepared"
    assert get_extras(ds)["train__price"].max() == 4
    direct = load(tmp_path / "clicks.csv", n_buckets=5, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(ds.splits["test"]["uid"], direct.splits["test"]["uid"])
    assert load(tmp_path / "clicks.csv", n_buckets=5, cache_dir=tmp_path / "c").info["cache_status"] == "hit"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda L: L.__setitem__(5, L[5].replace(",1,", ",2,", 1) if ",1," in L[5] else L[5].replace(",0,", ",yes,", 1)),
         r"line 6 of .*clicks.csv: column click must be 0 or 1"),
        (lambda L: L.__setitem__(0, L[0].replace("price", "site")), r"Line 1 of .*repeats column name.*site"),
        (lambda L: L.__setitem__(7, ",".join(L[7].split(",")[:3])), r"line 8 of .*3 field\(s\) where the header has 7"),
        (lambda L: L.__setitem__(9, L[9].replace(L[9].split(",")[4], "cheap")), r"line 10 .*column price must be a number.*'cheap'"),
        (lambda L: L.__setitem__(4, ",".join(L[4].split(",")[:6] + ["later"])), r"line 5 .*split must be one of train, val, test.*'later'"),
    ],
)
def test_bad_rows_are_named(tmp_path, mutate, message):
    write_clicks(tmp_path / "clicks.csv")
    lines = (tmp_path / "clicks.csv").read_text().splitlines()
    mutate(lines)
    (tmp_path / "clicks.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "clicks.csv", split_column="split")


def test_wrong_delimiter_hint(tmp_path):
    write_clicks(tmp_path / "clicks.csv", sep=";")
    with pytest.raises(ValueError, match=r"lacks the column.*wrong delimiter\? \(--delimiter=';'\)"):
        load(tmp_path / "clicks.csv")
    assert load(tmp_path / "clicks.csv", delimiter=";").n_domains == 3


def test_bad_settings(tmp_path):
    write_clicks(tmp_path / "clicks.csv")
    with pytest.raises(ValueError, match="at least two categorical `features`"):
        load(tmp_path / "clicks.csv", features=["user"])
    with pytest.raises(ValueError, match="one role only"):
        load(tmp_path / "clicks.csv", features=["user", "site"])
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- #
# No `features`: the schema is inferred.
# --------------------------------------------------------------------------- #


def _write_typed(path, n=240, seed=3, empty_in=None):
    """user (text), item (integer), site (domain), click, price (float), device (text),
    age (integer), and `note` with an empty value when `empty_in` is a row index."""
    rng = random.Random(seed)
    lines = ["user,item,site,click,price,device,age,note"]
    for r in range(n):
        note = "" if r == empty_in else f"n{r % 4}"
        lines.append(f"u{rng.randint(0, 30)},{rng.randint(1, 50)},{SITES[r % 3]},{int(rng.random() < 0.4)},"
                     f"{rng.uniform(0, 9):.3f},{rng.choice(['ios', 'web'])},{rng.randint(18, 70)},{note}")
    path.write_text("\n".join(lines) + "\n")


def test_infer_features_types_and_order(tmp_path):
    from mlora_tf.data import csv_loader

    _write_typed(tmp_path / "t.csv", empty_in=7)
    schema = csv_loader.infer_features(tmp_path / "t.csv", domain_column="site", label_column="click")
    assert schema["features"] == ["user", "item", "device", "age"]  # text and integer, file order
    assert schema["numeric_features"] == ["price"]
    assert schema["skipped"] == {"note": "has empty values"}
    assert csv_loader.feature_flags(schema) == "--features=user,item,device,age --numeric_features=price"
    # Given numeric features are kept; the other float columns are left out, said so.
    given = csv_loader.infer_features(tmp_path / "t.csv", domain_column="site", label_column="click",
                                      numeric_features=["age"])
    assert given["features"] == ["user", "item", "device"] and given["numeric_features"] == ["age"]
    assert "price" in given["skipped"]


def test_load_without_features_equals_the_printed_flags(tmp_path):
    _write_typed(tmp_path / "t.csv")
    inferred = load_dataset("csv", path=str(tmp_path / "t.csv"), domain_column="site", label_column="click",
                            cache_dir=False)
    explicit = load_dataset("csv", path=str(tmp_path / "t.csv"), domain_column="site", label_column="click",
                            features=["user", "item", "device", "age", "note"], numeric_features=["price"],
                            cache_dir=False)
    assert inferred.features == explicit.features
    assert inferred.vocab_sizes == explicit.vocab_sizes
    for split in ("train", "val", "test"):
        for column in explicit.splits[split]:
            np.testing.assert_array_equal(inferred.splits[split][column], explicit.splits[split][column])


def test_infer_needs_two_categorical_columns(tmp_path):
    (tmp_path / "t.csv").write_text("x,site,click\n" + "".join(f"{i / 3:.2f},a,{i % 2}\n" for i in range(30)))
    with pytest.raises(ValueError, match=r"at least two categorical.*--features=UID_COLUMN,PID_COLUMN"):
        load_dataset("csv", path=str(tmp_path / "t.csv"), domain_column="site", label_column="click",
                     cache_dir=False)
