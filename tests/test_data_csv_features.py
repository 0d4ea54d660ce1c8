"""A CSV's extra columns are model features: the loader, every model, the trainer,
`mlora-evaluate` and `mlora-export` use them; multi-label CSVs are multi-task data."""

from __future__ import annotations

import random
import re

import numpy as np
import pandas as pd
import pytest

from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mlora_tf.data import csv_loader, load_dataset
from mlora_tf.data.prepared import get_extras

SPLITS = ("train", "val", "test")
HEADER = ["user", "item", "site", "device", "price", "click", "like"]
SITES = ["video", "news", "shop"]  # sorted as text: news, shop, video
DEVICES = ["ios", "android", "web"]
EXTRAS = ("device", "price")
N_BUCKETS = 4


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))


def write_clicks(path, n=360, seed=0):
    """3 string domains, 3 categorical columns (user, item, device), 1 numeric (price),
    two 0/1 labels; clicks depend on the device so the extra feature carries signal."""
    rng = random.Random(seed)
    rows = []
    for r in range(n):
        device = DEVICES[rng.randint(0, 2)]
        rate = {"ios": 0.15, "android": 0.35, "web": 0.6}[device]
        rows.append({
            "user": f"u{rng.randint(0, 30)}", "item": f"i{rng.randint(0, 40)}", "site": SITES[r % 3],
            "device": device, "price": f"{rng.uniform(0, 100):.2f}",
            "click": str(int(rng.random() < rate)), "like": str(int(rng.random() < 0.4)),
        })
    pd.DataFrame(rows, columns=HEADER).to_csv(path, index=False)
    return rows


def options(path, **kw):
    values = dict(path=str(path), domain_column="site", label_column="click", features=["user", "item", "device"],
                  numeric_features=["price"], n_buckets=N_BUCKETS)
    values.update(kw)
    return values


def load(path, cache_dir=False, **kw):
    return load_dataset("csv", cache_dir=cache_dir, **options(path, **kw))


@pytest.fixture
def clicks(tmp_path):
    path = tmp_path / "clicks.csv"
    return path, write_clicks(path)


# --------------------------------------------------------------------- the loader
def test_extra_columns_are_sparse_features_with_their_vocabularies(clicks):
    path, rows = clicks
    ds = load(path)
    assert ds.features == ("uid", "pid", "domain") + EXTRAS and ds.labels == ("label",)
    assert ds.domain_names == ["news", "shop", "video"]
    assert ds.vocab_sizes["device"] == 3 and ds.vocab_sizes["price"] == N_BUCKETS
    assert ds.info["feature_map"] == {"uid": "user", "pid": "item", "device": "device", "price": "price"}
    # Every row keeps its values: ids map back to the file's, prices to their quantile bucket.
    devices = list(dict.fromkeys(r["device"] for r in rows))
    frame = pd.DataFrame(rows)
    bucket = pd.qcut(frame["price"].astype(float), q=N_BUCKETS, labels=False).to_numpy()
    expected = sorted((r["user"], r["site"], r["device"], int(b), r["click"]) for r, b in zip(rows, bucket))
    users = list(dict.fromkeys(r["user"] for r in rows))
    got = []
    for s in SPLITS:
        c = ds.splits[s]
        got += [(users[c["uid"][j]], ds.domain_names[c["domain"][j]], devices[c["device"][j]], int(c["price"][j]),
                 str(int(c["label"][j]))) for j in range(ds.num_rows(s))]
    assert sorted(got) == expected
    assert np.bincount(np.concatenate([ds.splits[s]["price"] for s in SPLITS])).tolist() == [90] * N_BUCKETS
    np.testing.assert_array_equal(get_extras(ds)["test__device"], ds.splits["test"]["device"])


def test_column_names_become_identifiers_and_reserved_names_are_refused(tmp_path):
    path = tmp_path / "odd.csv"
    frame = pd.DataFrame({"user": ["a", "b", "c", "d"] * 6, "item": ["x", "y"] * 12, "site": ["s", "t"] * 12,
                          "item category": ["p", "q", "r"] * 8, "2nd": ["1", "2"] * 12, "label": ["k"] * 24,
                          "click": ["0", "1", "1", "0"] * 6})
    frame.to_csv(path, index=False)
    ds = load_dataset("csv", path=str(path), domain_column="site", label_column="click", cache_dir=False,
                      features=["user", "item", "item category", "2nd"])
    assert ds.features[3:] == ("item_category", "f_2nd")
    assert ds.info["feature_map"]["item_category"] == "item category"
    with pytest.raises(ValueError, match=r"column 'label' would be named 'label', which the dataset reserves"):
        load_dataset("csv", path=str(path), domain_column="site", label_column="click", cache_dir=False,
                     features=["user", "item", "label"])


