"""A run as a TF Serving SavedModel: raw ids in, probabilities out.

`export_run(run_dir, export_dir)` writes a SavedModel whose `serving_default` signature
takes the raw ids of every id feature the model was trained on (int64, shape `[None]`)
and its dense features (float32, `[None]`), and returns float32 `[None]` outputs:

* a single-task run (`mlora-train`): inputs `uid`, `pid`, `domain`, then every further
  sparse feature its model was trained on (a CSV's extra columns, e.g. `device`,
  `price`), in the dataset's order; outputs `probability` and `logit`. With the default
  three features the signature is exactly `uid`, `pid`, `domain`;
* a multi-task run (`mlora-train --task_set=...`, any registered multi-task model:
  M3oE and its baselines): inputs every sparse feature of the model (`uid`, `pid`,
  `gender`, `occupation`, `zip`, `cate_id`, `domain` for M3oE's MovieLens features)
  and every dense one (`age`); outputs `<task>` (the probability) and `<task>_logit`
  for every task, e.g. `click`, `click_logit`, `like`, `like_logit`.

Inside the graph, before the Keras model:

* every id feature goes through a `tf.lookup.StaticHashTable` from the ids seen in
  training to themselves; any other id (unseen in training, outside the vocabulary,
  negative) maps to the feature's OOV row, index `vocab_size`, an extra row appended
  to each of the feature's tables (embedding and wide weight; every per-objective
  table of the multi-task `mlp`) that holds the mean of the training ids' rows
  (`mlora_tf.export.vocab`);
* a hashed feature (`--hash_buckets`) is hashed instead, with the op training used
  (`mlora_tf.data.hashing.hash_tensor`: Fingerprint64 of the value's text mod N), so a
  raw id gets its training row whether or not training saw it; its signature input is
  int64 for integer ids and tf.string for string ids (`hash_buckets` in the metadata);
* a domain id outside `[0, n_domains)` fails the request with an `InvalidArgumentError`
  whose message names the valid range and the domains;
* inputs of different lengths fail the request the same way.

Batches may mix domains: every row is routed by its own domain id.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mlora_tf import __version__
from mlora_tf.data.hashing import HASH_FUNCTION, hash_tensor
from mlora_tf.export.run_folder import RunFolder
from mlora_tf.export.vocab import DOMAIN, Vocabulary
from mlora_tf.export.weights import dense_input_names, id_input_names, input_name, with_oov_rows
from mlora_tf.io import atomic_write_json

SIGNATURE_KEY = "serving_default"
METADATA_FILE = os.path.join("assets.extra", "mlora_tf.json")
OUTPUTS = ("probability", "logit")
"""The outputs of a single-task run's signature."""


def task_output_names(tasks) -> list[str]:
    """The outputs of a multi-task run's signature: `<task>`, `<task>_logit` per task."""
    return [name for task in tasks for name in (task, f"{task}_logit")]


