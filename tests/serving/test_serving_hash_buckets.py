"""`--hash_buckets` end to end: prepare (or train) with hashing, export, serve raw ids
(strings and integers, seen and unseen) and get the trained model's predictions;
evaluate and add a domain with the same hashing."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mlora_tf.data import hashing
from mlora_tf.export import RunFolder, export_run
from mlora_tf.export.serving import load_export
from serving_helpers import SYNTHETIC, start_cli

FEATURES = ("uid", "pid", "domain", "device")


def _clicks(path, n=900, seed=11):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "user": [f"user-{i}" for i in rng.integers(0, 120, n)],
        "item": rng.integers(1, 5000, n),
        "device": rng.choice(["ios", "web"], n),
        "site": np.array(["a", "b", "c"])[rng.integers(0, 3, n)],
        "click": (rng.random(n) < 0.4).astype(int),
        "split": np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 2)[np.arange(n) % 10],
    })
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def synthetic_cli_run(tmp_path_factory):
    """`mlora-train --hash_buckets=uid:50` on synthetic data, in the background."""
    folder = tmp_path_factory.mktemp("hashed_cli")
    options = ",".join(f"{k}={v}" for k, v in SYNTHETIC.items())
    job = start_cli("train", "--dataset=synthetic", f"--data_options={options}", "--hash_buckets=uid:50",
                    "--adapter=mlora", "--max_epochs=1", "--hidden_units=8", f"--output_dir={folder / 'run'}")
    bad = start_cli("train", "--dataset=synthetic", "--hash_buckets=uid:0", f"--output_dir={folder / 'bad'}")
    yield job, bad, folder
    for j in (job, bad):
        if j.proc.poll() is None:
            j.proc.kill()
            j.proc.wait()


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, synthetic_cli_run):
    from mlora_tf.runs.train import train_run
    from tests.test_data_prepare import run_prepare

    folder = tmp_path_factory.mktemp("hashed_csv")
    frame = _clicks(folder / "clicks.csv")
    assert run_prepare("--dataset=csv", f"--path={folder / 'clicks.csv'}", "--domain_column=site",
                       "--label_column=click", "--features=user,item,device", "--split_column=split",
                       "--hash_buckets=user:64,item:40", f"--out_dir={folder / 'prepared'}") == 0
    config = RunConfig(
        data=DataConfig(dataset="csv", data_dir=str(folder / "prepared"), cache_dir=str(folder / "cache")),
        model=ModelConfig(hidden_units=(8,), adapter="mlora"),
        train=TrainConfig(max_epochs=1),
    )
    train_run(config, output_dir=str(folder / "run"))
    export_run(str(folder / "run"), str(folder / "export" / "1"))
    return frame, str(folder / "run"), str(folder / "export" / "1")


def _keras(model, columns):
    feed = {f: tf.constant(np.asarray(columns[f], np.int64)) for f in FEATURES}
    return model(feed, training=False)["probability"].numpy().reshape(-1)


def _serve(signature, users, items, domain, device):
    out = signature(uid=tf.constant(np.asarray(users, dtype=object)), pid=tf.constant(np.asarray(items, np.int64)),
                    domain=tf.constant(np.asarray(domain, np.int64)), device=tf.constant(np.asarray(device, np.int64)))
    return out["probability"].numpy()


def test_csv_run_records_the_hashing(csv_run):
    _, run_dir, export_dir = csv_run
    run = RunFolder.open(run_dir)
    assert {f: h.to_dict() for f, h in run.vocabulary.hashed.items()} == {
        "uid": {"buckets": 64, "kind": "string"}, "pid": {"buckets": 40, "kind": "int"}}
    signature, metadata = load_export(export_dir)
    assert metadata["hash_buckets"] == {"uid": {"buckets": 64, "kind": "string"}, "pid": {"buckets": 40, "kind": "int"}}
    assert sorted(metadata["oov_index"]) == ["device"]  # no OOV row for a hashed feature
    inputs = signature.structured_input_signature[1]
    assert inputs["uid"].dtype == tf.string and inputs["pid"].dtype == tf.int64 and inputs["device"].dtype == tf.int64


def test_served_raw_ids_give_the_trained_models_predictions(csv_run):
    from mlora_tf.runs.train import load_run_dataset

    frame, run_dir, export_dir = csv_run
    run = RunFolder.open(run_dir)
    test = load_run_dataset(run.config).splits["test"]
    # The test split's rows, raw, in the loader's order (file order, grouped by domain).
    raw = frame[frame["split"] == "test"]
    raw = raw.iloc[np.argsort(raw["site"].map({"a": 0, "b": 1, "c": 2}).to_numpy(), kind="stable")]
    # Training index == serving index.
    np.testing.assert_array_equal(test["uid"], hashing.hash_ids(raw["user"].to_numpy(dtype=object), 64))
    np.testing.assert_array_equal(test["pid"], hashing.hash_ids(raw["item"].to_numpy(), 40))
    signature, _ = load_export(export_dir)
    model = run.load_model()
    served = _serve(signature, raw["user"], raw["item"], test["domain"], test["device"])
    np.testing.assert_allclose(served, _keras(model, test), rtol=1e-5, atol=1e-6)


def test_unseen_raw_ids_get_their_bucket_not_an_oov_row(csv_run):
    _, run_dir, export_dir = csv_run
    users = np.array(["never seen", "user-99999", "", "user-3"], dtype=object)
    items = np.array([10**12, -4, 77, 1], np.int64)
    domain, device = np.array([0, 1, 2, 0]), np.array([0, 1, 0, 1])
    signature, _ = load_export(export_dir)
    expected = _keras(RunFolder.open(run_dir).load_model(), {
        "uid": hashing.hash_ids(users, 64), "pid": hashing.hash_ids(items, 40), "domain": domain, "device": device})
    np.testing.assert_allclose(_serve(signature, users, items, domain, device), expected, rtol=1e-5, atol=1e-6)


def test_mlora_train_flag_export_and_evaluate(synthetic_cli_run, tmp_path):
    from mlora_tf.data import load_dataset
    from mlora_tf.runs.evaluate import evaluate

    job, bad, folder = synthetic_cli_run
    proc = bad.result()
    assert proc.returncode == 2
    assert "--hash_buckets: the number of buckets of `uid` must be a positive integer. Received: uid:0" in proc.stderr
    proc = job.result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = str(folder / "run")
    run = RunFolder.open(run_dir)
    assert run.config.data.options["hash_buckets"] == {"uid": 50}
    assert {f: h.to_dict() for f, h in run.vocabulary.hashed.items()} == {"uid": {"buckets": 50, "kind": "int"}}
    export_dir = export_run(run_dir, str(tmp_path / "export" / "1"))
    # A file of raw ids (the synthetic loader's own, of the training split so that no pid
    # goes to its OOV row, plus uids never seen): the run's Keras model, its serving
    # graph and its export score it alike.
    test = load_dataset("synthetic", **SYNTHETIC).splits["train"]
    frame = pd.DataFrame({c: test[c] for c in ("uid", "pid", "domain", "label")})
    frame.loc[:9, "uid"] = 10**9 + np.arange(10)
    frame["label"] = frame["label"].astype(int)
    frame.to_csv(tmp_path / "raw.csv", index=False)
    keras_report = evaluate(run_dir, data=str(tmp_path / "raw.csv"))
    for other in (evaluate(export_dir, data=str(tmp_path / "raw.csv")),
                  evaluate(run_dir, data=str(tmp_path / "raw.csv"), serving_lookup=True)):
        assert other["logloss"] == pytest.approx(keras_report["logloss"], rel=1e-5)
        assert other["domain_auc"] == pytest.approx(keras_report["domain_auc"], rel=1e-5)
    # The run's own split holds buckets: scored by the Keras model, refused by the serving graph.
    assert evaluate(run_dir)["wauc"] == pytest.approx(run.record["wauc"], rel=1e-9)
    with pytest.raises(ValueError, match="hashes uid .*holds their buckets"):
        evaluate(export_dir)


def test_add_domain_keeps_the_hashing(synthetic_cli_run, tmp_path):
    from mlora_tf.runs.add_domain import add_domain
    from serving_helpers import new_domain_frame

    job, _, folder = synthetic_cli_run
    assert job.result().returncode == 0
    new_domain_frame().to_csv(tmp_path / "kids.csv", index=False)
    add_domain(str(folder / "run"), domain_data=str(tmp_path / "kids.csv"), output_dir=str(tmp_path / "plus"),
               train_overrides={"max_epochs": 1})
    plus = RunFolder.open(str(tmp_path / "plus"))
    assert {f: h.buckets for f, h in plus.vocabulary.hashed.items()} == {"uid": 50}
    assert plus.vocabulary.vocab_sizes["uid"] == 50 and plus.vocabulary.n_domains == 4
    assert os.path.exists(export_run(str(tmp_path / "plus"), str(tmp_path / "plus_export" / "1")))
