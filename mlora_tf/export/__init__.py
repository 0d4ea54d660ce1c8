"""Serving: a trained run as a TF Serving SavedModel (`mlora-export`).

`export_run(run_dir, export_dir)` writes the SavedModel of a single-task run or of a
multi-task one (any registered multi-task model: one probability and logit per task);
`ServingModule` is the graph (raw-id lookups with an out-of-vocabulary row, the domain
check, the Keras model); `Vocabulary` is a run's `vocab.npz`; `RunFolder` opens a run
folder of either kind.
"""

from mlora_tf.export.run_folder import RunFolder
from mlora_tf.export.serving import (
    SIGNATURE_KEY,
    ServingModule,
    export_run,
    is_export,
    load_export,
    read_export_metadata,
    serving_module,
    task_output_names,
)
from mlora_tf.export.vocab import Vocabulary
from mlora_tf.export.weights import feature_tables, oov_row, rebuild, transfer, with_oov_rows, without_oov_rows

__all__ = [
    "SIGNATURE_KEY",
    "RunFolder",
    "ServingModule",
    "Vocabulary",
    "export_run",
    "feature_tables",
    "is_export",
    "load_export",
    "oov_row",
    "read_export_metadata",
    "rebuild",
    "serving_module",
    "task_output_names",
    "transfer",
    "with_oov_rows",
    "without_oov_rows",
]
