"""Rebuilding a trained model with other table sizes and carrying its weights over.

Serving appends an out-of-vocabulary row to every id table, and a new domain appends
a domain row and an adapter slot: both build the same architecture again from the
run's `ModelConfig` with other sizes (`rebuild`) and copy every weight whose shape did
not change; a `resize` callback says what a changed variable becomes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import keras
import numpy as np

from mlora_tf.config import ModelConfig
from mlora_tf.export.vocab import DOMAIN, Vocabulary
from mlora_tf.layers.core import LinearLogit
from mlora_tf.models.builder import DataSpec, build_model

Resize = Callable[[keras.Variable, keras.Variable], "np.ndarray | None"]


def rebuild(model_config: ModelConfig, vocab_sizes: dict, n_domains: int) -> keras.Model:
    """`build_model` on a copy of `model_config` (building fills the config's unset fields)."""
    return build_model(copy.deepcopy(model_config), DataSpec(vocab_sizes=dict(vocab_sizes), n_domains=int(n_domains)))


def input_name(tensor) -> str | None:
    operation = tensor._keras_history.operation
    return operation.name if isinstance(operation, keras.layers.InputLayer) else None


def feature_tables(model: keras.Model) -> dict:
    """The variables whose rows are indexed by the raw ids of one input feature.

    An `Embedding` layer called on a model input and the tables of a `LinearLogit`
    called on model inputs (table `i` belongs to input `i`).

    Returns:
        feature name -> list of variables, each of shape `(vocab_size, ...)`.
    """
    tables: dict = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            names = [input_name(t) for t in node.input_tensors]
            if isinstance(layer, keras.layers.Embedding) and len(names) == 1 and names[0]:
                tables.setdefault(names[0], []).append(layer.embeddings)
            elif isinstance(layer, LinearLogit) and len(names) == len(layer.tables):
                for name, table in zip(names, layer.tables):
                    if name:
                        tables.setdefault(name, []).append(table)
    return tables


def _canonical(path: str) -> str:
    # Seed generators are named by a process-wide counter; everything else by the model.
    return re.sub(r"seed_generator(_\d+)?", "seed_generator", path)


def paired_variables(old: keras.Model, new: keras.Model) -> list:
    """`(old_variable, new_variable)` pairs of two builds of one architecture.

    Raises:
        ValueError: if the two models do not have the same variables in the same order.
    """
    old_vars, new_vars = old.weights, new.weights
    old_paths = [_canonical(v.path) for v in old_vars]
    new_paths = [_canonical(v.path) for v in new_vars]
    if old_paths != new_paths:
        diff = sorted(set(old_paths) ^ set(new_paths))[:5]
        raise ValueError(
            "The rebuilt model does not match the saved one (was model.keras built from this run's config?). "
            f"Received variables that differ: {diff or 'the order differs'}"
        )
    return list(zip(old_vars, new_vars))


def transfer(old: keras.Model, new: keras.Model, resize: Resize | None = None) -> None:
    """Copy every weight of `old` into `new`; variables whose shape changed go through
    `resize(old_variable, new_variable)`, which returns the new value (or None: error)."""
    for old_var, new_var in paired_variables(old, new):
        if tuple(old_var.shape) == tuple(new_var.shape):
            new_var.assign(old_var.numpy())
            continue
        value = resize(old_var, new_var) if resize is not None else None
        if value is None:
            raise ValueError(
                f"Variable {old_var.path} changes shape {tuple(old_var.shape)} -> {tuple(new_var.shape)} "
                "and nothing says how to carry it over."
            )
        if tuple(value.shape) != tuple(new_var.shape):
            raise ValueError(
                f"Resized value of {old_var.path} has shape {value.shape}; expected {tuple(new_var.shape)}."
            )
        new_var.assign(value.astype(new_var.dtype))


def oov_row(values: np.ndarray, train_ids: np.ndarray) -> np.ndarray:
    """The OOV row of one table `(vocab_size, ...)`: the mean of the training ids' rows
    (computed in float64, stored in the table's dtype), shape `(1, ...)`; zeros when no
    id was seen in training."""
    values = np.asarray(values)
    if train_ids.size == 0:
        return np.zeros((1,) + values.shape[1:], values.dtype)
    return values[train_ids].astype(np.float64).mean(axis=0, keepdims=True).astype(values.dtype)


def check_vocabulary(model: keras.Model, vocabulary: Vocabulary) -> dict:
    """The model's feature tables, after checking their sizes against the vocabulary.

    Raises:
        ValueError: for a table whose row count is not the vocabulary size, or a model
            input the vocabulary lacks.
    """
    tables = feature_tables(model)
    for inp in model.inputs:
        name = input_name(inp)
        if name not in vocabulary.vocab_sizes:
            raise ValueError(f"The model input {name!r} has no vocabulary. Received: {vocabulary.features}")
    for feature, variables in tables.items():
        for v in variables:
            if int(v.shape[0]) != vocabulary.vocab_sizes[feature]:
                raise ValueError(
                    f"Table {v.path} has {v.shape[0]} rows but vocab_size_{feature} is "
                    f"{vocabulary.vocab_sizes[feature]}: vocab.npz does not belong to this model."
                )
    return tables


def with_oov_rows(model: keras.Model, model_config: ModelConfig, vocabulary: Vocabulary) -> keras.Model:
    """A copy of `model` whose id tables have one more row, index `vocab_size`: the OOV
    row (`oov_row`). Rows `0..vocab_size-1` and every other weight are unchanged."""
    tables = check_vocabulary(model, vocabulary)
    owner = {id(v): f for f, variables in tables.items() for v in variables}
    sizes = dict(vocabulary.vocab_sizes)
    for f in vocabulary.id_features:
        sizes[f] += 1

    def resize(old_var, new_var):
        feature = owner.get(id(old_var))
        if feature is None or feature == DOMAIN or int(new_var.shape[0]) != int(old_var.shape[0]) + 1:
            return None
        values = old_var.numpy()
        return np.concatenate([values, oov_row(values, vocabulary.train_ids[feature])], axis=0)

    new = rebuild(model_config, sizes, vocabulary.n_domains)
    transfer(model, new, resize)
    return new


def without_oov_rows(model: keras.Model, model_config: ModelConfig, vocabulary: Vocabulary) -> keras.Model:
    """Inverse of `with_oov_rows`: drop the last row of every id table."""
    owner = {id(v): f for f, variables in feature_tables(model).items() for v in variables}

    def resize(old_var, new_var):
        feature = owner.get(id(old_var))
        if feature is None or feature == DOMAIN or int(new_var.shape[0]) != int(old_var.shape[0]) - 1:
            return None
        return old_var.numpy()[:-1]

    new = rebuild(model_config, vocabulary.vocab_sizes, vocabulary.n_domains)
    transfer(model, new, resize)
    return new