def test_the_csv_schema_is_part_of_the_cache_key(clicks, tmp_path, monkeypatch):
    path, _ = clicks
    assert load(path, cache_dir=tmp_path / "c").info["cache_status"] == "built"
    assert load(path, cache_dir=tmp_path / "c").info["cache_status"] == "hit"
    monkeypatch.setattr(csv_loader, "CSV_SCHEMA", 1)  # a cache of the old layout is not reused
    assert load(path, cache_dir=tmp_path / "c").info["cache_status"] == "built"


# ---------------------------------------------------------------------- multi-label
def test_several_label_columns_make_a_multitask_dataset(clicks):
    path, rows = clicks
    ds = load(path, label_column="click,like")
    assert ds.labels == ("click", "like") and ds.is_multitask
    assert ds.features == ("uid", "pid", "domain") + EXTRAS
    total = {name: sum(float(ds.splits[s][name].sum()) for s in SPLITS) for name in ds.labels}
    assert total == {"click": sum(r["click"] == "1" for r in rows), "like": sum(r["like"] == "1" for r in rows)}
    # Stratified on the first label: each domain's click rate is about equal in train and test.
    for d in range(3):
        rates = [ds.domain_slice(s, d)["click"].mean() for s in ("train", "test")]
        assert abs(rates[0] - rates[1]) < 0.05
    # The single-label dataset is unchanged: labels ("label",).
    assert load(path).labels == ("label",)


def test_a_bad_value_in_the_second_label_names_line_and_column(clicks):
    path, _ = clicks
    lines = path.read_text().splitlines()
    fields = lines[7].split(",")
    fields[HEADER.index("like")] = "maybe"
    lines[7] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 8 of .*clicks\.csv: column like must be 0 or 1\. Received: 'maybe'"):
        load(path, label_column=["click", "like"])


def test_multitask_model_trains_on_a_multilabel_csv(clicks):
    import dataclasses

    from mlora_tf.config import MultiTaskRunConfig, MultiTaskTrainConfig
    from mlora_tf.runs.multitask import train_multitask_run

    path, _ = clicks
    config = MultiTaskRunConfig(data=DataConfig(dataset="csv", options=options(path, label_column="click,like")),
                                train=MultiTaskTrainConfig(batch_size=128, max_epochs=1), tasks=("click", "like"))
    config.model = dataclasses.replace(config.model, name="m3oe", star_units=8, hidden_units=8, expert_units=4,
                                       tower_units=4, embedding_dim=4)
    record = train_multitask_run(config)
    assert record["tasks"] == ["click", "like"] and record["epochs"] == 1
    # The features come from the data, into the recorded config; the caller's is untouched.
    assert tuple(record["config"]["model"]["sparse_features"]) == ("uid", "pid") + EXTRAS + ("domain",)
    assert config.model.sparse_features != record["config"]["model"]["sparse_features"]


# ---------------------------------------------------------------------- the models
def _run_config(path, name, adapter):
    return RunConfig(
        data=DataConfig(dataset="csv", options=options(path)),
        model=ModelConfig(name=name, adapter=adapter, hidden_units=(8, 4)),
        train=TrainConfig(max_epochs=1, batch_size=64),
    )


@pytest.mark.parametrize("name, adapter", [("deepfm", "mlora"), ("wdl", "none")])
def test_every_feature_has_a_table_and_trains(clicks, name, adapter):
    import keras

    from mlora_tf.models import DataSpec, build_model
    from mlora_tf.training import Trainer, schedule_phases

    path, _ = clicks
    ds = load(path)
    spec = DataSpec.from_dataset(ds)
    assert spec.features == ds.features
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name=name, adapter=adapter, hidden_units=(8, 4)), spec)
    tables = {layer.name: layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)}
    assert set(tables) == {"user_emb", "item_emb", "domain_emb", "emb_device", "emb_price"}
    assert {n: int(t.embeddings.shape[0]) for n, t in tables.items()} == {
        "user_emb": ds.vocab_sizes["uid"], "item_emb": ds.vocab_sizes["pid"], "domain_emb": 3,
        "emb_device": 3, "emb_price": N_BUCKETS}
    assert len({int(t.embeddings.shape[1]) for t in tables.values()}) == 1  # the backbone's size
    assert sorted(t._keras_history.operation.name for t in model.inputs) == sorted(ds.features)
    assert len(model.get_layer("linear_logit").tables) == 5  # the wide part covers every feature
    # One short epoch per phase through the public API; the trainer feeds the extra
    # features, so their tables train.
    before = {f: tables[f].embeddings.numpy().copy() for f in ("emb_device", "emb_price")}
    trainer = Trainer(model, ds, TrainConfig(max_epochs=1, batch_size=64))
    phases = schedule_phases("joint", adapter)
    results = trainer.fit(phases)
    assert all(r.epochs == 1 and np.isfinite(r.history[0]["train_loss"]) for r in results)
    for f, value in before.items():
        assert not np.array_equal(value, tables[f].embeddings.numpy()), f
    _assert_each_extra_moves_the_logit(model, ds.features)  # the trained model uses them


