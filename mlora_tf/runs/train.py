"""One training run from a `RunConfig` to a result record: what `mlora-train` and the
experiment drivers call."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf
from absl import logging

from mlora_tf import __version__
from mlora_tf.config import RunConfig
from mlora_tf.data.registry import load_dataset
from mlora_tf.export.run_folder import CHECKPOINTS_DIR, TENSORBOARD_DIR, write_run_folder
from mlora_tf.models import DataSpec, build_model, dense_stack_of, resolve_config
from mlora_tf.training import Trainer, schedule_phases
from mlora_tf.training.loops import resolve_loop
from mlora_tf.training.distribute import is_chief

def load_run_dataset(config: RunConfig, stream: bool = False):
    """The run's dataset. A shard folder as `data_dir` is streamed with `stream=True`
    (a `mlora_tf.data.streamed.StreamedDataset`, what `train_run` trains on), else read
    into memory."""
    d = config.data
    return load_dataset(
        d.dataset,
        data_dir=d.data_dir,
        domain_split=d.domain_split,
        cache_dir=d.cache_dir,
        seed=d.split_seed,
        stream=stream,
        **d.options,
    )


def train_run(
    config: RunConfig,
    output_dir: str | None = None,
    tensorboard: bool = False,
    dataset=None,
    strategy: tf.distribute.Strategy | None = None,
    stream: bool = True,
) -> dict:
    """Load the data, build the model, train it per the schedule, score the test split.

    Writes `result.json` (atomically) and `model.keras` into `output_dir` when given.
    With a `strategy` (`mlora_tf.training.distribute.make_strategy`) the model is built
    under its scope and trained data-parallel; on a multi-worker cluster only the chief
    writes into `output_dir` (the other workers write into a temporary folder that is
    then deleted). The chief checkpoints every epoch into `output_dir/checkpoints`, and
    a cluster started again resumes from there: every worker reads the chief's
    checkpoint, so `output_dir` must be on a filesystem every worker sees (the workers
    check that they resume from the same point, see `Trainer.fit`).

    A shard folder as `config.data.data_dir` is streamed (`stream=True`, the default:
    a `mlora_tf.data.streamed.StreamedDataset`, trained and scored from disk by
    `Trainer`); `stream=False` reads it into memory first.

    Returns:
        The result record (see README, "Output files").
    """
    start = time.time()
    config = resolve_loop(config)
    strategy = strategy or tf.distribute.get_strategy()
    worker_dir, run_dir = None, output_dir
    if output_dir and not is_chief(strategy):
        output_dir = worker_dir = tempfile.mkdtemp(prefix="mlora_tf_worker_")
    if dataset is None:
        dataset = load_run_dataset(config, stream=stream)
    logging.info("Dataset %s\n%s", dataset.name, dataset.summary())
    keras.utils.set_random_seed(config.train.seed)
    data_spec = DataSpec.from_dataset(dataset)
    config = dataclasses.replace(config, model=resolve_config(config.model, data_spec))  # what the record holds
    with strategy.scope():
        model = build_model(config.model, data_spec, graph_seed=config.train.seed)
    stack = dense_stack_of(model)
    logging.info(
        "Model %s, adapter %s, dense stack %s, ranks %s", config.model.name, config.model.adapter,
        stack.hidden_units, stack.ranks,
    )
    tb_dir = os.path.join(output_dir, TENSORBOARD_DIR) if (tensorboard and output_dir) else None
    trainer = Trainer(model, dataset, config.train, tensorboard_dir=tb_dir, strategy=strategy)
    if config.model.adapter == "moe":
        phases = schedule_phases(
            config.train.moe_schedule, "moe", dataset.n_domains, stack.num_slots, config.train.moe_carry_best
        )
    else:
        phases = schedule_phases(config.train.schedule, config.model.adapter)
    checkpoint_dir = os.path.join(run_dir, CHECKPOINTS_DIR) if run_dir else None
    phase_results = trainer.fit(phases, checkpoint_dir=checkpoint_dir, write_checkpoints=is_chief(strategy))
    if trainer.final_metrics is not None:
        # The last phase scored its final weights (the model's weights now) already.
        val, test = trainer.final_metrics["val"], trainer.final_metrics["test"]
    else:  # every phase was restored from a checkpoint
        val, test = trainer.evaluate("val"), trainer.evaluate("test")
    params = trainer.param_counts()
    record = {
        "wauc": test["wauc"],
        "mean_auc": test["mean_auc"],
        "wauc500": test["wauc500"],
        "mean_auc500": test["mean_auc500"],
        "domain_auc": test["domain_auc"],
        "domain_auc500": test["domain_auc500"],
        "domain_logloss": test["domain_logloss"],
        "domain_test_size": test["domain_size"],
        "logloss": test["logloss"],
        "pooled_auc": test["pooled_auc"],
        "val": {k: val[k] for k in ("wauc", "mean_auc", "mean_auc500", "domain_auc", "logloss")},
        "params_backbone": params["backbone"],
        "params_adapter": params["adapter"],
        "params_gate": params["gate"],
        "epochs": sum(p.epochs for p in phase_results),
        "phases": [p.to_dict() for p in phase_results],
        "train_examples_per_second": (
            sum(p.train_examples for p in phase_results)
            / max(sum(h["train_seconds"] for p in phase_results for h in p.history), 1e-9)
        ),
        "seconds": time.time() - start,
        "replicas": strategy.num_replicas_in_sync,
        "config": config.to_dict(),
        "dataset": {"name": dataset.name, "domains": list(dataset.domain_names), "sizes": dataset.sizes()},
        "command": sys.argv,
        "version": __version__,
    }
    if output_dir:
        # A streamed dataset gives `vocab.npz` its train ids from one streamed pass.
        vocabulary = dataset.vocabulary_view() if getattr(dataset, "streamed", False) else dataset
        write_run_folder(output_dir, model, vocabulary, record)
    if worker_dir:
        shutil.rmtree(worker_dir, ignore_errors=True)
    return record


def format_domain_table(records: dict, domain_names=None) -> str:
    """A per-domain AUC table for one or more named results (`{label: record}`).

    With two records the last column is the difference (second minus first).
    """
    labels = list(records)
    first = records[labels[0]]
    domains = list(domain_names or first["domain_auc"].keys())
    show_delta = len(labels) == 2
    header = f"{'domain':<14}{'test rows':>10}" + "".join(f"{label:>12}" for label in labels)
    header += f"{'delta':>10}" if show_delta else ""
    lines = [header, "-" * len(header)]

    def fmt(v):
        return f"{v:12.4f}" if v is not None else f"{'undefined':>12}"

    for d in domains:
        values = [records[label]["domain_auc"].get(str(d)) for label in labels]
        line = f"{str(d):<14}{first['domain_test_size'][str(d)]:>10}" + "".join(fmt(v) for v in values)
        if show_delta:
            line += f"{values[1] - values[0]:+10.4f}" if None not in values else f"{'':>10}"
        lines.append(line)
    lines.append("-" * len(header))
    for key, title in (("wauc", "WAUC"), ("mean_auc", "mean AUC"), ("logloss", "logloss")):
        values = [records[label][key] for label in labels]
        line = f"{title:<14}{'':>10}" + "".join(fmt(v) for v in values)
        if show_delta:
            line += f"{values[1] - values[0]:+10.4f}"
        lines.append(line)
    return "\n".join(lines)
