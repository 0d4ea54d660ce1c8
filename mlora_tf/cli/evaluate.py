"""`mlora-evaluate`: score a trained run or an export on a split or a file.

Examples:
  mlora-evaluate --run_dir=runs/wdl_mlora                      # its test split
  mlora-evaluate --run_dir=runs/wdl_mlora --split=val
  mlora-evaluate --run_dir=runs/wdl_mlora --data=clicks.csv --output=eval.json
  mlora-evaluate --run_dir=export/wdl_mlora/1 --data=clicks.parquet

Prints per-domain AUC, the original's 500-threshold AUC, logloss and calibration (mean
prediction, observed CTR, their ratio), then WAUC and mean AUC; `--output` writes the
same as JSON.

Single-task runs only: a multi-task run (`mlora-train --task_set=...`) or its export is
refused with an error (exit status 2); its test metrics are in its result.json.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from mlora_tf.cli import tf_log
from mlora_tf.cli.common import check_input_dir, check_input_file, configure_threads_from_flags, define_thread_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("run_dir", None, "Run folder (model.keras) or export folder (saved_model.pb) to score.")
flags.DEFINE_string("data", None, "CSV or parquet file with columns uid,pid,domain,label and any extra id feature of the run. Default: --split of the run's dataset.")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split of the run's own dataset (without --data).")
flags.DEFINE_string("output", None, "Write the metrics as JSON here (atomically).")
flags.DEFINE_integer("batch_size", None, "Prediction batch size (default: the run's eval_batch_size).")
flags.DEFINE_boolean("serving_lookup", False, "Score a run folder through its serving graph: ids unseen in training go to the OOV row, as in an export.")
define_thread_flags()
tf_log.define_flag()


def check_flags() -> None:
    """Every flag and input path, before anything is loaded."""
    if not FLAGS.run_dir:
        raise ValueError("--run_dir is required.")
    check_input_dir(FLAGS.run_dir, "run_dir")
    check_input_file(FLAGS.data, "data")
    if FLAGS.batch_size is not None and FLAGS.batch_size < 1:
        raise ValueError(f"--batch_size must be a positive integer. Received: --batch_size={FLAGS.batch_size}")


def main(argv):
    del argv
    try:
        check_flags()
        configure_threads_from_flags()
        from mlora_tf.runs.evaluate import evaluate, format_report
        from mlora_tf.io import atomic_write_json

        report = evaluate(
            FLAGS.run_dir, data=FLAGS.data, split=FLAGS.split, batch_size=FLAGS.batch_size,
            serving_lookup=FLAGS.serving_lookup,
        )
        if FLAGS.output:
            atomic_write_json(FLAGS.output, report)
    except (ValueError, FileNotFoundError) as e:
        print(f"mlora-evaluate: error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    if FLAGS.output:
        print(f"metrics: {FLAGS.output}")
    return 0


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
