"""`mlora-train`: train one model on one dataset and write its result record.

Examples:
  mlora-train --dataset=synthetic --model=wdl --adapter=mlora --output_dir=runs/wdl_mlora
  mlora-train --dataset=ml-1m --data_dir=PATH --domain_split=gender --model=wdl \\
      --adapter=mlora --output_dir=runs/x
  mlora-train --config=config/Movielens/wdl_mlora.json --data_dir=PATH --output_dir=runs/x
  mlora-train --list_models
  mlora-train --strategy=mirrored --output_dir=runs/x          # every local GPU
  TF_CONFIG='{"cluster": {"worker": ["h1:2222", "h2:2222"]}, "task": {"type": "worker", "index": 0}}' \\
      mlora-train --strategy=multi_worker --output_dir=runs/x  # one such process per machine
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from mlora_tf.config import RunConfig, parse_options
from mlora_tf.original_config import read_original_config
from mlora_tf.cli.common import configure_threads_from_flags, define_thread_flags
from mlora_tf.training.distribute import STRATEGIES, configure_cpu_devices, is_chief, make_strategy

FLAGS = flags.FLAGS

flags.DEFINE_string("config", None, "JSON config: an original-style MLoRA config file or a saved RunConfig. Flags override it.")
flags.DEFINE_boolean("list_models", False, "Print the registered backbones, one line each, and exit.")
flags.DEFINE_string("output_dir", None, "Folder for result.json, model.keras and TensorBoard logs.")
flags.DEFINE_boolean("tensorboard", False, "Write TensorBoard scalars to OUTPUT_DIR/tensorboard.")
# data
flags.DEFINE_string("dataset", None, "Dataset: synthetic (default), ml-1m, ml-100k, amazon, taobao, csv (the last three from an mlora-prepare folder given as --data_dir).")
flags.DEFINE_string("data_dir", None, "Folder with the raw files (MovieLens: users.dat + ratings.dat, or u.user + u.data).")
flags.DEFINE_string("domain_split", None, "MovieLens domains: gender (default), age, occupation.")
flags.DEFINE_string("cache_dir", None, "Prepared-split cache folder (default ~/.cache/mlora_tf or $MLORA_TF_CACHE).")
flags.DEFINE_integer("split_seed", None, "Seed of the per-domain 60/20/20 split (default 123, as the original).")
flags.DEFINE_list("data_options", None, "Loader options as key=value, e.g. n_domains=4,shift=1.5 for synthetic.")
# model
flags.DEFINE_string("model", None, "Backbone (see --list_models). Default wdl.")
flags.DEFINE_enum("adapter", None, ["none", "mlora", "moe"], "none = Base, mlora = MLoRA, moe = MoE-MLoRA.")
flags.DEFINE_float("lora_reduce", None, "Temperature alpha: rank = max(units // alpha, 1). Default: the backbone's original value.")
flags.DEFINE_integer("lora_rank", None, "Explicit adapter rank (overrides --lora_reduce when >= 1).")
flags.DEFINE_float("dropout", None, "Dropout of the dense stack (default: the backbone's original value, 0.5; STAR 0).")
flags.DEFINE_list("hidden_units", None, "Dense stack widths (default 256,128,64).")
flags.DEFINE_integer("embedding_dim", None, "Embedding size of uid, pid and domain (default: original value, 8; STAR 128).")
flags.DEFINE_integer("experts_per_domain", None, "MoE-MLoRA experts per domain (default 1).")
flags.DEFINE_boolean("as_shipped", None, "Reproduce the original's routing quirks (e.g. xdeepfm builds DeepFM).")
# training
flags.DEFINE_integer("batch_size", None, "Training batch size (default 1024).")
flags.DEFINE_float("learning_rate", None, "Adam learning rate (default 1e-3).")
flags.DEFINE_integer("patience", None, "Early-stopping patience in epochs (default 3).")
flags.DEFINE_integer("max_epochs", None, "Epoch limit (default 100).")
flags.DEFINE_enum("schedule", None, ["joint", "pretrain_finetune"], "MLoRA schedule (default joint).")
flags.DEFINE_boolean("mixed_batches", None, "Training batches mix domains (default: one domain per batch, as the original).")
flags.DEFINE_boolean("restore_best_each_epoch", None, "Reset to the best weights after a non-improving epoch (default true, as the original).")
flags.DEFINE_enum("early_stop_metric", None, ["auc500", "auc"], "AUC for early stopping: the original's 500-threshold (default) or exact.")
flags.DEFINE_enum("moe_schedule", None, ["paper", "as_executed"],
                  "MoE-MLoRA: paper = backbone, then each expert alone on its domain, then the gate (default); "
                  "as_executed = what the fork ran under TF 1.12.")
flags.DEFINE_boolean("moe_carry_best", None, "MoE-MLoRA: carry the best validation metric across phases (the fork's bug; default on for as_executed only).")
flags.DEFINE_boolean("share_optimizer", None, "One Adam for every phase (the fork) instead of one per phase.")
flags.DEFINE_integer("num_experts", None, "MoE-MLoRA total experts (the fork's key; a multiple of the domain count). Overrides --experts_per_domain.")
flags.DEFINE_integer("seed", None, "Seed of initialisers, shuffles and domain order (default 2024).")
define_thread_flags()
# distribution
flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                  "default: one device; mirrored: every local GPU (else every logical CPU device); multi_worker: "
                  "one process per machine, cluster from TF_CONFIG. --batch_size stays the global batch.")
flags.DEFINE_integer("cpu_devices", None, "Split the host CPU into N logical devices (tests and benchmarks: "
                     "--strategy=mirrored then has N replicas on a host without a GPU).")

_OVERRIDES = {
    "dataset": ("data", "dataset"), "data_dir": ("data", "data_dir"), "domain_split": ("data", "domain_split"),
    "cache_dir": ("data", "cache_dir"), "split_seed": ("data", "split_seed"),
    "model": ("model", "name"), "adapter": ("model", "adapter"), "lora_reduce": ("model", "lora_reduce"),
    "lora_rank": ("model", "lora_rank"), "dropout": ("model", "dropout"),
    "experts_per_domain": ("model", "experts_per_domain"), "as_shipped": ("model", "as_shipped"),
    "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
    "patience": ("train", "patience"), "max_epochs": ("train", "max_epochs"), "schedule": ("train", "schedule"),
    "mixed_batches": ("train", "mixed_batches"), "restore_best_each_epoch": ("train", "restore_best_each_epoch"),
    "early_stop_metric": ("train", "early_stop_metric"), "seed": ("train", "seed"),
    "moe_schedule": ("train", "moe_schedule"), "moe_carry_best": ("train", "moe_carry_best"),
    "share_optimizer": ("train", "share_optimizer"), "num_experts": ("model", "num_experts"),
}


def config_from_flags() -> RunConfig:
    """The RunConfig: defaults, then --config, then every flag given on the command line."""
    config = read_original_config(FLAGS.config) if FLAGS.config else RunConfig()
    for flag, (section, field) in _OVERRIDES.items():
        value = getattr(FLAGS, flag)
        if value is not None:
            setattr(getattr(config, section), field, value)
    if FLAGS.hidden_units is not None:
        config.model.hidden_units = tuple(int(u) for u in FLAGS.hidden_units)
    if FLAGS.embedding_dim is not None:
        config.model.user_dim = config.model.item_dim = config.model.domain_dim = FLAGS.embedding_dim
    config.data.options.update(parse_options(FLAGS.data_options))
    return config


def list_models_text() -> str:
    from mlora_tf.models import list_backbones

    return "\n".join(f"{spec.name:<10} {spec.description}" for spec in list_backbones())


def main(argv):
    del argv
    if FLAGS.list_models:
        print(list_models_text())
        return 0
    try:
        # Logical devices, thread pools, then the strategy: each must precede the next
        # and any TensorFlow op (MultiWorkerMirroredStrategy starts the cluster server).
        if FLAGS.cpu_devices is not None:
            configure_cpu_devices(FLAGS.cpu_devices)
        configure_threads_from_flags()
        strategy = make_strategy(FLAGS.strategy)
        config = config_from_flags()
        from mlora_tf.run import format_domain_table, train_run

        record = train_run(config, output_dir=FLAGS.output_dir, tensorboard=FLAGS.tensorboard, strategy=strategy)
    except (ValueError, OSError) as e:
        # Bad input or a failed write (disk full...): one clear line, no stack trace.
        print(f"mlora-train: error: {e}", file=sys.stderr)
        return 2
    label = f"{config.model.name}+{config.model.adapter}"
    print(format_domain_table({label: record}))
    print(
        f"epochs {record['epochs']}, {record['seconds']:.1f}s, params backbone {record['params_backbone']:,}"
        f" adapter {record['params_adapter']:,}"
    )
    if FLAGS.output_dir and is_chief(strategy):
        print(f"result: {os.path.join(FLAGS.output_dir, 'result.json')}")
    return 0


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
