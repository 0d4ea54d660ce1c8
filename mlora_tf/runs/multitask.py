"""One multi-domain multi-task run from a `MultiTaskRunConfig` to a result record:
what `mlora-train --task_set=...` and `experiments/reproduce_m3oe.py` call.

The run folder has the files of a single-task run (`result.json`, `model.keras`,
`vocab.npz`, `checkpoints/`), so `mlora-export` serves it the same way. The record
carries the single-task keys where they have a meaning (`mean_auc`, `logloss`,
`domain_auc`, `wauc`, `params_*`, `epochs`, `seconds`, `config`, `dataset`, ...) and
the multi-task ones: `tasks`, `overall_auc` (the paper's: the mean of the `D * T`
pair AUCs), `overall_logloss`, `pair_auc`, `pair_logloss`, `pair_test_size`
(`"d{d}t{t}"` keys, the original's column order), `task_auc`, `undefined_auc_pairs`,
`fusion_weights`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import keras
import numpy as np
from absl import logging

from mlora_tf import __version__
from mlora_tf.config import DEFAULT_DENSE_FEATURES, DEFAULT_SPARSE_FEATURES, DataConfig, MultiTaskRunConfig
from mlora_tf.data.registry import load_dataset
from mlora_tf.export.run_folder import CHECKPOINTS_DIR, TENSORBOARD_DIR, write_run_folder
from mlora_tf.models import count_params
from mlora_tf.models.data_spec import DataSpec
from mlora_tf.models.multitask import build_multitask_model
from mlora_tf.training.multitask import MultiTaskTrainer

MULTITASK_DATASETS = {"ml-1m": "ml-1m-m3oe", "ml-100k": "ml-100k-m3oe", "synthetic": "synthetic-mt"}
"""Single-task dataset names and the multi-task variant `--task_set` trains on."""
M3OE_SPLIT = "age3"
M3OE_SPLIT_ALIASES = ("m3oe_age", "age3")


def resolve_data(data: DataConfig) -> DataConfig:
    """The multi-task dataset a `--task_set` run loads.

    `ml-1m`, `ml-100k` and `synthetic` become `ml-1m-m3oe`, `ml-100k-m3oe` and
    `synthetic-mt`; their domain split is M3oE's three age groups (`m3oe_age`, also
    spelled `age3`; the single-task default `gender` means "not given").

    Raises:
        ValueError: another split of M3oE's MovieLens setup.
    """
    name = MULTITASK_DATASETS.get(data.dataset, data.dataset)
    split = data.domain_split
    if name in MULTITASK_DATASETS.values():
        if split in (None, "gender") + M3OE_SPLIT_ALIASES:
            split = M3OE_SPLIT
        else:
            raise ValueError(
                f"Multi-task {data.dataset} has M3oE's three age domains only (--domain_split=m3oe_age). "
                f"Received: domain_split={split!r}"
            )
    return dataclasses.replace(data, dataset=name, domain_split=split)


def load_multitask_dataset(config: MultiTaskRunConfig):
    """Load the data of `config`, keep its `tasks` and `domains`."""
    d = resolve_data(config.data)
    from mlora_tf.data.registry import is_shard_dir

    if is_shard_dir(d.data_dir):
        raise ValueError(
            f"{d.data_dir} is a shard folder: multi-task training does not stream shards yet; prepare the data "
            f"with mlora-prepare --format=npz for --task_set. Received: data_dir={d.data_dir}"
        )
    dataset = load_dataset(
        d.dataset, data_dir=d.data_dir, domain_split=d.domain_split, cache_dir=d.cache_dir,
        seed=d.split_seed, **d.options,
    )
    if config.tasks:
        dataset = dataset.select_labels(config.tasks)
    if config.domains:
        dataset = dataset.select_domains(config.domains)
    return dataset


def fit_features(config: MultiTaskRunConfig, dataset) -> MultiTaskRunConfig:
    """`config`, or a new config using the dataset's own features when the model keeps
    M3oE's defaults and the data lacks them (a user's multi-task CSV): its sparse
    features with `domain` last, then its dense features."""
    model = config.model
    if (model.sparse_features, model.dense_features) != (DEFAULT_SPARSE_FEATURES, DEFAULT_DENSE_FEATURES):
        return config
    columns = set(dataset.features) | set(dataset.dense_features)
    if set(model.sparse_features + model.dense_features) <= columns:
        return config
    model = dataclasses.replace(
        model,
        sparse_features=tuple(f for f in dataset.features if f != "domain") + ("domain",),
        dense_features=tuple(dataset.dense_features),
    )
    logging.info("Model features from the data: sparse %s, dense %s", model.sparse_features, model.dense_features)
    return dataclasses.replace(config, model=model)


def _embedding_params(model: keras.Model) -> int:
    return sum(
        count_params(layer.trainable_weights) for layer in model.layers if isinstance(layer, keras.layers.Embedding)
    )


def metrics_record(metrics: dict) -> dict:
    """The record keys of one split's `multitask_metrics`."""
    pairs = metrics["pairs"]
    domain_auc = {}
    for d, name in enumerate(metrics["domains"]):
        values = [v for v in metrics["auc"][d] if v is not None]
        domain_auc[name] = float(np.mean(values)) if values else None
    task_auc = {}
    for t, task in enumerate(metrics["tasks"]):
        values = [row[t] for row in metrics["auc"] if row[t] is not None]
        task_auc[task] = float(np.mean(values)) if values else None
    defined = [(p["auc"], p["size"]) for p in pairs.values() if p["auc"] is not None]
    return {
        "overall_auc": metrics["overall_auc"],
        "overall_logloss": metrics["overall_logloss"],
        "pair_auc": {k: p["auc"] for k, p in pairs.items()},
        "pair_logloss": {k: p["logloss"] for k, p in pairs.items()},
        "pair_test_size": {k: p["size"] for k, p in pairs.items()},
        "domain_auc": domain_auc,
        "task_auc": task_auc,
        "wauc": (sum(a * n for a, n in defined) / sum(n for _, n in defined)) if defined else None,
        "pooled_task_auc": metrics["pooled_task_auc"],
        "undefined_auc_pairs": metrics["undefined_auc_pairs"],
    }


