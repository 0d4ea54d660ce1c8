"""Add a domain to a trained MLoRA model without retraining the backbone (paper §4.6).

`add_domain(run_dir, domain_data, output_dir)`:

1. builds the same model with `n_domains + 1` domains and copies every weight; the
   fused adapters of every `LoRADense` layer get one more slot, `D` (the new domain's
   id): its `A` columns drawn from the layer's own initializer (`SlotGlorot`, the
   standard deviation the other slots started from), its `B` rows and bias row zero.
   The domain embedding table gets one more row (drawn from the profile's domain
   initializer) and the domain's wide (linear) table one more row (zero);
2. trains **only the new adapter slot** (`A`, `B` and bias of slot `D` in every layer)
   on the new domain's rows, with `Trainer.run_phase(Phase("new_domain", ("adapter",),
   "domain", train_slot=D, domains=(D,)))` and early stopping on the new domain's
   validation AUC. The new domain's embedding row and wide weight stay at their
   initial values: the slot's per-layer bias absorbs the domain's offset;
3. writes a normal run folder (`model.keras`, `vocab.npz` with the new domain name,
   `result.json`), so `mlora-export` serves all `D + 1` domains.

Every other weight ends bit-for-bit as it was (checked on return), so the old
domains' predictions are unchanged.

Raw ids of the new domain are mapped as serving maps them: ids seen in the original
training keep their rows; any other id uses the OOV row (the mean of the training ids'
rows, `mlora_tf.export.vocab`), so the slot learns on the inputs it will be served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging as std_logging
import os
import sys
import time

import keras
import numpy as np
from absl import logging

from mlora_tf import __version__
from mlora_tf.data.dataset import MultiDomainDataset
from mlora_tf.data.interactions import read_interactions
from mlora_tf.export.run_folder import VOCAB_FILE, RunFolder, has_result, save_model, write_record
from mlora_tf.export.vocab import DOMAIN, Vocabulary
from mlora_tf.export.weights import (
    check_vocabulary,
    oov_row,
    paired_variables,
    rebuild,
    transfer,
    without_oov_rows,
)
from mlora_tf.models.builder import dense_stack_of
from mlora_tf.training import Trainer
from mlora_tf.training.phases import Phase

_SUMMARY_KEYS = ("domain_auc", "domain_auc500", "domain_logloss", "domain_size")


def read_domain_file(path: str, id_features=("uid", "pid")) -> dict:
    """The new domain's rows: every id feature of the run (`uid`, `pid` and any
    extra ones, e.g. a CSV's) and `label` (a `domain` column, if any, must hold one
    value; it is replaced by the new domain's id)."""
    columns = read_interactions(path, required=(*id_features, "label"), optional=(DOMAIN,))
    if DOMAIN in columns:
        values = np.unique(columns.pop(DOMAIN))
        if values.size > 1:
            raise ValueError(
                f"{path}: a new domain's file holds one domain, but column `domain` has {values.size} values. "
                f"Received: {values[:10].tolist()}"
            )
    if columns["label"].size == 0:
        raise ValueError(f"{path} has no rows.")
    return columns