class ServingModule(tf.Module):
    """The serving graph: id lookups, domain check, then the Keras model.

    Call `serve(**inputs)` (a `tf.function` with a fixed input signature) or save the
    module with `signatures={"serving_default": module.serve}`.

    Input shape:
        one int64 tensor of shape `(batch_size,)` per id feature (`features`), then one
        float32 tensor of shape `(batch_size,)` per dense feature (`dense_features`),
        by name.
    Output shape:
        one float32 `(batch_size,)` tensor per name of `outputs`.

    Args:
        model: the trained model *with* OOV rows (`weights.with_oov_rows`): id tables of
            `vocab_size + 1` rows. Its integer inputs are id features, its float
            inputs dense features.
        vocabulary: the run's `Vocabulary`.
        outputs: the model outputs the signature returns (default: a single-task
            model's `probability`, `logit`; `task_output_names(tasks)` for a
            multi-task one).
    """

    def __init__(self, model: keras.Model, vocabulary: Vocabulary, outputs=OUTPUTS, name: str = "mlora_serving"):
        super().__init__(name=name)
        id_inputs = id_input_names(model)
        missing = [f for f in id_inputs if f not in vocabulary.vocab_sizes]
        if missing:
            raise ValueError(f"No vocabulary for model inputs {missing}. Received: {vocabulary.features}")
        if DOMAIN not in id_inputs:
            raise ValueError(f"The model has no `domain` input. Received inputs: {[input_name(t) for t in model.inputs]}")
        model_outputs = list(model.output) if isinstance(model.output, dict) else []
        missing = [k for k in outputs if k not in model_outputs]
        if missing or not outputs:
            raise ValueError(f"The model has no output(s) {missing or 'given'}. Received outputs: {model_outputs}")
        self._set_model(model)
        self.features = [f for f in vocabulary.features if f in id_inputs]
        self.dense_features = dense_input_names(model)
        self.outputs = list(outputs)
        self.n_domains = vocabulary.n_domains
        self.domain_names = list(vocabulary.domain_names)
        self.hashed = {f: h for f, h in vocabulary.hashed.items() if f in self.features}
        self.lookups = {}
        for f in self.features:
            if f == DOMAIN or f in self.hashed:
                continue
            keys = tf.constant(vocabulary.train_ids[f], dtype=tf.int64)
            self.lookups[f] = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, keys),
                default_value=tf.constant(vocabulary.oov_index(f), tf.int64),
                name=f"{f}_lookup",
            )

        def serve(*inputs):
            return self._serve(*inputs)

        # Named parameters (`serve(uid=..., pid=..., domain=...)`), whatever the features.
        serve.__signature__ = inspect.Signature(
            [inspect.Parameter(f, inspect.Parameter.POSITIONAL_OR_KEYWORD) for f in self.input_names]
        )
        self.serve = tf.function(
            serve,
            input_signature=[tf.TensorSpec([None], self.input_dtype(f), name=f) for f in self.features]
            + [tf.TensorSpec([None], tf.float32, name=f) for f in self.dense_features],
        )
        # The SavedModel holds the variables the signature reads, as plain
        # `tf.Variable`s (what TF Serving's loader restores), not the Keras objects.
        self.model_variables = list(self.serve.get_concrete_function().variables)

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _set_model(self, model):
        # Not a tracked dependency: saving the Keras model object itself gives a
        # SavedModel whose TF1-style loading (TF Serving, saved_model_cli run) cannot
        # find the variables. The variables are tracked in `model_variables`.
        self._model = model

    @property
    def model(self) -> keras.Model:
        """The Keras model the signature calls (id tables with the OOV row)."""
        return self._model

    @property
    def input_names(self) -> list[str]:
        """The signature's inputs: the id features, then the dense features."""
        return self.features + self.dense_features

    def input_dtype(self, feature: str):
        """The signature dtype of an id feature: tf.string for a string-hashed one, else int64."""
        hashed = self.hashed.get(feature)
        return tf.string if hashed is not None and hashed.kind == "string" else tf.int64

    def _map(self, feature: str, x):
        if feature in self.lookups:
            return self.lookups[feature].lookup(x)
        if feature in self.hashed:
            return hash_tensor(x, self.hashed[feature].buckets)
        return tf.identity(x)

    def _serve(self, *inputs):
        inputs = dict(zip(self.input_names, inputs))
        domain = inputs[DOMAIN]
        valid = tf.logical_and(domain >= 0, domain < self.n_domains)
        shown = ", ".join(f"{i} {n}" for i, n in enumerate(self.domain_names[:20]))
        checks = [
            tf.debugging.Assert(
                tf.reduce_all(valid),
                [f"`domain` ids must be in [0, {self.n_domains}) ({shown}). Received out-of-range ids:",
                 tf.boolean_mask(domain, tf.logical_not(valid))],
                summarize=10,
                name="domain_in_range",
            )
        ]
        for f, x in inputs.items():
            if f != DOMAIN:
                checks.append(
                    tf.debugging.assert_equal(
                        tf.size(x), tf.size(domain), message=f"`{f}` and `domain` must have the same length.",
                        name=f"{f}_length",
                    )
                )
        with tf.control_dependencies(checks):
            mapped = {f: self._map(f, x) for f, x in inputs.items()}
            out = self._model(mapped, training=False)
        return {k: tf.identity(tf.reshape(out[k], [-1]), name=k) for k in self.outputs}

    def predict(self, **inputs) -> dict:
        """Numpy convenience: `predict(uid=[...], pid=[...], domain=[...])` (dense
        features as floats; a string-hashed feature's ids as strings)."""
        feed = {
            f: tf.constant(np.asarray(inputs[f], dtype=object if self.input_dtype(f) == tf.string else np.int64))
            for f in self.features
        }
        feed.update({f: tf.constant(np.asarray(inputs[f], dtype=np.float32)) for f in self.dense_features})
        out = self.serve(**feed)
        return {k: v.numpy() for k, v in out.items()}


