"""`mlora-export` on multi-task runs: the signature against the Keras model, the OOV
rows, the domain check, saved_model_cli, a TF Serving PredictRequest, and the programs
that refuse multi-task runs.

Three run folders: M3oE and the `shared_bottom` baseline, trained here for one epoch
(M3oE exported by the `mlora-export` program, the others by `export_run`), and an
`mlp` baseline (one embedding table per feature per (domain, task) objective) whose
run folder is written with random weights instead of training (its training alone
would take longer than this whole file)."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from serving_helpers import Background, saved_model_cli_path, start_cli, tiny_multitask_config
from mlora_tf.export import RunFolder, export_run, feature_tables, load_export

KINDS = ("m3oe", "shared_bottom", "mlp")
TASKS = ("click", "like")
OUTPUTS = ("click", "click_logit", "like", "like_logit")
SPARSE = ("uid", "pid", "domain", "gender", "occupation", "zip", "cate_id")
DENSE = ("age",)
DOMAINS = r"\(0 age<25, 1 age25-34, 2 age35\+\)"


@dataclasses.dataclass
class Setup:
    runs: dict
    exports: dict
    dataset: object
    jobs: dict
    _models: dict = dataclasses.field(default_factory=dict)
    _loaded: dict = dataclasses.field(default_factory=dict)

    def model(self, kind):
        """The run's Keras model (loaded once; do not change its weights)."""
        if kind not in self._models:
            self._models[kind] = RunFolder.open(self.runs[kind]).load_model()
        return self._models[kind]

    def export(self, kind):
        """`load_export` of the run's export (loaded once)."""
        if kind not in self._loaded:
            self._loaded[kind] = load_export(self.exports[kind])
        return self._loaded[kind]

    def rows(self, n=300, seed=0):
        """`n` training rows (every id seen in training), domains mixed in one batch."""
        train = self.dataset.splits["train"]
        idx = np.random.default_rng(seed).permutation(train["uid"].size)[:n]
        feed = {f: np.asarray(train[f][idx], np.int64) for f in SPARSE}
        feed.update({f: np.asarray(train[f][idx], np.float32) for f in DENSE})
        return feed


def _random_weights_run(path, config, dataset):
    """A multi-task run folder as `train_multitask_run` writes it, its model built
    with weights drawn at random (large enough that every id row matters)."""
    from mlora_tf.models import DataSpec, build_multitask_model
    from mlora_tf.export.run_folder import save_vocabularies

    model = build_multitask_model(config.model, DataSpec.from_dataset(dataset))
    rng = np.random.default_rng(7)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, tuple(variable.shape)).astype(np.float32))
    os.makedirs(path)
    model.save(os.path.join(path, "model.keras"))
    save_vocabularies(dataset, os.path.join(path, "vocab.npz"))
    record = {"kind": "multitask", "model": config.model.name, "tasks": list(dataset.labels), "config": config.to_dict()}
    with open(os.path.join(path, "result.json"), "w") as f:
        json.dump(record, f)


@pytest.fixture(scope="module")
def mt(tmp_path_factory):
    """The three runs and their exports; `saved_model_cli show` on the M3oE export
    started in the background."""
    from mlora_tf.runs.multitask import load_multitask_dataset, train_multitask_run

    root = tmp_path_factory.mktemp("multitask")
    runs = {kind: str(root / "runs" / kind) for kind in KINDS}
    exports = {kind: str(root / "export" / kind / "1") for kind in KINDS}
    jobs = {}
    try:
        config = tiny_multitask_config("m3oe")
        dataset = load_multitask_dataset(config)
        assert tuple(dataset.labels) == TASKS
        train_multitask_run(config, output_dir=runs["m3oe"], dataset=dataset)
        jobs["export"] = start_cli("export", f"--run_dir={runs['m3oe']}", f"--export_dir={exports['m3oe']}")
        train_multitask_run(tiny_multitask_config("shared_bottom"), output_dir=runs["shared_bottom"], dataset=dataset)
        export_run(runs["shared_bottom"], exports["shared_bottom"])
        _random_weights_run(runs["mlp"], tiny_multitask_config("mlp"), dataset)
        export_run(runs["mlp"], exports["mlp"])
        exported = jobs["export"].result()
        assert exported.returncode == 0, exported.stderr[-3000:]
        tool = saved_model_cli_path()
        if tool:
            jobs["show"] = Background([tool, "show", "--dir", exports["m3oe"], "--all"])
        yield Setup(runs=runs, exports=exports, dataset=dataset, jobs=jobs)
    finally:
        for job in jobs.values():
            if job.proc.poll() is None:
                job.proc.kill()
                job.proc.wait()


