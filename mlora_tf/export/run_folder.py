"""A run folder as written by `mlora-train` (or `mlora-add-domain`), opened for use."""

from __future__ import annotations

import dataclasses
import json
import os

import keras

from mlora_tf.config import MultiTaskRunConfig, RunConfig, run_config_from_dict
from mlora_tf.export.vocab import Vocabulary
from mlora_tf.run import MODEL_FILE, RESULT_FILE, VOCAB_FILE


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
