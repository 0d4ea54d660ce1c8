"""`mlora-export`: the SavedModel's signature against the Python model, the OOV row,
the domain check, saved_model_cli, and a TF Serving PredictRequest."""

import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from serving_helpers import FEATURES, Background, check_signature_equals_python
from serving_helpers import serve as _serve
from mlora_tf.export import RunFolder, export_run, load_export, serving_module


def _rows(dataset, n=600, seed=0):
    """`n` training rows (every id seen in training), domains mixed in one batch."""
    train = dataset.splits["train"]
    idx = np.random.default_rng(seed).permutation(train["uid"].size)[:n]
    return {f: train[f][idx] for f in FEATURES}


@pytest.mark.parametrize("kind", ["mlora", "moe"])
def test_signature_equals_python_and_mixed_batches_are_exact(kind, request, run_dataset):
    run_dir = request.getfixturevalue(f"{kind}_run")
    signature, metadata = load_export(request.getfixturevalue(f"{kind}_export"))
    assert metadata["features"] == list(FEATURES) and metadata["n_domains"] == 3
    model = RunFolder.open(run_dir).load_model()
    feed = _rows(run_dataset(run_dir))
    assert len(feed["domain"]) == 600
    check_signature_equals_python(signature, model, feed, min_shift=1e-4)


def test_unseen_ids_are_served_with_the_mean_row(mlora_run, mlora_export):
    run = RunFolder.open(mlora_run)
    vocab = run.vocabulary
    seen_uid = int(vocab.train_ids["uid"][0])
    in_vocab_unseen = sorted(set(range(vocab.vocab_sizes["uid"])) - set(vocab.train_ids["uid"].tolist()))
    assert in_vocab_unseen, "the synthetic train split should leave some uids out"
    unseen = [in_vocab_unseen[0], vocab.vocab_sizes["uid"], vocab.vocab_sizes["uid"] + 7, -3, 10**12]
    rng = np.random.default_rng(1)
    pids = rng.choice(vocab.train_ids["pid"], 40)
    domains = np.arange(40) % 3

    # What the README documents: the OOV row is the mean of the training ids' rows, in
    # the embedding and in the wide table. Put it into a seen id's row of a copy...
    expected_model = run.load_model()
    user_emb = expected_model.get_layer("user_emb").embeddings
    wide = expected_model.get_layer("linear_logit").tables[0]
    for variable in (user_emb, wide):
        values = variable.numpy()
        values[seen_uid] = values[vocab.train_ids["uid"]].astype(np.float64).mean(axis=0).astype(np.float32)
        variable.assign(values)
    expected = expected_model.predict_on_batch(
        {"uid": np.full(40, seen_uid), "pid": pids, "domain": domains}
    )["probability"]
    # ... and the export gives exactly that to every unseen uid.
    signature, metadata = load_export(mlora_export)
    assert metadata["oov_index"] == {"uid": 200, "pid": 100}
    for uid in unseen:
        served = _serve(signature, {"uid": np.full(40, uid), "pid": pids, "domain": domains})["probability"]
        np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-7)
    # A seen id keeps its own row (differs from the OOV row's answer).
    own = _serve(signature, {"uid": np.full(40, seen_uid), "pid": pids, "domain": domains})["probability"]
    assert np.abs(own - expected).max() > 1e-6
    # The OOV row itself, in the serving graph's tables.
    module = serving_module(run)
    table = module.model.get_layer("user_emb").embeddings.numpy()
    assert table.shape[0] == vocab.vocab_sizes["uid"] + 1
    np.testing.assert_array_equal(table[-1], user_emb.numpy()[seen_uid])