def _tensors(feed):
    return {f: tf.constant(np.asarray(v, np.float32 if f in DENSE else np.int64)) for f, v in feed.items()}


def _serve(signature, feed):
    return {k: v.numpy() for k, v in signature(**_tensors(feed)).items()}


def _keras(model, feed):
    """The Keras model's outputs (called eagerly, as the signature calls it)."""
    return {k: v.numpy() for k, v in model(_tensors(feed), training=False).items()}


@pytest.mark.parametrize("kind", KINDS)
def test_signature_inputs_outputs_and_metadata(mt, kind):
    signature, metadata = mt.export(kind)
    assert metadata["kind"] == "multitask" and metadata["model"] == kind
    assert metadata["features"] == ["uid", "pid", "domain", "gender", "occupation", "zip", "cate_id"]
    assert metadata["dense_features"] == list(DENSE) and metadata["tasks"] == list(TASKS)
    assert metadata["outputs"] == list(OUTPUTS) and metadata["n_domains"] == 3
    assert set(metadata["oov_index"]) == set(SPARSE) - {"domain"}
    args, kwargs = signature.structured_input_signature
    assert args == () and set(kwargs) == set(SPARSE + DENSE)
    for name, spec in kwargs.items():
        assert spec.shape.as_list() == [None] and spec.dtype == (tf.float32 if name in DENSE else tf.int64), name
    assert set(signature.structured_outputs) == set(OUTPUTS)
    for name, spec in signature.structured_outputs.items():
        assert spec.shape.as_list() == [None] and spec.dtype == tf.float32, name


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_equal_the_keras_model_in_mixed_batches_and_row_by_row(mt, kind):
    signature, _ = mt.export(kind)
    feed = mt.rows()
    assert set(feed["domain"].tolist()) == {0, 1, 2}
    served = _serve(signature, feed)
    python = _keras(mt.model(kind), feed)
    for key in OUTPUTS:
        assert served[key].shape == (300,) and served[key].dtype == np.float32
        np.testing.assert_allclose(served[key], python[key], rtol=0, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(served["click"], 1 / (1 + np.exp(-served["click_logit"].astype(np.float64))), atol=1e-6)
    # Each row served alone gives its row of the mixed batch (three rows per domain).
    picked = np.concatenate([np.flatnonzero(feed["domain"] == d)[:3] for d in range(3)])
    for i in picked:
        alone = _serve(signature, {f: v[i : i + 1] for f, v in feed.items()})
        for key in OUTPUTS:
            np.testing.assert_allclose(alone[key], python[key][i : i + 1], rtol=0, atol=1e-6, err_msg=(key, i))
    # ... and the domain id matters (otherwise the checks above could be vacuous).
    shifted = _serve(signature, {**feed, "domain": (feed["domain"] + 1) % 3})
    assert max(np.abs(shifted[t] - served[t]).max() for t in TASKS) > 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_unseen_ids_are_served_with_the_mean_row_of_every_table(mt, kind):
    run = RunFolder.open(mt.runs[kind])
    vocab = run.vocabulary
    size, train_ids = vocab.vocab_sizes["uid"], vocab.train_ids["uid"]
    seen_uid = int(train_ids[0])
    in_vocab_unseen = sorted(set(range(size)) - set(train_ids.tolist()))
    unseen = in_vocab_unseen[:1] + [size, size + 7, -3, 10**12]
    feed = mt.rows(n=40, seed=1)

    # The rule: the OOV row is the mean of the training ids' rows, in every uid table
    # (the mlp baseline has one per (domain, task)). Put it into a seen id's row of a
    # copy of the model ...
    expected_model = run.load_model()
    tables = feature_tables(expected_model)["uid"]
    assert len(tables) == (len(TASKS) * 3 if kind == "mlp" else 1)  # mlp: one per (domain, task)
    means = {}
    for variable in tables:
        values = variable.numpy()
        means[variable.path] = values[train_ids].astype(np.float64).mean(axis=0).astype(np.float32)
        values[seen_uid] = means[variable.path]
        variable.assign(values)
    expected = _keras(expected_model, {**feed, "uid": np.full(40, seen_uid)})
    # ... and the export gives exactly that to every unseen uid.
    signature, metadata = mt.export(kind)
    assert metadata["oov_index"]["uid"] == size
    for uid in unseen:
        served = _serve(signature, {**feed, "uid": np.full(40, uid)})
        for key in OUTPUTS:
            np.testing.assert_allclose(served[key], expected[key], rtol=0, atol=1e-6, err_msg=(key, uid))
    own = _serve(signature, {**feed, "uid": np.full(40, seen_uid)})
    assert max(np.abs(own[t] - expected[t]).max() for t in TASKS) > 1e-7
    # The exported tables themselves: the trained rows, then the mean row.
    trained = {v.path: v.numpy() for v in feature_tables(mt.model(kind))["uid"]}
    exported = {v.name[: -len(":0")]: v.numpy() for v in signature._loaded.model_variables}
    for path, values in trained.items():
        assert exported[path].shape == (size + 1,) + values.shape[1:], path
        np.testing.assert_array_equal(exported[path][:size], values)
        np.testing.assert_array_equal(exported[path][size], means[path])


def test_out_of_range_domain_and_bad_lengths_are_errors(mt):
    signature, _ = mt.export("m3oe")
    feed = mt.rows(n=2)
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=rf"`domain` ids must be in \[0, 3\) {DOMAINS}"):
            _serve(signature, {**feed, "domain": np.array(bad)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="`age` and `domain` must have the same length"):
        _serve(signature, {**feed, "age": np.array([0.5, 0.5, 0.5])})
    assert _serve(signature, {**feed, "domain": np.array([0, 2])})["like"].shape == (2,)


def test_saved_model_cli_show_lists_both_tasks(mt):
    if "show" not in mt.jobs:
        pytest.skip("saved_model_cli is not installed next to this Python")
    show = mt.jobs["show"].result()
    assert show.returncode == 0, show.stderr[-2000:]
    text = show.stdout
    assert "signature_def['serving_default']" in text
    for name in SPARSE:
        assert re.search(rf"inputs\['{name}'\] tensor_info:\s+dtype: DT_INT64\s+shape: \(-1\)", text), name
    assert re.search(r"inputs\['age'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1\)", text)
    for name in OUTPUTS:
        assert re.search(rf"outputs\['{name}'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1\)", text), name


def test_predict_request_proto_is_answered(mt):
    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2", reason="tensorflow-serving-api is not installed (pip install -e .[serving])"
    )
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.saved_model import loader_impl

    export = mt.exports["m3oe"]
    feed = mt.rows(n=5, seed=2)
    feed["uid"][0] = 10**9  # unseen: the OOV row
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m3oe"
    request.model_spec.signature_name = "serving_default"
    for name, values in feed.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())

    # TF Serving checks the request against the SavedModel's SignatureDef.
    signature_def = loader_impl.parse_saved_model(export).meta_graphs[0].signature_def["serving_default"]
    assert set(request.inputs) == set(signature_def.inputs) == set(SPARSE + DENSE)
    for name, tensor in request.inputs.items():
        dtype = types_pb2.DT_FLOAT if name in DENSE else types_pb2.DT_INT64
        assert tensor.dtype == signature_def.inputs[name].dtype == dtype, name
        assert [d.size for d in signature_def.inputs[name].tensor_shape.dim] == [-1]
    assert set(signature_def.outputs) == set(OUTPUTS)

    signature, _ = mt.export("m3oe")
    outputs = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    direct = _serve(signature, feed)
    for key in OUTPUTS:
        assert response.outputs[key].dtype == signature_def.outputs[key].dtype == types_pb2.DT_FLOAT
        answered = tf.make_ndarray(response.outputs[key])
        assert answered.shape == (5,)
        np.testing.assert_array_equal(answered, direct[key])
    for task in TASKS:
        assert np.all((direct[task] > 0) & (direct[task] < 1))


def test_export_program_prints_the_multitask_signature(mt):
    proc = mt.jobs["export"].result()
    assert mt.exports["m3oe"] in proc.stdout
    assert ("inputs uid, pid, domain, gender, occupation, zip, cate_id (int64 [None]), age (float32 [None]); "
            "outputs click, click_logit, like, like_logit (float32 [None])") in proc.stdout
    assert "tasks: click, like (model m3oe)" in proc.stdout


def test_evaluate_and_add_domain_refuse_multitask_runs(mt, tmp_path):
    from mlora_tf.runs.add_domain import add_domain
    from mlora_tf.runs.evaluate import evaluate

    for path in (mt.runs["m3oe"], mt.exports["m3oe"]):
        with pytest.raises(ValueError, match=r"mlora-evaluate supports single-task runs only.*tasks click, like"):
            evaluate(path)
    with pytest.raises(ValueError, match=r"mlora-add-domain supports single-task runs only.*model 'm3oe'"):
        add_domain(mt.runs["m3oe"], str(tmp_path / "new.csv"), str(tmp_path / "out"))
    run = RunFolder.open(mt.runs["shared_bottom"])
    assert run.multitask and run.tasks == TASKS and run.model_name == "shared_bottom"