def _assert_each_extra_moves_the_logit(model, features):
    """Changing only one extra feature's id changes the logits (of some rows at least:
    a ReLU unit may be off for a row)."""
    feed = {f: np.zeros(6, np.int64) for f in features}
    feed["domain"] = np.arange(6) % 3
    base = model.predict_on_batch(feed)["logit"]
    for feature in EXTRAS:
        changed = model.predict_on_batch({**feed, feature: np.ones(6, np.int64)})["logit"]
        assert np.abs(changed - base).max() > 1e-5, feature


# Every backbone, the three adapters in turn (MoE where the backbone has it).
BACKBONE_ADAPTERS = [("autoint", "none"), ("dcn", "mlora"), ("deepfm", "moe"), ("fibinet", "none"),
                     ("mlp", "mlora"), ("nfm", "moe"), ("pnn", "none"), ("star", "mlora"), ("wdl", "moe"),
                     ("xdeepfm", "mlora")]


def test_changing_only_an_extra_feature_changes_the_prediction_of_every_backbone():
    from mlora_tf.models import DataSpec, build_model

    spec = DataSpec({"uid": 30, "pid": 20, "domain": 3, "device": 3, "price": N_BUCKETS}, 3,
                    features=("uid", "pid", "domain") + EXTRAS)
    rng = np.random.default_rng(0)
    for name, adapter in BACKBONE_ADAPTERS:
        model = build_model(ModelConfig(name=name, adapter=adapter, hidden_units=(8,)), spec)
        assert sorted(t._keras_history.operation.name for t in model.inputs) == sorted(spec.features), name
        model.get_layer("emb_device"), model.get_layer("emb_price")  # one table per extra feature
        # Random weights everywhere (zero-initialised heads and adapters would hide the inputs).
        for v in model.weights:
            if "seed_generator" not in v.path and "moving_variance" not in v.path:
                v.assign(rng.normal(scale=0.1, size=v.shape).astype(v.dtype))
        _assert_each_extra_moves_the_logit(model, spec.features)


# ----------------------------------------------------------------- default datasets
def _variables(model):
    """`(path, shape)` of every weight; seed generators are numbered process-wide."""
    return [(re.sub(r"seed_generator(_\d+)?", "seed_generator", v.path), tuple(v.shape)) for v in model.weights]


# wdl / mlora on uid, pid, domain (vocabularies 30, 20, 3; units 8, 4): the variables
# the three-feature factory built before extra features existed.
WDL_MLORA_VARIABLES = [
    ("user_emb/embeddings", (30, 8)),
    ("item_emb/embeddings", (20, 8)),
    ("domain_emb/embeddings", (3, 8)),
    ("dense_stack/mlora_dense_0/kernel", (24, 8)),
    ("dense_stack/mlora_dense_0/bias", (8,)),
    ("dense_stack/mlora_dense_0/adapter/adapter_kernel_a", (24, 3)),
    ("dense_stack/mlora_dense_0/adapter/adapter_kernel_b", (3, 8)),
    ("dense_stack/mlora_dense_0/adapter/adapter_bias", (3, 8)),
    ("dense_stack/mlora_dense_1/kernel", (8, 4)),
    ("dense_stack/mlora_dense_1/bias", (4,)),
    ("dense_stack/mlora_dense_1/adapter/adapter_kernel_a", (8, 3)),
    ("dense_stack/mlora_dense_1/adapter/adapter_kernel_b", (3, 4)),
    ("dense_stack/mlora_dense_1/adapter/adapter_bias", (3, 4)),
    ("linear_logit/linear_table_0", (30, 1)),
    ("linear_logit/linear_table_1", (20, 1)),
    ("linear_logit/linear_table_2", (3, 1)),
    ("logit_head/kernel", (4, 1)),
    ("global_bias/global_bias", (1,)),
]


