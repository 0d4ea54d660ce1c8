"""`mlora-train`: train one model on one dataset and write its result record.

Examples:
  mlora-train --dataset=synthetic --model=wdl --adapter=mlora --output_dir=runs/wdl_mlora
  mlora-train --dataset=ml-1m --data_dir=PATH --domain_split=gender --model=wdl \\
      --adapter=mlora --output_dir=runs/x
  mlora-train --config=config/Movielens/wdl_mlora.json --data_dir=PATH --output_dir=runs/x
  mlora-train --list_models
  mlora-train --task_set=click,like --model=m3oe --dataset=ml-1m --domain_split=m3oe_age \\
      --data_dir=PATH --output_dir=runs/m3oe                  # multi-domain multi-task
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
from mlora_tf.cli import tf_log
from mlora_tf.cli.common import check_input_dir, check_input_file, configure_threads_from_flags, define_thread_flags
from mlora_tf.training.distribute import STRATEGIES, configure_cpu_devices, is_chief, make_strategy

FLAGS = flags.FLAGS

flags.DEFINE_string("config", None, "JSON config: an original-style MLoRA config file or a saved RunConfig. Flags override it.")
flags.DEFINE_boolean("list_models", False, "Print the registered models by group, one line each, and exit.")
flags.DEFINE_string("output_dir", None, "Folder for result.json, model.keras and TensorBoard logs.")
flags.DEFINE_boolean("tensorboard", False, "Write TensorBoard scalars to OUTPUT_DIR/tensorboard.")
# data
flags.DEFINE_string("dataset", None, "Dataset: synthetic (default), ml-1m, ml-100k, amazon, taobao, csv (the last three from an mlora-prepare folder given as --data_dir).")
flags.DEFINE_string("data_dir", None, "Folder with the raw files (MovieLens: users.dat + ratings.dat, or u.user + u.data).")
flags.DEFINE_string("domain_split", None, "MovieLens domains: gender (default), age, occupation.")
flags.DEFINE_string("cache_dir", None, "Prepared-split cache folder (default ~/.cache/mlora_tf or $MLORA_TF_CACHE).")
flags.DEFINE_integer("split_seed", None, "Seed of the per-domain 60/20/20 split (default 123, as the original).")
flags.DEFINE_list("data_options", None, "Loader options as key=value, e.g. n_domains=4,shift=1.5 for synthetic.")
flags.DEFINE_list("hash_buckets", None, "feature:N,... (e.g. uid:1000000,pid:200000): hash those id features' raw "
                  "values into N buckets instead of a vocabulary (tables of N rows, no OOV row; evaluate, export and "
                  "add-domain hash the same way). Never the domain. A csv prepared folder takes it from mlora-prepare.")
flags.DEFINE_boolean("stream", True, "A shard folder as --data_dir (mlora-prepare --format=tfrecord|parquet) is "
                     "streamed from disk with tf.data (default; under --strategy each worker reads its own files); "
                     "--stream=false reads it into memory first (needed for --shuffle=permutation).")
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
flags.DEFINE_enum("loop", None, ["fast", "original"],
                  "Training loop: fast (default) or original (TF 1.12 + DeepCTR step for step: 10,000-row shuffle "
                  "buffer repeating its order, clipped Keras BCE, one pass per batch, Keras Dropout, DeepCTR's "
                  "op seeds, STAR's norm state not reset). The six flags below switch one factor each.")
flags.DEFINE_enum("shuffle", None, ["permutation", "buffer"],
                  "permutation: a fresh permutation per epoch (fast loop); buffer: the original's shuffle buffer.")
flags.DEFINE_enum("loss", None, ["logits", "clipped"], "logits: BCE from logits (fast loop); clipped: Keras' BCE.")
flags.DEFINE_integer("row_groups", None, "Row groups per training step (fast loop: 2 on a CPU host; original: 1).")
flags.DEFINE_enum("dropout_impl", None, ["fast", "keras"], "fast: FastDropout (fast loop); keras: Keras Dropout.")
flags.DEFINE_boolean("restore_ema_state", None, "Whether the reset to the best weights resets STAR's partitioned-norm "
                     "zero-debias state too (fast loop: yes; original: no, it was not in its checkpoint).")
flags.DEFINE_enum("init_seeds", None, ["independent", "original"],
                  "independent: every initial value drawn from --seed (fast loop); original: DeepCTR's op seeds.")
# multi-domain multi-task (M3oE and its baselines)
flags.DEFINE_list("task_set", None, "Train a multi-domain multi-task model on these label columns, e.g. click,like "
                  "(one task: the -MDL setting). ml-1m, ml-100k and synthetic become their M3oE variants.")
flags.DEFINE_list("domains", None, "Multi-task: keep only these domain ids, renumbered from 0 (one domain: the -MTL setting).")
flags.DEFINE_enum("m3oe_fusion", None, ["paper", "as_coded", "fixed"],
                  "M3oE fusion weights: paper = bi-level, the scalars only in their own once-per-epoch step on a "
                  "training batch (default); as_coded = the released code (every weight in the main optimizer, "
                  "plus the scalars' step on a training batch); fixed = all four at 0.5 (Table 3 'w/o AutoML').")
flags.DEFINE_integer("num_shared_experts", None, "M3oE/MMoE/PLE shared experts N (default 4, the code's; the paper's best on MovieLens is 1).")
flags.DEFINE_integer("specific_experts", None, "PLE: experts per (domain, task) objective (default 1).")
flags.DEFINE_float("fusion_learning_rate", None, "M3oE: learning rate of the fusion scalars' optimizer (default 1e-3).")
flags.DEFINE_float("weight_decay", None, "Multi-task: torch-style coupled L2 added to every gradient (default 1e-5).")
flags.DEFINE_boolean("restore_best", None, "Multi-task: test with the best validation weights (default); false = "
                     "the code's rule (last weights unless early stopping fired).")
flags.DEFINE_boolean("concat_modules", None, "M3oE ablation (Table 3): concatenate the three views.")
flags.DEFINE_boolean("fully_gated", None, "M3oE ablation (Table 3): one gate per objective over all experts.")
flags.DEFINE_boolean("domain_experts", None, "M3oE: use the domain experts (false: Table 3 'w/o domain').")
flags.DEFINE_boolean("task_experts", None, "M3oE: use the task experts (false: Table 3 'w/o task').")
define_thread_flags()
tf_log.define_flag()
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
    "loop": ("train", "loop"), "shuffle": ("train", "shuffle"), "loss": ("train", "loss"),
    "row_groups": ("train", "row_groups"), "dropout_impl": ("model", "dropout_impl"),
    "init_seeds": ("model", "init_seeds"), "restore_ema_state": ("train", "restore_ema_state"),
}


def _hash_option(config) -> None:
    """--hash_buckets as the loader option `hash_buckets` (`{feature: N}`; checked here)."""
    if FLAGS.hash_buckets:
        from mlora_tf.data.hashing import parse_hash_buckets

        config.data.options["hash_buckets"] = parse_hash_buckets(FLAGS.hash_buckets, "--hash_buckets")


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
    _hash_option(config)
    if FLAGS.dataset is None and FLAGS.data_dir:
        from mlora_tf.data.registry import is_shard_dir, shard_dataset_name

        if is_shard_dir(FLAGS.data_dir):  # a shard folder names its dataset
            config.data.dataset = shard_dataset_name(FLAGS.data_dir)
    return config


_MULTITASK_OVERRIDES = {
    "dataset": ("data", "dataset"), "data_dir": ("data", "data_dir"), "domain_split": ("data", "domain_split"),
    "cache_dir": ("data", "cache_dir"), "split_seed": ("data", "split_seed"),
    "model": ("model", "name"), "lora_reduce": ("model", "lora_reduce"), "embedding_dim": ("model", "embedding_dim"),
    "num_shared_experts": ("model", "num_shared_experts"), "specific_experts": ("model", "specific_experts"),
    "concat_modules": ("model", "concat_modules"), "fully_gated": ("model", "fully_gated"),
    "domain_experts": ("model", "domain_experts"), "task_experts": ("model", "task_experts"),
    "batch_size": ("train", "batch_size"), "learning_rate": ("train", "learning_rate"),
    "patience": ("train", "patience"), "max_epochs": ("train", "max_epochs"), "seed": ("train", "seed"),
    "fusion_learning_rate": ("train", "fusion_learning_rate"), "weight_decay": ("train", "weight_decay"),
    "restore_best": ("train", "restore_best"),
}
_SINGLE_TASK_ONLY = sorted(set(_OVERRIDES) - set(_MULTITASK_OVERRIDES)) + ["hidden_units", "strategy", "cpu_devices"]
_MULTITASK_ONLY = sorted(set(_MULTITASK_OVERRIDES) - set(_OVERRIDES) - {"embedding_dim"}) + ["domains", "m3oe_fusion"]


def _config_file(path: str) -> dict | None:
    """The JSON of `--config` when it is a saved multi-task run config, else None."""
    import json

    try:
        with open(path) as f:
            values = json.load(f)
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) and values.get("kind") == "multitask" else None


def is_multitask_run() -> bool:
    """`--task_set`, a multi-task-only `--model` (`m3oe`, `mmoe`, ...), or a multi-task
    `--config` file."""
    from mlora_tf.models import is_multitask_model, list_backbones

    if FLAGS.task_set:
        return True
    # `mlp` and `star` name single-task backbones too: only --task_set makes them multi-task.
    backbones = {spec.name for spec in list_backbones()}
    if FLAGS.model and is_multitask_model(FLAGS.model) and FLAGS.model not in backbones:
        return True
    return bool(FLAGS.config and _config_file(FLAGS.config))


def _given(names) -> list[str]:
    """The flags among `names` given on the command line."""
    return [f"--{n}" for n in names if FLAGS[n].present]


def multitask_config_from_flags():
    """The MultiTaskRunConfig: defaults, then a multi-task --config, then the flags."""
    import dataclasses

    from mlora_tf.config import MultiTaskRunConfig

    stray = _given(_SINGLE_TASK_ONLY)
    if stray:
        raise ValueError(f"{', '.join(stray)} apply to single-task runs, not to --task_set / multi-task models.")
    values = _config_file(FLAGS.config) if FLAGS.config else None
    config = MultiTaskRunConfig.from_dict(values) if values else MultiTaskRunConfig()
    sections = {"data": {}, "model": {}, "train": {}}
    for flag, (section, field) in _MULTITASK_OVERRIDES.items():
        value = getattr(FLAGS, flag)
        if value is not None:
            sections[section][field] = value
    if FLAGS.m3oe_fusion == "fixed":
        sections["model"]["fusion"] = "fixed"
    elif FLAGS.m3oe_fusion is not None:
        sections["model"]["fusion"] = "learned"
        sections["train"]["fusion_schedule"] = FLAGS.m3oe_fusion
    config.data = dataclasses.replace(config.data, **sections["data"])
    config.data.options.update(parse_options(FLAGS.data_options))
    _hash_option(config)
    config.model = dataclasses.replace(config.model, **sections["model"])
    config.train = dataclasses.replace(config.train, **sections["train"])
    if FLAGS.task_set:
        config.tasks = tuple(t.strip() for t in FLAGS.task_set)
    if FLAGS.domains:
        try:
            config.domains = tuple(int(d) for d in FLAGS.domains)
        except ValueError:
            raise ValueError(f"--domains takes integer domain ids. Received: {FLAGS.domains}") from None
    return config


def list_models_text() -> str:
    """Every registered model, one line each, under its group's heading (groups of
    single-task models first). A heading says how to run its models; an entry that
    takes fewer adapters than its heading says which it takes."""
    from mlora_tf.models import list_models
    from mlora_tf.models.registry import ADAPTERS, KINDS, MULTI_TASK

    groups: dict = {}
    for spec in list_models():
        groups.setdefault((KINDS.index(spec.kind), spec.group), []).append(spec)
    lines = []
    for (_, group), specs in sorted(groups.items()):
        adapters = [a for a in ADAPTERS if any(a in spec.adapters for spec in specs)]
        if specs[0].kind == MULTI_TASK:
            lines.append(f"{group} models (--task_set=click,like):")
        else:
            lines.append(f"{group} (single-task, --adapter {'|'.join(adapters)}):")
        for spec in specs:
            if spec.kind == MULTI_TASK:
                label = f" [paper: {spec.paper_name}]" if spec.paper_name else (" [ours]" if spec.ours else "")
            else:
                label = f" [--adapter {'|'.join(spec.adapters)}]" if list(spec.adapters) != adapters else ""
            lines.append(f"  {spec.name:<14} {spec.description}{label}")
    return "\n".join(lines)


def check_paths() -> None:
    """The input paths of the flags exist (before anything is loaded)."""
    check_input_file(FLAGS.config, "config")
    check_input_dir(FLAGS.data_dir, "data_dir")


def check_config(config, multitask: bool) -> None:
    """What can be checked without data: the model and the dataset are known (the
    errors the later steps would raise, before any data is loaded)."""
    from mlora_tf.data.registry import get_spec
    from mlora_tf.models import get_backbone, get_multitask_model

    if multitask:
        get_multitask_model(config.model.name)
    else:
        get_backbone(config.model.name)
    from mlora_tf.data.registry import is_shard_dir

    if not is_shard_dir(config.data.data_dir):  # a shard folder's name is checked when it is opened
        get_spec(config.data.dataset)


def run_multitask(config=None) -> int:
    config = multitask_config_from_flags() if config is None else config
    from mlora_tf.export.run_folder import RESULT_FILE
    from mlora_tf.runs.multitask import format_pair_table, train_multitask_run

    record = train_multitask_run(config, output_dir=FLAGS.output_dir, tensorboard=FLAGS.tensorboard)
    print(format_pair_table({config.model.name: record}))
    print(f"epochs {record['epochs']} (best {record['best_epoch']}), {record['seconds']:.1f}s, "
          f"params {record['params_total']:,} ({record['params_dense']:,} without embeddings)")
    if record["fusion_weights"]:
        print("fusion weights " + ", ".join(f"{k} {v:.4f}" for k, v in record["fusion_weights"].items()))
    if FLAGS.output_dir:
        print(f"result: {os.path.join(FLAGS.output_dir, RESULT_FILE)}")
    return 0


def main(argv):
    del argv
    if FLAGS.list_models:
        print(list_models_text())
        return 0
    try:
        # Every flag and input path is checked first; then the work starts.
        check_paths()
        if is_multitask_run():
            config = multitask_config_from_flags()
            check_config(config, multitask=True)
            configure_threads_from_flags(large_ops=True)
            return run_multitask(config)
        stray = _given(_MULTITASK_ONLY)
        if stray:
            raise ValueError(f"{', '.join(stray)} apply to multi-task runs: add --task_set (e.g. click,like).")
        config = config_from_flags()
        check_config(config, multitask=False)
        # Logical devices, thread pools, then the strategy: each must precede the next
        # and any TensorFlow op (MultiWorkerMirroredStrategy starts the cluster server).
        if FLAGS.cpu_devices is not None:
            configure_cpu_devices(FLAGS.cpu_devices)
        configure_threads_from_flags()
        strategy = make_strategy(FLAGS.strategy)
        from mlora_tf.export.run_folder import RESULT_FILE
        from mlora_tf.runs.train import format_domain_table, train_run

        record = train_run(config, output_dir=FLAGS.output_dir, tensorboard=FLAGS.tensorboard, strategy=strategy,
                           stream=FLAGS.stream)
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
        print(f"result: {os.path.join(FLAGS.output_dir, RESULT_FILE)}")
    return 0


def run():
    logging.set_verbosity(logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
