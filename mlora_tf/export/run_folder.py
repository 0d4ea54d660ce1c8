"""A run folder: its file names, writing one (`mlora-train`, `mlora-add-domain`) and
opening one for use (`RunFolder`).

Every kind of run (single-task, multi-task, an added domain) writes the same files:
`model.keras`, `vocab.npz`, then `result.json`, the record, last (so a folder with a
`result.json` is a finished run); a run in progress keeps `checkpoints/` (resume) and,
when asked, `tensorboard/`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

import keras
import numpy as np
from absl import logging

from mlora_tf.config import MultiTaskRunConfig, RunConfig, run_config_from_dict
from mlora_tf.export.vocab import Vocabulary, hashing_arrays
from mlora_tf.io import atomic_write_bytes, atomic_write_json

RESULT_FILE = "result.json"
MODEL_FILE = "model.keras"
VOCAB_FILE = "vocab.npz"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"


def save_model(output_dir: str, model: keras.Model) -> None:
    """`model.keras` into `output_dir` (created if needed), replaced in one rename."""
    os.makedirs(output_dir, exist_ok=True)
    tmp_model = os.path.join(output_dir, "model.tmp.keras")
    model.save(tmp_model)
    os.replace(tmp_model, os.path.join(output_dir, MODEL_FILE))


def save_vocabularies(dataset, path: str) -> None:
    """The ids seen in training (per feature), the vocabulary sizes, the domains and
    the hashed features (`dataset.info["hash_buckets"]`): what serving needs to map raw
    ids exactly as in training."""
    train = dataset.splits["train"]
    arrays = {f"train_ids_{f}": np.unique(np.asarray(train[f], dtype=np.int64)) for f in dataset.features}
    arrays.update({f"vocab_size_{f}": np.int64(dataset.vocab_sizes[f]) for f in dataset.features})
    arrays["domain_names"] = np.asarray([str(n) for n in dataset.domain_names])
    arrays.update(hashing_arrays((getattr(dataset, "info", None) or {}).get("hash_buckets") or {}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def write_record(output_dir: str, record: dict) -> None:
    """`result.json`, atomically: write it after the other files of the run."""
    atomic_write_json(os.path.join(output_dir, RESULT_FILE), record)


def write_run_folder(output_dir: str, model, dataset, record: dict) -> None:
    """`model.keras`, `vocab.npz`, then `result.json` (each written atomically; the
    record last, so a folder with a `result.json` is a finished run)."""
    save_model(output_dir, model)
    save_vocabularies(dataset, os.path.join(output_dir, VOCAB_FILE))
    write_record(output_dir, record)
    logging.info("Wrote %s", os.path.join(output_dir, RESULT_FILE))


def has_result(path: str) -> bool:
    """Whether `path` holds a finished run (its `result.json`)."""
    return os.path.exists(os.path.join(path, RESULT_FILE))


@dataclasses.dataclass(eq=False)
class RunFolder:
    """The files of one run, single-task or multi-task.

    Attributes:
        path: the folder.
        record: `result.json` as a dict.
        config: the resolved config of the run (`record["config"]`): a `RunConfig`, or
            a `MultiTaskRunConfig` for a multi-task run (`"kind": "multitask"`).
        vocabulary: `vocab.npz`: training ids, vocabulary sizes, domain names.
    """

    path: str
    record: dict
    config: RunConfig | MultiTaskRunConfig
    vocabulary: Vocabulary

    @classmethod
    def open(cls, path: str) -> "RunFolder":
        """Read `result.json` and `vocab.npz` of `path` (the model loads on demand).

        Raises:
            FileNotFoundError: naming the first missing file.
            ValueError: for a `result.json` without a valid `config`, or a multi-task
                one without its `tasks`.
        """
        if not os.path.isdir(path):
            raise FileNotFoundError(f"No run folder {path}.")
        for name in (RESULT_FILE, MODEL_FILE, VOCAB_FILE):
            if not os.path.exists(os.path.join(path, name)):
                raise FileNotFoundError(
                    f"{os.path.join(path, name)} is missing: not a finished run folder (mlora-train --output_dir writes it)."
                )
        result_path = os.path.join(path, RESULT_FILE)
        with open(result_path) as f:
            record = json.load(f)
        if "config" not in record:
            raise ValueError(f"{result_path} has no `config`. Received keys: {sorted(record)}")
        config = run_config_from_dict(record["config"])
        vocabulary = Vocabulary.load(os.path.join(path, VOCAB_FILE))
        run = cls(path=path, record=record, config=config, vocabulary=vocabulary)
        if run.multitask and not run.tasks:
            raise ValueError(f"{result_path} is a multi-task run without `tasks`. Received keys: {sorted(record)}")
        return run

    @property
    def multitask(self) -> bool:
        """Whether this is a multi-task run (`mlora-train --task_set=...`)."""
        return isinstance(self.config, MultiTaskRunConfig)

    @property
    def tasks(self) -> tuple[str, ...]:
        """A multi-task run's tasks in the model's output order (`result.json`'s
        `tasks`, else the config's); `()` for a single-task run."""
        if not self.multitask:
            return ()
        return tuple(self.record.get("tasks") or self.config.tasks)

    @property
    def features(self) -> tuple[str, ...]:
        """The sparse (id) features the run's model takes, which a data file to score
        needs as columns.

        A single-task run: `uid, pid, domain`, then its dataset's further features
        (e.g. a CSV's extra columns), as `vocab.npz` records them (in the dataset's
        order: `mlora_tf.export.weights.rebuild` builds the same model from them). A
        multi-task run: its model config's `sparse_features`.
        """
        if self.multitask:
            return tuple(self.config.model.sparse_features)
        from mlora_tf.models.builder import ordered_features

        return ordered_features(self.vocabulary.features)

    @property
    def model_name(self) -> str:
        return self.config.model.name

    @property
    def model_path(self) -> str:
        return os.path.join(self.path, MODEL_FILE)

    def load_model(self) -> keras.Model:
        """`model.keras` (the package's layers are registered on import)."""
        import mlora_tf  # noqa: F401  (registers the layers)

        return keras.saving.load_model(self.model_path)

    def single_task_only(self, program: str, hint: str = "") -> None:
        """Raise ValueError naming `program` when this is a multi-task run (for the
        programs that do not handle one).

        Raises:
            ValueError: for a multi-task run.
        """
        if self.multitask:
            raise ValueError(
                f"{program} supports single-task runs only; {self.path} is a multi-task run "
                f"(model {self.model_name!r}, tasks {', '.join(self.tasks)}).{' ' + hint if hint else ''}"
            )