def split_rows(columns: dict, val_fraction: float, seed: int) -> tuple[dict, dict]:
    """A seeded train/validation split, stratified on the label."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in (0, 1). Received: val_fraction={val_fraction}")
    rng = np.random.default_rng(seed)
    labels = columns["label"]
    val = []
    for value in (0.0, 1.0):
        idx = rng.permutation(np.flatnonzero(labels == value))
        val.append(idx[: int(round(idx.size * val_fraction))])
    val_mask = np.zeros(labels.size, bool)
    val_mask[np.concatenate(val)] = True
    return {k: v[~val_mask] for k, v in columns.items()}, {k: v[val_mask] for k, v in columns.items()}


class _SkipEmptyDomainWarnings(std_logging.Filter):
    """The old domains have no rows in the new domain's dataset (by design), so their
    AUCs are undefined at every evaluation: drop that warning while training."""

    def filter(self, record):
        return "undefined (one class)" not in record.getMessage()


@contextlib.contextmanager
def _quiet_empty_domains():
    logger = logging.get_absl_logger()
    log_filter = _SkipEmptyDomainWarnings()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def grown_model(model: keras.Model, run: RunFolder, new_vocabulary: Vocabulary) -> tuple[keras.Model, list]:
    """The run's model with one more domain and with OOV rows on the id tables.

    Returns:
        `(model, adapters)`: the new model and its `LowRankAdapter` layers.

    Raises:
        ValueError: for a variable that depends on the number of domains in a way
            this function does not know (STAR kernels, a MoE gate ...).
    """
    vocabulary = run.vocabulary
    tables = check_vocabulary(model, vocabulary)
    owner = {id(v): f for f, variables in tables.items() for v in variables}
    adapter_role = {}
    for layer in dense_stack_of(model).adapter_layers:
        adapter_role[id(layer.adapter_kernel_a)] = ("a", layer)
        adapter_role[id(layer.adapter_kernel_b)] = ("b", layer)
        adapter_role[id(layer.adapter_bias)] = ("bias", layer)

    def resize(old_var, new_var):
        old, fresh = old_var.numpy(), new_var.numpy()
        feature = owner.get(id(old_var))
        if feature is not None and fresh.shape[0] == old.shape[0] + 1:
            if feature == DOMAIN:
                # The new domain's row keeps the rebuilt model's initial value: the
                # profile's domain initializer (embedding), zero (wide weight).
                return np.concatenate([old, fresh[-1:]], axis=0)
            return np.concatenate([old, oov_row(old, vocabulary.train_ids[feature])], axis=0)
        role = adapter_role.get(id(old_var))
        if role is None:
            return None
        kind, layer = role
        if kind == "a":
            # New slot's A: drawn as the other slots were (the layer's initializer on
            # the old fused shape, whose std is the one they started from).
            draw = keras.ops.convert_to_numpy(layer.a_initializer.__class__.from_config(
                layer.a_initializer.get_config())(tuple(old.shape), dtype="float32"))
            return np.concatenate([old, draw[:, : layer.rank]], axis=1)
        # B rows and bias row of the new slot: zero (the slot starts as no change).
        return np.concatenate([old, np.zeros((fresh.shape[0] - old.shape[0],) + old.shape[1:], old.dtype)], axis=0)

    sizes = dict(new_vocabulary.vocab_sizes)
    for f in new_vocabulary.id_features:
        sizes[f] += 1
    new = rebuild(run.config.model, sizes, new_vocabulary.n_domains)
    # Per-domain variables outside the adapter slots and the id tables (HAMUR's
    # hyper-network factors, SAR-Net's domain experts, ...) would start the new domain
    # untrained in a part that only joint training fits: refused, naming them.
    unknown = [
        old_var.path for old_var, new_var in paired_variables(model, new)
        if tuple(old_var.shape) != tuple(new_var.shape) and id(old_var) not in owner and id(old_var) not in adapter_role
    ]
    if unknown:
        raise ValueError(
            f"Adding a domain is not supported for model {run.config.model.name!r}: besides the MLoRA adapter slots "
            f"and the embedding tables, {len(unknown)} of its variables hold one entry per domain "
            f"({', '.join(unknown[:4])}{' ...' if len(unknown) > 4 else ''}), which only training every domain "
            f"together fits. Retrain with the new domain's rows instead."
        )
    transfer(model, new, resize)
    return new, dense_stack_of(new).adapter_layers


def _domain_summary(metrics: dict, name: str) -> dict:
    return {k: metrics[k][name] for k in _SUMMARY_KEYS}


def _check_old_domains_unchanged(old: keras.Model, new: keras.Model, vocabulary: Vocabulary, seed: int) -> None:
    """Every weight of the base model must be in the new one unchanged (a grown variable
    starts with the old entries), and the old domains' predictions (random training ids,
    one domain a batch) must be bit-for-bit those of the base model.

    Raises:
        RuntimeError: naming the variable or the domain that changed.
    """
    for old_var, new_var in paired_variables(old, new):
        if "seed_generator" in old_var.path:
            continue  # dropout's random state, not a weight
        before, after = old_var.numpy(), new_var.numpy()
        if after.shape != before.shape:
            axis = 1 if old_var.path.endswith("adapter_kernel_a") else 0
            after = after[:, : before.shape[1]] if axis else after[: before.shape[0]]
        if after.shape != before.shape or not np.array_equal(before, after):
            raise RuntimeError(f"Adding the domain changed {old_var.path}; nothing was written.")
    rng = np.random.default_rng(seed)
    for d in range(vocabulary.n_domains):
        feed = {
            f: rng.choice(vocabulary.train_ids[f], 256) if f != DOMAIN else np.full(256, d, np.int64)
            for f in vocabulary.features
        }
        before = old.predict_on_batch(feed)["probability"]
        after = new.predict_on_batch(feed)["probability"]
        if not np.array_equal(before, after):
            raise RuntimeError(
                f"Adding the domain changed the predictions of domain {d} ({vocabulary.domain_names[d]}) by up to "
                f"{np.abs(before - after).max():.3g}; nothing was written."
            )


def add_domain(
    run_dir: str,
    domain_data: str,
    output_dir: str,
    val_data: str | None = None,
    domain_name: str | None = None,
    val_fraction: float = 0.2,
    train_overrides: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Add the domain of `domain_data` to the MLoRA run in `run_dir`; write the result
    as a run folder in `output_dir`.

    Args:
        run_dir: a run folder of an MLoRA model (`adapter="mlora"`, dense topology).
        domain_data: CSV / parquet with `uid, pid, label` of the new domain (a `domain`
            column may be present if it holds one value).
        output_dir: the new run folder (must not be `run_dir`).
        val_data: the new domain's validation rows; default: a seeded, label-stratified
            `val_fraction` of `domain_data`.
        domain_name: the new domain's name (default: the file name without suffix).
        val_fraction: share of `domain_data` held out when `val_data` is None.
        train_overrides: `TrainConfig` fields to change (`max_epochs`, `patience`,
            `learning_rate`, `batch_size`, `seed`, ...); default: the run's.
        overwrite: replace a run folder already in `output_dir`.

    Returns:
        The new run's result record (also written to `output_dir/result.json`).

    Raises:
        ValueError: among others, for a multi-task run (not supported).
    """
    start = time.time()
    # The run's kind, the arguments and the input paths first, before the model is loaded.
    run = RunFolder.open(run_dir)
    run.single_task_only("mlora-add-domain", "Adding a domain to a multi-task model is not implemented.")
    for what, path in (("domain_data", domain_data), ("val_data", val_data)):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"`{what}` file not found: {path}. Received: {what}={path!r}")
    if val_data is None and not 0.0 < val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in (0, 1). Received: val_fraction={val_fraction}")
    if os.path.abspath(output_dir) == os.path.abspath(run_dir):
        raise ValueError(f"`output_dir` must differ from `run_dir`. Received: {output_dir}")
    if has_result(output_dir) and not overwrite:
        raise FileExistsError(f"{output_dir} already holds a run; choose another --output_dir or pass --overwrite.")
    config = run.config
    if config.model.adapter != "mlora":
        raise ValueError(
            "Adding a domain needs an MLoRA run (one adapter slot per domain). "
            f"Received: adapter={config.model.adapter!r} in {run_dir}"
        )
    train_config = dataclasses.replace(config.train, **(train_overrides or {}))
    base_model = run.load_model()
    stack = dense_stack_of(base_model)
    if stack.topology != "dense":
        raise ValueError(
            f"Adding a domain supports the dense topology only (STAR's per-domain kernels would need training). "
            f"Received: model={config.model.name!r} (topology {stack.topology!r})"
        )
    vocabulary = run.vocabulary
    new_id = vocabulary.n_domains
    name = str(domain_name or os.path.basename(domain_data).split(".")[0])
    if name in vocabulary.domain_names:
        raise ValueError(f"Domain {name!r} exists already. Received domains: {vocabulary.domain_names}")

    rows = read_domain_file(domain_data, vocabulary.id_features)
    if val_data is not None:
        train_rows, val_rows = rows, read_domain_file(val_data, vocabulary.id_features)
    else:
        train_rows, val_rows = split_rows(rows, val_fraction, train_config.seed)
    val_source = val_data or f"{val_fraction:.0%} of {domain_data}"
    labels = val_rows["label"]
    if train_rows["label"].size == 0 or labels.size == 0 or labels.min() == labels.max():
        raise ValueError(
            f"The new domain's validation rows ({val_source}) need both labels and the training rows at least one row "
            f"for early stopping on AUC. Received: {train_rows['label'].size} training rows, {labels.size} "
            f"validation rows with labels {sorted(set(labels.tolist()))}"
        )

    new_vocabulary = Vocabulary(
        train_ids={**vocabulary.train_ids, DOMAIN: np.append(vocabulary.train_ids[DOMAIN], new_id)},
        vocab_sizes={**vocabulary.vocab_sizes, DOMAIN: new_id + 1},
        domain_names=vocabulary.domain_names + [name],
        hashed=vocabulary.hashed,
    )
    keras.utils.set_random_seed(train_config.seed)
    model, adapters = grown_model(base_model, run, new_vocabulary)

    def mapped(columns):
        out = {f: new_vocabulary.map_ids(f, columns[f]) for f in new_vocabulary.id_features}
        out[DOMAIN] = np.full(columns["label"].size, new_id, np.int64)
        out["label"] = columns["label"]
        return out

    sizes = dict(new_vocabulary.vocab_sizes)
    for f in new_vocabulary.id_features:
        sizes[f] += 1
    # Old domains are present with no rows: only the new domain trains and is scored
    # (`Phase.domains`); the metrics leave the empty domains out. "test" repeats "val".
    dataset = MultiDomainDataset(
        name=f"new domain {name}",
        n_domains=new_id + 1,
        vocab_sizes=sizes,
        domain_names=new_vocabulary.domain_names,
        features=tuple(new_vocabulary.features),
        splits={"train": mapped(train_rows), "val": mapped(val_rows), "test": mapped(val_rows)},
        info={"domain_data": domain_data, "val_data": val_data},
    )
    trainer = Trainer(model, dataset, train_config)
    before = [v.numpy() for v in trainer.weight_variables]
    with _quiet_empty_domains():
        val_before = trainer.evaluate("val")
        phase = trainer.run_phase(
            Phase("new_domain", ("adapter",), "domain", train_slot=new_id, domains=(new_id,))
        )
        val_after = trainer.evaluate("val")
    # Belt and braces: every entry but the new slot's goes back to its value before
    # training (a layer with moving statistics could otherwise drift).
    slot_masks = {}
    for layer in adapters:
        for variable, mask in zip(layer.weights, layer.slot_masks(new_id)):
            slot_masks[id(variable)] = mask
    for variable, value in zip(trainer.weight_variables, before):
        mask = slot_masks.get(id(variable))
        variable.assign(value if mask is None else np.where(mask, variable.numpy(), value))

    final = without_oov_rows(model, config.model, new_vocabulary)
    _check_old_domains_unchanged(base_model, final, vocabulary, train_config.seed)

    save_model(output_dir, final)
    new_vocabulary.save(os.path.join(output_dir, VOCAB_FILE))
    trained = sum(layer.rank * (layer.input_dim + layer.units) + layer.units for layer in adapters)
    record = {
        "add_domain": {
            "base_run": os.path.abspath(run_dir),
            "domain_name": name,
            "domain_id": new_id,
            "domain_data": domain_data,
            "val_data": val_source,
            "train_rows": int(train_rows["label"].size),
            "val_rows": int(labels.size),
            "unseen_id_rows": {f: vocabulary.unseen_count(f, train_rows[f]) for f in vocabulary.id_features},
            "trained": f"adapter slot {new_id} of every LoRADense layer (A columns, B rows, bias row)",
            "params_trained": int(trained),
            "not_trained": "backbone, embeddings (the new domain's row stays at its initial value), wide weights "
            "(the new domain's is 0), the other adapter slots",
        },
        "n_domains": new_id + 1,
        "val_before": _domain_summary(val_before, name),
        "val": _domain_summary(val_after, name),
        "epochs": phase.epochs,
        "phases": [phase.to_dict()],
        "base_result": {k: run.record.get(k) for k in ("wauc", "mean_auc", "domain_auc", "domain_test_size", "logloss")},
        "seconds": time.time() - start,
        "config": dataclasses.replace(config, train=train_config).to_dict(),
        "dataset": {
            "name": run.record.get("dataset", {}).get("name", config.data.dataset),
            "domains": new_vocabulary.domain_names,
            "added_domain": name,
        },
        "command": sys.argv,
        "version": __version__,
    }
    write_record(output_dir, record)
    logging.info(
        "Added domain %d (%s) to %s: val AUC %s -> %s; wrote %s",
        new_id, name, run_dir, record["val_before"]["domain_auc"], record["val"]["domain_auc"], output_dir,
    )
    return record
