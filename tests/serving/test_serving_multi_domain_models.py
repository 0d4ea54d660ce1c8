"""Export of the single-task multi-domain models (EPNet, PPNet, PEPNet, SAR-Net,
AdaSparse, HAMUR, single-task M2M, AdaptDHM) through `mlora-export`'s `export_run`: the
signature of every run (raw `uid`, `pid`, `domain` in, `probability` and `logit` out)
equals the Python model on mixed batches, unseen ids get the mean row, and
out-of-range domains fail the request."""

import numpy as np
import pytest
import tensorflow as tf

from serving_helpers import FEATURES, SYNTHETIC, check_signature_equals_python, serve
from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mlora_tf.export import RunFolder, export_run, load_export

# Each model once, Base or +MLoRA: PEPNet with both gate kinds and the adapters; SAR-Net
# with the adapters (attention, transform and experts around them); AdaSparse Base (its
# pruners inside the stack's transform hook) and +MLoRA; HAMUR both (its adapters with
# and without MLoRA's).
RUNS = [
    ("epnet", "none"), ("ppnet", "mlora"), ("pepnet", "mlora"),
    ("sarnet", "mlora"), ("adasparse", "none"), ("adasparse", "mlora"),
    ("hamur", "none"), ("hamur", "mlora"), ("m2m", "mlora"), ("adaptdhm", "none"),
]


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: "_".join(r))
def exported(request, tmp_path_factory):
    from mlora_tf.runs.train import load_run_dataset, train_run

    name, adapter = request.param
    run_dir = str(tmp_path_factory.mktemp("runs") / f"{name}_{adapter}")
    config = RunConfig(
        data=DataConfig(dataset="synthetic", options=dict(SYNTHETIC)),
        model=ModelConfig(name=name, adapter=adapter, hidden_units=(16, 8)),
        train=TrainConfig(max_epochs=1),
    )
    train_run(config, output_dir=run_dir)
    export_dir = export_run(run_dir, str(tmp_path_factory.mktemp("export") / f"{name}_{adapter}" / "1"))
    signature, metadata = load_export(export_dir)
    run = RunFolder.open(run_dir)
    return request.param, run, signature, metadata, load_run_dataset(run.config)


def test_signature_equals_python_and_mixed_batches_are_exact(exported):
    (name, adapter), run, signature, metadata, dataset = exported
    assert metadata["features"] == list(FEATURES) and metadata["n_domains"] == 3
    assert (run.config.model.name, run.config.model.adapter) == (name, adapter)
    train = dataset.splits["train"]
    idx = np.random.default_rng(0).permutation(train["uid"].size)[:300]
    feed = {f: train[f][idx] for f in FEATURES}
    assert len(feed["domain"]) == 300
    check_signature_equals_python(signature, run.load_model(), feed, min_shift=1e-5)


def test_unseen_ids_are_served_with_the_mean_row(exported):
    _, run, signature, metadata, _ = exported
    vocab = run.vocabulary
    seen_uid = int(vocab.train_ids["uid"][0])
    unseen = [vocab.vocab_sizes["uid"], vocab.vocab_sizes["uid"] + 7, -3, 10**12]
    rng = np.random.default_rng(1)
    pids = rng.choice(vocab.train_ids["pid"], 30)
    domains = np.arange(30) % 3
    # The OOV row is the mean of the training ids' rows (these models have no wide part).
    expected_model = run.load_model()
    user_emb = expected_model.get_layer("user_emb").embeddings
    values = user_emb.numpy()
    values[seen_uid] = values[vocab.train_ids["uid"]].astype(np.float64).mean(axis=0).astype(np.float32)
    user_emb.assign(values)
    expected = expected_model.predict_on_batch({"uid": np.full(30, seen_uid), "pid": pids, "domain": domains})
    assert metadata["oov_index"]["uid"] == vocab.vocab_sizes["uid"]
    for uid in unseen:
        served = serve(signature, {"uid": np.full(30, uid), "pid": pids, "domain": domains})["probability"]
        np.testing.assert_allclose(served, expected["probability"], rtol=1e-6, atol=1e-7)
    own = serve(signature, {"uid": np.full(30, seen_uid), "pid": pids, "domain": domains})["probability"]
    assert np.abs(own - expected["probability"]).max() > 1e-7


def test_out_of_range_domain_and_bad_lengths_are_errors(exported):
    signature = exported[2]
    ok = {"uid": np.array([1, 2]), "pid": np.array([1, 2])}
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"`domain` ids must be in \[0, 3\)"):
            serve(signature, {**ok, "domain": np.array(bad)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        serve(signature, {"uid": np.array([1, 2, 3]), "pid": np.array([1, 2]), "domain": np.array([0, 1])})
    assert serve(signature, {**ok, "domain": np.array([0, 2])})["probability"].shape == (2,)