def test_out_of_range_domain_and_bad_lengths_are_errors(mlora_export):
    signature, _ = load_export(mlora_export)
    ok = {"uid": np.array([1, 2]), "pid": np.array([1, 2])}
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"`domain` ids must be in \[0, 3\) \(0 d0, 1 d1, 2 d2\)"):
            _serve(signature, {**ok, "domain": np.array(bad)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        _serve(signature, {"uid": np.array([1, 2, 3]), "pid": np.array([1, 2]), "domain": np.array([0, 1])})
    assert _serve(signature, {**ok, "domain": np.array([0, 2])})["probability"].shape == (2,)


def test_export_refuses_an_existing_folder_and_leaves_no_temp_files(mlora_run, mlora_export, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite"):
        export_run(mlora_run, mlora_export)
    target = tmp_path / "m" / "1"
    export_run(mlora_run, str(target))
    export_run(mlora_run, str(target), overwrite=True)
    assert sorted(os.listdir(tmp_path / "m")) == ["1"]
    assert (target / "saved_model.pb").exists() and oct(os.stat(target).st_mode & 0o055) != "0o0"
    with pytest.raises(FileNotFoundError, match="result.json"):
        export_run(str(tmp_path), str(tmp_path / "x" / "1"))


def _saved_model_cli():
    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(path):
        pytest.skip(f"saved_model_cli is not installed next to {sys.executable}")
    return path


def test_saved_model_cli_show_and_run(mlora_export):
    tool = _saved_model_cli()
    feed = {"uid": [1, 2, 3, 10**9], "pid": [4, 5, 6, 7], "domain": [0, 1, 2, 0]}
    exprs = ";".join(f"{k}={v}" for k, v in feed.items())  # literals only; int64 arrays on load
    show = Background([tool, "show", "--dir", mlora_export, "--all"])
    run = Background([tool, "run", "--dir", mlora_export, "--tag_set", "serve", "--signature_def", "serving_default",
                      "--input_exprs", exprs])
    show = show.result()
    assert show.returncode == 0, show.stderr[-2000:]
    text = show.stdout
    assert "signature_def['serving_default']" in text
    for name in FEATURES:
        assert re.search(rf"inputs\['{name}'\] tensor_info:\s+dtype: DT_INT64\s+shape: \(-1\)", text), name
    for name in ("probability", "logit"):
        assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1\)", text), name

    run = run.result()
    assert run.returncode == 0, run.stderr[-2000:]
    match = re.search(r"Result for output key probability:\s*\[([^\]]*)\]", run.stdout)
    assert match, run.stdout[-2000:]
    answered = np.array([float(x) for x in match.group(1).split()])
    signature, _ = load_export(mlora_export)
    np.testing.assert_allclose(answered, _serve(signature, feed)["probability"], rtol=1e-5)


def test_predict_request_proto_is_answered(mlora_export):
    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2", reason="tensorflow-serving-api is not installed (pip install -e .[serving])"
    )
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.saved_model import loader_impl

    # The request a client sends to TF Serving (gRPC Predict), as the README's REST body.
    body = {"signature_name": "serving_default", "inputs": {"uid": [1, 2, 3], "pid": [4, 5, 6], "domain": [0, 2, 1]}}
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "wdl_mlora"
    request.model_spec.signature_name = body["signature_name"]
    for name, values in body["inputs"].items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(values, np.int64)))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())

    # TF Serving checks the request against the SavedModel's SignatureDef.
    meta_graph = loader_impl.parse_saved_model(mlora_export).meta_graphs[0]
    signature_def = meta_graph.signature_def[request.model_spec.signature_name]
    assert set(request.inputs) == set(signature_def.inputs)
    for name, tensor in request.inputs.items():
        info = signature_def.inputs[name]
        assert tensor.dtype == info.dtype == types_pb2.DT_INT64
        assert [d.size for d in info.tensor_shape.dim] == [-1]
        assert len(tensor.tensor_shape.dim) == 1

    signature, _ = load_export(mlora_export)
    outputs = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    probability = tf.make_ndarray(response.outputs["probability"])
    assert response.outputs["probability"].dtype == signature_def.outputs["probability"].dtype == types_pb2.DT_FLOAT
    assert probability.shape == (3,) and np.all((probability > 0) & (probability < 1))
    np.testing.assert_allclose(
        probability, _serve(signature, {k: np.array(v) for k, v in body["inputs"].items()})["probability"], rtol=1e-6
    )