def train_multitask_run(
    config: MultiTaskRunConfig, output_dir: str | None = None, dataset=None, tensorboard: bool = False
) -> dict:
    """Load the data, build the model, train it, score the test split.

    Writes `result.json` (atomically), `model.keras` and `vocab.npz` into `output_dir`
    when given; `output_dir/checkpoints` lets a killed run resume after its last epoch;
    with `tensorboard`, per-epoch scalars go to `output_dir/tensorboard`.

    Returns:
        The result record (see the module docstring and README, "Multi-task runs").
    """
    start = time.time()
    if dataset is None:
        dataset = load_multitask_dataset(config)
    logging.info("Dataset %s\n%s", dataset.name, dataset.summary())
    config = fit_features(config, dataset)
    keras.utils.set_random_seed(config.train.seed)
    model = build_multitask_model(config.model, DataSpec.from_dataset(dataset))
    trainer = MultiTaskTrainer(model, dataset, config.train)
    logging.info(
        "Model %s (%s), tasks %s, %d domains, %s loss, fusion %s", config.model.name, config.model.variant
        if config.model.name == "m3oe" else "baseline", list(trainer.tasks), dataset.n_domains,
        "per-pair" if trainer.pair_loss else "mean", config.train.fusion_schedule if trainer.fusion_variables else "-",
    )
    checkpoint_dir = os.path.join(output_dir, CHECKPOINTS_DIR) if output_dir else None
    tb_dir = os.path.join(output_dir, TENSORBOARD_DIR) if (tensorboard and output_dir) else None
    fit = trainer.fit(checkpoint_dir=checkpoint_dir, tensorboard_dir=tb_dir)
    test = metrics_record(trainer.evaluate("test"))
    val = metrics_record(trainer.evaluate("val"))
    total = count_params(model.trainable_weights)
    embedding = _embedding_params(model)
    record = {
        "kind": MultiTaskRunConfig.KIND,
        "model": config.model.name,
        "variant": config.model.variant if config.model.name == "m3oe" else config.model.name,
        "tasks": list(trainer.tasks),
        **test,
        "mean_auc": test["overall_auc"],
        "logloss": test["overall_logloss"],
        "val": {k: val[k] for k in ("overall_auc", "overall_logloss", "pair_auc")},
        "fusion_weights": trainer.fusion_weights(),
        "params_total": total,
        "params_embedding": embedding,
        "params_dense": total - embedding,
        "epochs": fit["epochs"],
        "best_epoch": fit["best_epoch"],
        "stopped_early": fit["stopped_early"],
        "history": fit["history"],
        "train_examples_per_second": fit["train_examples"] / max(fit["train_seconds"], 1e-9),
        "seconds": time.time() - start,
        "config": config.to_dict(),
        "dataset": {
            "name": dataset.name,
            "domains": list(dataset.domain_names),
            "tasks": list(dataset.labels),
            "sizes": dataset.sizes(),
        },
        "command": sys.argv,
        "version": __version__,
    }
    if output_dir:
        write_run_folder(output_dir, model, dataset, record)
    return record


def format_pair_table(records: dict) -> str:
    """Per (domain, task) test AUC of one or more named multi-task results
    (`{label: record}`), then the overall AUC and logloss."""
    labels = list(records)
    first = records[labels[0]]
    header = f"{'domain / task':<24}{'test rows':>10}" + "".join(f"{label:>14}" for label in labels)
    lines = [header, "-" * len(header)]

    def fmt(v):
        return f"{v:14.4f}" if v is not None else f"{'undefined':>14}"

    domains, tasks = first["dataset"]["domains"], first["tasks"]
    for d, domain in enumerate(domains):
        for t, task in enumerate(tasks):
            key = f"d{d}t{t}"
            line = f"{f'{domain} / {task}':<24}{first['pair_test_size'][key]:>10}"
            lines.append(line + "".join(fmt(records[label]["pair_auc"].get(key)) for label in labels))
    lines.append("-" * len(header))
    for key, title in (("overall_auc", "overall AUC"), ("overall_logloss", "overall logloss")):
        lines.append(f"{title:<24}{'':>10}" + "".join(fmt(records[label][key]) for label in labels))
    return "\n".join(lines)