def serving_module(run: RunFolder | str) -> ServingModule:
    """The `ServingModule` of a run folder, single-task or multi-task (in memory;
    `export_run` saves it)."""
    if isinstance(run, str):
        run = RunFolder.open(run)
    model = with_oov_rows(run.load_model(), run.config.model, run.vocabulary, run.tasks)
    outputs = task_output_names(run.tasks) if run.multitask else OUTPUTS
    return ServingModule(model, run.vocabulary, outputs=outputs)


def export_run(run_dir: str, export_dir: str, overwrite: bool = False) -> str:
    """Write the run in `run_dir` as a TF Serving SavedModel in `export_dir`.

    `export_dir` is the version folder TF Serving loads (`.../MODEL_NAME/1`). It is
    written next to its final place and renamed into it, so a server watching the
    parent folder never sees a half-written version. It also holds
    `assets.extra/mlora_tf.json` (kind, features, dense features, tasks, outputs,
    domains, OOV rows, the run's config).

    Args:
        run_dir: a run folder (`result.json`, `model.keras`, `vocab.npz`) of a
            single-task or a multi-task run.
        export_dir: the SavedModel folder to create.
        overwrite: replace an existing `export_dir` (otherwise an error).

    Returns:
        `export_dir`.

    Raises:
        FileExistsError: `export_dir` exists and `overwrite` is false.
    """
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(f"{export_dir} exists; choose another version folder or pass overwrite (--overwrite).")
    run = RunFolder.open(run_dir)
    module = serving_module(run)
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(export_dir)}.", suffix=".tmp")
    try:
        # mkdtemp makes a private (0700) folder; a server running as another user
        # (the tensorflow/serving container) must be able to read the version folder.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        tf.saved_model.save(module, tmp, signatures={SIGNATURE_KEY: module.serve.get_concrete_function()})
        vocabulary = run.vocabulary
        atomic_write_json(
            os.path.join(tmp, METADATA_FILE),
            {
                "format": "mlora_tf.export",
                "version": __version__,
                "source_run": os.path.abspath(run_dir),
                "signature": SIGNATURE_KEY,
                "kind": "multitask" if run.multitask else "single_task",
                "model": run.model_name,
                "features": module.features,
                "dense_features": module.dense_features,
                "tasks": list(run.tasks),
                "outputs": module.outputs,
                "n_domains": vocabulary.n_domains,
                "domain_names": vocabulary.domain_names,
                "vocab_sizes": vocabulary.vocab_sizes,
                "oov_index": {f: vocabulary.oov_index(f) for f in module.lookups},
                "oov_rule": "ids not seen in training -> row vocab_size = mean of the training ids' rows",
                **({"hash_buckets": {f: h.to_dict() for f, h in module.hashed.items()},
                    "hash_function": HASH_FUNCTION} if module.hashed else {}),
                "config": run.config.to_dict(),
            },
        )
        if os.path.exists(export_dir):
            old = tmp + ".old"
            os.replace(export_dir, old)
            os.replace(tmp, export_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logging.info(
        "Exported %s to %s (signature %r, inputs %s, outputs %s)", run_dir, export_dir, SIGNATURE_KEY,
        module.input_names, module.outputs,
    )
    return export_dir


def is_export(path: str) -> bool:
    return os.path.exists(os.path.join(path, "saved_model.pb"))


def read_export_metadata(export_dir: str) -> dict:
    """`assets.extra/mlora_tf.json` of an export (kind, features, dense features,
    tasks, outputs, domains, the run config). Exports written before multi-task
    export lack `kind`, `dense_features` and `tasks`: they read as single-task."""
    path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: {export_dir} was not written by mlora-export.")
    with open(path) as f:
        metadata = json.load(f)
    metadata.setdefault("kind", "single_task")
    metadata.setdefault("dense_features", [])
    metadata.setdefault("tasks", [])
    return metadata


def load_export(export_dir: str):
    """The `serving_default` signature of an export and its metadata.

    Returns:
        `(signature, metadata)`: call `signature(uid=..., pid=..., domain=...)` with
        int64 tensors, one per name of `metadata["features"]` (further sparse features
        too), and float32 ones for `metadata["dense_features"]`; it returns
        `{name: tensor}` for `metadata["outputs"]` (`probability`, `logit` for a
        single-task run; `<task>`, `<task>_logit` per task for a multi-task one).
    """
    metadata = read_export_metadata(export_dir)
    loaded = tf.saved_model.load(export_dir)
    signature = loaded.signatures[SIGNATURE_KEY]
    signature._loaded = loaded  # keep the tables and variables alive with the function
    return signature, metadata