def test_default_datasets_build_the_same_model():
    from mlora_tf.models import DataSpec, build_model

    synthetic = load_dataset("synthetic", n_rows=600, n_users=30, n_items=20, n_domains=3)
    spec = DataSpec.from_dataset(synthetic)
    assert spec.features == ("uid", "pid", "domain") and spec == DataSpec(dict(synthetic.vocab_sizes), 3)
    for name, adapter in (("wdl", "mlora"), ("deepfm", "moe"), ("star", "mlora")):
        config = dict(name=name, adapter=adapter, hidden_units=(8, 4))
        new = build_model(ModelConfig(**config), spec)
        three = build_model(ModelConfig(**config), DataSpec(dict(synthetic.vocab_sizes), 3))
        assert _variables(new) == _variables(three)
        assert [t._keras_history.operation.name for t in new.inputs] == [
            t._keras_history.operation.name for t in three.inputs]
    wdl = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(8, 4)),
                      DataSpec({"uid": 30, "pid": 20, "domain": 3}, 3))
    assert _variables(wdl) == WDL_MLORA_VARIABLES


# -------------------------------------------------------------- evaluate and export
def test_export_and_evaluate_use_the_extra_features(clicks, tmp_path):
    import tensorflow as tf

    from mlora_tf.runs.evaluate import evaluate
    from mlora_tf.export import RunFolder, export_run, load_export
    from mlora_tf.runs.train import train_run

    path, _ = clicks
    ds = load(path)
    run_dir = str(tmp_path / "run")
    record = train_run(_run_config(path, "deepfm", "mlora"), output_dir=run_dir, dataset=ds)
    run = RunFolder.open(run_dir)
    assert run.features == ds.features
    signature, metadata = load_export(export_run(run_dir, str(tmp_path / "export" / "1")))
    assert metadata["features"] == list(ds.features)
    assert set(signature.structured_input_signature[1]) == set(ds.features)
    train = ds.splits["train"]
    feed = {f: train[f][:120] for f in ds.features}  # ids seen in training
    served = signature(**{f: tf.constant(v) for f, v in feed.items()})
    python = run.load_model().predict_on_batch(feed)
    for key in ("probability", "logit"):
        np.testing.assert_allclose(served[key].numpy(), python[key], rtol=1e-6, atol=1e-7)
    # mlora-evaluate: its own split, a file with every feature, and a file lacking one.
    assert evaluate(run_dir, split="val")["rows"] == ds.num_rows("val")
    test = ds.splits["test"]
    frame = pd.DataFrame({c: test[c] for c in ds.features + ("label",)}).astype({"label": int})
    frame.to_csv(tmp_path / "test.csv", index=False)
    by_file = evaluate(run_dir, data=str(tmp_path / "test.csv"))
    by_export = evaluate(str(tmp_path / "export" / "1"), data=str(tmp_path / "test.csv"))
    by_lookup = evaluate(run_dir, data=str(tmp_path / "test.csv"), serving_lookup=True)
    assert by_file["rows"] == by_export["rows"] == ds.num_rows("test")
    assert by_file["logloss"] == pytest.approx(record["logloss"], rel=1e-6)  # the trainer's numbers
    assert by_export["logloss"] == pytest.approx(by_lookup["logloss"], rel=1e-5)
    frame.drop(columns="price").to_csv(tmp_path / "no_price.csv", index=False)
    with pytest.raises(ValueError, match=r"no_price\.csv lacks column\(s\) \['price'\]"):
        evaluate(run_dir, data=str(tmp_path / "no_price.csv"))
    # mlora-add-domain: the new domain's file needs the extra features too, and they
    # reach the grown model (a file without one is refused, naming it).
    from mlora_tf.runs.add_domain import add_domain

    new = pd.DataFrame({f: test[f] for f in ds.features if f != "domain"})
    new["label"] = test["label"].astype(int)
    new.to_csv(tmp_path / "new.csv", index=False)
    new.drop(columns="device").to_csv(tmp_path / "new_no_device.csv", index=False)
    with pytest.raises(ValueError, match=r"new_no_device\.csv lacks column\(s\) \['device'\]"):
        add_domain(run_dir, str(tmp_path / "new_no_device.csv"), str(tmp_path / "grown_bad"))
    add_domain(run_dir, str(tmp_path / "new.csv"), str(tmp_path / "grown"), train_overrides={"max_epochs": 1})
    grown = RunFolder.open(str(tmp_path / "grown"))
    assert grown.features == ds.features
    assert grown.load_model().get_layer("emb_device") is not None
