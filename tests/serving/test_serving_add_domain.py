"""`mlora-add-domain`: a new adapter slot trains alone; the old domains' predictions stay
bit-for-bit; the new run folder exports and serves the new domain."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from serving_helpers import new_domain_frame
from mlora_tf.runs.add_domain import add_domain
from mlora_tf.config import RunConfig
from mlora_tf.export import RunFolder, Vocabulary, export_run, load_export
from mlora_tf.models import dense_stack_of

FEATURES = ("uid", "pid", "domain")


def _per_domain(model, rows, domains):
    """Probabilities, one domain a batch (as the trainer and mlora-evaluate score)."""
    out = np.empty(rows["uid"].size, np.float32)
    for d in domains:
        mask = rows["domain"] == d
        out[mask] = model.predict_on_batch({f: rows[f][mask] for f in FEATURES})["probability"]
    return out


def test_old_domains_are_bit_for_bit_unchanged(mlora_run, plus_run, run_dataset):
    old = RunFolder.open(mlora_run).load_model()
    new = RunFolder.open(plus_run).load_model()
    test = run_dataset(mlora_run).splits["test"]
    rows = {f: test[f] for f in FEATURES}
    before, after = _per_domain(old, rows, range(3)), _per_domain(new, rows, range(3))
    np.testing.assert_array_equal(after, before)
    # Every old weight is unchanged; the new slot's B is no longer zero.
    old_weights = {v.path: v.numpy() for v in old.weights if "seed_generator" not in v.path}
    new_weights = {v.path: v.numpy() for v in new.weights if "seed_generator" not in v.path}
    assert set(old_weights) == set(new_weights)
    grown = []
    for path, value in old_weights.items():
        fresh = new_weights[path]
        if value.shape == fresh.shape:
            np.testing.assert_array_equal(fresh, value, err_msg=path)
        elif path.endswith("adapter_kernel_a"):
            np.testing.assert_array_equal(fresh[:, : value.shape[1]], value, err_msg=path)
            grown.append(path)
        else:
            np.testing.assert_array_equal(fresh[: value.shape[0]], value, err_msg=path)
            grown.append(path)
    assert sorted(p.split("/")[-1] for p in grown) == sorted(
        ["embeddings", "linear_table_2"] + ["adapter_kernel_a", "adapter_kernel_b", "adapter_bias"] * 2
    )
    for layer in dense_stack_of(new).adapter_layers:
        assert np.abs(layer.slot_weights(3)["b"]).max() > 0
    # The new domain's wide weight stays 0.
    assert new.get_layer("linear_logit").tables[2].numpy()[3, 0] == 0.0


def test_new_slot_trained_and_changes_the_new_domains_predictions(plus_run):
    model = RunFolder.open(plus_run).load_model()
    frame = new_domain_frame()
    vocab = Vocabulary.load(os.path.join(plus_run, "vocab.npz"))
    rows = {
        "uid": vocab.map_ids("uid", frame["uid"].to_numpy()).clip(max=vocab.vocab_sizes["uid"] - 1),
        "pid": frame["pid"].to_numpy(),
        "domain": np.full(len(frame), 3),
    }
    trained = model.predict_on_batch(rows)["probability"]
    for layer in dense_stack_of(model).adapter_layers:  # the new slot as it started: B = 0, bias = 0
        b, bias = layer.adapter_kernel_b.numpy(), layer.adapter_bias.numpy()
        b[3 * layer.rank :] = 0.0
        bias[3] = 0.0
        layer.adapter_kernel_b.assign(b)
        layer.adapter_bias.assign(bias)
    untrained = model.predict_on_batch(rows)["probability"]
    assert np.abs(trained - untrained).max() > 1e-4


def test_new_run_folder_is_a_normal_run(plus_run):
    record = json.loads(open(os.path.join(plus_run, "result.json")).read())
    assert record["n_domains"] == 4 and record["dataset"]["domains"] == ["d0", "d1", "d2", "kids"]
    assert RunConfig.from_dict(record["config"]).model.adapter == "mlora"
    info = record["add_domain"]
    assert info["domain_id"] == 3 and info["unseen_id_rows"]["uid"] >= 5 and info["params_trained"] > 0
    assert info["train_rows"] + info["val_rows"] == len(new_domain_frame())
    assert record["val"]["domain_auc"] is not None and record["epochs"] >= 1
    vocab = Vocabulary.load(os.path.join(plus_run, "vocab.npz"))
    assert vocab.domain_names == ["d0", "d1", "d2", "kids"] and vocab.vocab_sizes["domain"] == 4
    assert vocab.vocab_sizes["uid"] == 200  # the id tables keep their size


def test_export_serves_the_new_domain_and_the_old_export_rejects_it(plus_run, mlora_export, tmp_path):
    signature, metadata = load_export(export_run(plus_run, str(tmp_path / "plus" / "1")))
    assert metadata["n_domains"] == 4
    model = RunFolder.open(plus_run).load_model()
    feed = {"uid": np.array([1, 2, 3, 4]), "pid": np.array([5, 6, 7, 8]), "domain": np.array([3, 3, 0, 2])}
    served = signature(**{f: tf.constant(v) for f, v in feed.items()})["probability"].numpy()
    np.testing.assert_allclose(served, model.predict_on_batch(feed)["probability"], rtol=1e-6, atol=1e-7)
    old_signature, _ = load_export(mlora_export)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be in \[0, 3\)"):
        old_signature(**{f: tf.constant(v) for f, v in feed.items()})


def test_refusals(mlora_run, moe_run, plus_run, tmp_path):
    frame = new_domain_frame()
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match="needs an MLoRA run.*'moe'"):
        add_domain(moe_run, str(path), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="Domain 'd1' exists"):
        add_domain(mlora_run, str(path), str(tmp_path / "out"), domain_name="d1")
    two = tmp_path / "two.csv"
    frame.assign(domain=np.arange(len(frame)) % 2).to_csv(two, index=False)
    with pytest.raises(ValueError, match=r"two\.csv: a new domain's file holds one domain"):
        add_domain(mlora_run, str(two), str(tmp_path / "out"))
    with pytest.raises(FileExistsError, match="already holds a run"):
        add_domain(mlora_run, str(path), plus_run)
    one_class = tmp_path / "clicks.csv"
    frame.assign(label=1).to_csv(one_class, index=False)
    with pytest.raises(ValueError, match="both labels"):
        add_domain(mlora_run, str(one_class), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_model_with_per_domain_parts_outside_the_adapters_is_refused_naming_them(tmp_path):
    # HAMUR+MLoRA: its hyper-network's per-domain factors would start the new domain
    # untrained; the refusal names them and writes nothing.
    from serving_helpers import SYNTHETIC
    from mlora_tf.config import DataConfig, ModelConfig, TrainConfig
    from mlora_tf.runs.train import train_run

    run_dir = str(tmp_path / "hamur")
    config = RunConfig(data=DataConfig(dataset="synthetic", options=dict(SYNTHETIC)),
                       model=ModelConfig(name="hamur", adapter="mlora", hidden_units=(16, 8)),
                       train=TrainConfig(max_epochs=1))
    train_run(config, output_dir=run_dir)
    path = tmp_path / "new.csv"
    new_domain_frame().to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"not supported for model 'hamur'.*hold one entry per domain \(.*hamur_adapter_0"):
        add_domain(run_dir, str(path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
