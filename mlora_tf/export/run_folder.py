"""A run folder as written by `mlora-train` (or `mlora-add-domain`), opened for use."""

from __future__ import annotations

import dataclasses
import json
import os

import keras

from mlora_tf.config import RunConfig
from mlora_tf.export.vocab import Vocabulary
from mlora_tf.run import MODEL_FILE, RESULT_FILE, VOCAB_FILE


@dataclasses.dataclass(eq=False)
class RunFolder:
    """The files of one run.

    Attributes:
        path: the folder.
        record: `result.json` as a dict.
        config: the resolved `RunConfig` of the run (`record["config"]`).
        vocabulary: `vocab.npz`: training ids, vocabulary sizes, domain names.
    """

    path: str
    record: dict
    config: RunConfig
    vocabulary: Vocabulary

    @classmethod
    def open(cls, path: str) -> "RunFolder":
        """Read `result.json` and `vocab.npz` of `path` (the model loads on demand).

        Raises:
            FileNotFoundError: naming the first missing file.
            ValueError: for a `result.json` without a valid `config`.
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
        config = RunConfig.from_dict(record["config"])
        vocabulary = Vocabulary.load(os.path.join(path, VOCAB_FILE))
        return cls(path=path, record=record, config=config, vocabulary=vocabulary)

    @property
    def model_path(self) -> str:
        return os.path.join(self.path, MODEL_FILE)

    def load_model(self) -> keras.Model:
        """`model.keras` (the package's layers are registered on import)."""
        import mlora_tf  # noqa: F401  (registers the layers)

        return keras.saving.load_model(self.model_path)
