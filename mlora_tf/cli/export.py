"""`mlora-export`: write a trained run as a TF Serving SavedModel.

Examples:
  mlora-export --run_dir=runs/wdl_mlora --export_dir=export/wdl_mlora/1
  mlora-export --run_dir=runs/wdl_mlora --export_dir=export/wdl_mlora/1 --overwrite

  mlora-export --run_dir=runs/m3oe --export_dir=export/m3oe/1     # a multi-task run

The `serving_default` signature of a single-task run takes int64 `uid`, `pid`,
`domain` of shape [None] and returns float32 `probability` and `logit` of shape
[None]. That of a multi-task run (`mlora-train --task_set=...`, M3oE or a baseline)
takes every sparse feature of the model as int64 [None] and every dense feature as
float32 [None], and returns `<task>` (the probability) and `<task>_logit` for every
task, float32 [None]. Ids never seen in training are served with the OOV row (the
mean of the training ids' rows); a domain id outside [0, n_domains) fails the request.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from mlora_tf.cli import tf_log
from mlora_tf.cli.common import check_input_dir, configure_threads_from_flags, define_thread_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("run_dir", None, "Run folder written by mlora-train (result.json, model.keras, vocab.npz).")
flags.DEFINE_string("export_dir", None, "SavedModel folder to write: the version folder TF Serving loads, e.g. export/NAME/1.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing --export_dir.")
define_thread_flags()
tf_log.define_flag()


def check_flags() -> None:
    """Every flag and input path, before anything is loaded."""
    import os

    if not FLAGS.run_dir or not FLAGS.export_dir:
        raise ValueError("--run_dir and --export_dir are required.")
    check_input_dir(FLAGS.run_dir, "run_dir")
    if os.path.exists(FLAGS.export_dir) and not FLAGS.overwrite:
        raise FileExistsError(f"{FLAGS.export_dir} exists; choose another version folder or pass --overwrite.")


def main(argv):
    del argv
    try:
        check_flags()
        configure_threads_from_flags()
        from mlora_tf.export import export_run, read_export_metadata

        path = export_run(FLAGS.run_dir, FLAGS.export_dir, overwrite=FLAGS.overwrite)
        metadata = read_export_metadata(path)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"mlora-export: error: {e}", file=sys.stderr)
        return 2
    domains = ", ".join(f"{i} {n}" for i, n in enumerate(metadata["domain_names"]))
    print(f"SavedModel: {path}")
    inputs = f"{', '.join(metadata['features'])} (int64 [None])"
    if metadata["dense_features"]:
        inputs += f", {', '.join(metadata['dense_features'])} (float32 [None])"
    print(f"signature {metadata['signature']!r}: inputs {inputs}; "
          f"outputs {', '.join(metadata['outputs'])} (float32 [None])")
    if metadata["tasks"]:
        print(f"tasks: {', '.join(metadata['tasks'])} (model {metadata['model']})")
    print(f"domains: {domains}")
    print("OOV rows: " + ", ".join(f"{f} -> {i}" for f, i in metadata["oov_index"].items()))
    return 0


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
