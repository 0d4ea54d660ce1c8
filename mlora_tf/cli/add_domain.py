"""`mlora-add-domain`: add a domain to a trained MLoRA run without retraining the backbone.

Examples:
  mlora-add-domain --run_dir=runs/wdl_mlora --domain_data=new_market.csv --output_dir=runs/wdl_mlora_plus
  mlora-add-domain --run_dir=runs/wdl_mlora --domain_data=train.csv --val_data=val.csv \\
      --domain_name=kids --output_dir=runs/wdl_mlora_kids

Only the new domain's adapter slot trains (A, B and bias of slot D in every layer);
every old domain's predictions stay bit-for-bit the same. The output is a normal run
folder: `mlora-export` serves all domains from it.

Single-task MLoRA runs only: a multi-task run (`mlora-train --task_set=...`) is refused
with an error (exit status 2).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from mlora_tf.cli import tf_log
from mlora_tf.cli.common import check_input_dir, check_input_file, configure_threads_from_flags, define_thread_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("run_dir", None, "Run folder of a trained MLoRA model (mlora-train --adapter=mlora).")
flags.DEFINE_string("domain_data", None, "CSV or parquet with the new domain's rows: uid,pid,label and any extra id feature the run was trained with (a one-valued domain column is allowed).")
flags.DEFINE_string("output_dir", None, "Folder for the new run (model.keras, vocab.npz, result.json).")
flags.DEFINE_string("val_data", None, "The new domain's validation rows (default: a stratified --val_fraction of --domain_data).")
flags.DEFINE_string("domain_name", None, "Name of the new domain (default: the --domain_data file name).")
flags.DEFINE_float("val_fraction", 0.2, "Share of --domain_data held out for validation when --val_data is not given.")
flags.DEFINE_integer("max_epochs", None, "Epoch limit (default: the run's).")
flags.DEFINE_integer("patience", None, "Early-stopping patience (default: the run's).")
flags.DEFINE_float("learning_rate", None, "Adam learning rate (default: the run's).")
flags.DEFINE_integer("batch_size", None, "Training batch size (default: the run's).")
flags.DEFINE_integer("seed", None, "Seed of the new slot's initial A, the new embedding row, the split and shuffles (default: the run's).")
flags.DEFINE_boolean("overwrite", False, "Replace a run already in --output_dir.")
define_thread_flags()
tf_log.define_flag()


def check_flags() -> None:
    """Every flag and input path, before anything is loaded."""
    if not (FLAGS.run_dir and FLAGS.domain_data and FLAGS.output_dir):
        raise ValueError("--run_dir, --domain_data and --output_dir are required.")
    check_input_dir(FLAGS.run_dir, "run_dir")
    check_input_file(FLAGS.domain_data, "domain_data")
    check_input_file(FLAGS.val_data, "val_data")
    if FLAGS.val_data is None and not 0.0 < FLAGS.val_fraction < 1.0:
        raise ValueError(f"--val_fraction must be between 0 and 1. Received: --val_fraction={FLAGS.val_fraction}")
    for name in ("max_epochs", "patience", "batch_size"):
        value = getattr(FLAGS, name)
        if value is not None and value < (0 if name == "patience" else 1):
            raise ValueError(f"--{name} must be a positive integer. Received: --{name}={value}")
    if FLAGS.learning_rate is not None and not FLAGS.learning_rate > 0:
        raise ValueError(f"--learning_rate must be positive. Received: --learning_rate={FLAGS.learning_rate}")


def main(argv):
    del argv
    try:
        check_flags()
        configure_threads_from_flags()
        from mlora_tf.runs.add_domain import add_domain

        overrides = {
            k: getattr(FLAGS, k)
            for k in ("max_epochs", "patience", "learning_rate", "batch_size", "seed")
            if getattr(FLAGS, k) is not None
        }
        record = add_domain(
            FLAGS.run_dir, FLAGS.domain_data, FLAGS.output_dir, val_data=FLAGS.val_data,
            domain_name=FLAGS.domain_name, val_fraction=FLAGS.val_fraction, train_overrides=overrides,
            overwrite=FLAGS.overwrite,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"mlora-add-domain: error: {e}", file=sys.stderr)
        return 2
    info = record["add_domain"]

    def auc(v):
        return "undefined" if v is None else f"{v:.4f}"

    print(f"domain {info['domain_id']} ({info['domain_name']}): {info['train_rows']} training rows, "
          f"{info['val_rows']} validation rows, {info['params_trained']:,} parameters trained")
    print(f"validation AUC {auc(record['val_before']['domain_auc'])} (new slot at its initial value) -> "
          f"{auc(record['val']['domain_auc'])} after {record['epochs']} epochs")
    print(f"run: {FLAGS.output_dir} ({record['n_domains']} domains: {', '.join(record['dataset']['domains'])})")
    return 0


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
