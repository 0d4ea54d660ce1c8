"""Rebuilding a trained model with other table sizes and carrying its weights over.

Serving appends an out-of-vocabulary row to every id table, and a new domain appends
a domain row and an adapter slot: both build the same architecture again from the
run's model config with other sizes (`rebuild`) and copy every weight whose shape did
not change; a `resize` callback says what a changed variable becomes.

`rebuild` picks the builder by the config's type: a single-task `ModelConfig` goes to
`mlora_tf.models.build_model`, a `MultiTaskModelConfig` to the multi-task registry
(`build_multitask_model`, which also needs the run's tasks, in output order). A
single-task model is rebuilt with its own sparse features (`model_features`: `uid,
pid, domain` and any further ones, e.g. a CSV's extra columns), so the rebuilt model
has the trained one's inputs and tables.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import keras
import numpy as np

from mlora_tf.config import ModelConfig, MultiTaskModelConfig
from mlora_tf.export.vocab import DOMAIN, Vocabulary
from mlora_tf.layers.core import LinearLogit
from mlora_tf.models.builder import build_model, ordered_features
from mlora_tf.models.data_spec import DataSpec
from mlora_tf.models.multitask import build_multitask_model

Resize = Callable[[keras.Variable, keras.Variable], "np.ndarray | None"]


def single_task_features(vocab_sizes: dict) -> tuple[str, ...]:
    """The sparse features of a single-task model trained on data with these
    vocabularies: `uid, pid, domain`, then the vocabulary's other features in its order
    (a run's `vocab.npz` lists the features of its dataset, in the dataset's order,
    which is the order `build_model` created their tables in)."""
    return ordered_features(tuple(vocab_sizes))


def _rebuild_single_task(model_config: ModelConfig, vocab_sizes: dict, n_domains: int, tasks,
                         features=None) -> keras.Model:
    if tasks:
        raise ValueError(f"A single-task model has no tasks. Received: tasks={list(tasks)}")
    features = ordered_features(features) if features else single_task_features(vocab_sizes)
    return build_model(model_config, DataSpec(vocab_sizes=vocab_sizes, n_domains=n_domains, features=features))


def _rebuild_multitask(model_config: MultiTaskModelConfig, vocab_sizes: dict, n_domains: int, tasks,
                       features=None) -> keras.Model:
    del features  # the config's `sparse_features` name them
    if not tasks:
        raise ValueError(
            f"Rebuilding multi-task model {model_config.name!r} needs its tasks in output order "
            "(the run's result.json `tasks`). Received: tasks=()"
        )
    spec = DataSpec(
        vocab_sizes=vocab_sizes, n_domains=n_domains, tasks=tuple(tasks),
        dense_features=tuple(model_config.dense_features),
    )
    return build_multitask_model(model_config, spec)


# Config type -> builder.
_REBUILDERS = ((MultiTaskModelConfig, _rebuild_multitask), (ModelConfig, _rebuild_single_task))


def rebuild(model_config, vocab_sizes: dict, n_domains: int, tasks=(), features=None) -> keras.Model:
    """The architecture of `model_config` built again for other table sizes.

    Args:
        model_config: a single-task `ModelConfig` or a `MultiTaskModelConfig` (any
            registered multi-task model); a copy is built (building fills a
            single-task config's unset fields).
        vocab_sizes: feature -> rows of its tables.
        n_domains: number of domains.
        tasks: the multi-task model's tasks in output order (the order sets which
            tower is whose, so it must be the trained model's); empty for a
            single-task model.
        features: a single-task model's sparse features (its id inputs); None:
            `single_task_features(vocab_sizes)`, i.e. `uid, pid, domain` and every
            other feature of the vocabulary. (A multi-task config names its own.)

    Raises:
        ValueError: a config of another type, or tasks that do not fit the model kind.
    """
    for config_type, build in _REBUILDERS:
        if isinstance(model_config, config_type):
            return build(
                copy.deepcopy(model_config), dict(vocab_sizes), int(n_domains), tuple(tasks or ()), features
            )
    raise ValueError(
        "`model_config` must be a ModelConfig or a MultiTaskModelConfig. "
        f"Received: {type(model_config).__name__}"
    )


def input_name(tensor) -> str | None:
    operation = tensor._keras_history.operation
    return operation.name if isinstance(operation, keras.layers.InputLayer) else None


def is_id_input(tensor) -> bool:
    """Whether a model input holds ids (an integer dtype: looked up in tables) rather
    than dense values (a float dtype)."""
    return "int" in str(tensor.dtype)


def id_input_names(model: keras.Model) -> list[str]:
    """The names of the model's integer (id) inputs, in `model.inputs` order."""
    return [input_name(t) for t in model.inputs if is_id_input(t)]


def dense_input_names(model: keras.Model) -> list[str]:
    """The names of the model's float (dense) inputs, in `model.inputs` order."""
    return [input_name(t) for t in model.inputs if not is_id_input(t)]


def feature_tables(model: keras.Model) -> dict:
    """The variables whose rows are indexed by the raw ids of one input feature.

    An `Embedding` layer called on a model input and the tables of a `LinearLogit`
    called on model inputs (table `i` belongs to input `i`). A feature may have
    several tables (the multi-task `mlp` baseline embeds every feature once per
    (domain, task) objective): all of them are listed.

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
        ValueError: for a table whose row count is not the vocabulary size, or an id
            input of the model the vocabulary lacks (dense inputs have no vocabulary).
    """
    tables = feature_tables(model)
    for name in id_input_names(model):
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


def model_features(model: keras.Model, model_config, vocabulary: Vocabulary) -> tuple[str, ...] | None:
    """A single-task model's sparse features in the order its tables were built: its id
    inputs, in the vocabulary's order (the dataset's); None for a multi-task config
    (which names its own features)."""
    if isinstance(model_config, MultiTaskModelConfig):
        return None
    inputs = id_input_names(model)
    order = [f for f in vocabulary.features if f in inputs] + [f for f in inputs if f not in vocabulary.features]
    return ordered_features(order)


def with_oov_rows(model: keras.Model, model_config, vocabulary: Vocabulary, tasks=()) -> keras.Model:
    """A copy of `model` whose id tables have one more row, index `vocab_size`: the OOV
    row (`oov_row`). Rows `0..vocab_size-1` and every other weight are unchanged.

    Every table of an id feature gets the row (all of them when the feature has
    several); the domain tables and a hashed feature's keep their size. `model_config` and `tasks` as in
    `rebuild` (`tasks`: a multi-task model's, in output order)."""
    tables = check_vocabulary(model, vocabulary)
    owner = {id(v): f for f, variables in tables.items() for v in variables}
    sizes = dict(vocabulary.vocab_sizes)
    for f in vocabulary.oov_features:  # a hashed feature has no OOV row
        sizes[f] += 1

    def resize(old_var, new_var):
        feature = owner.get(id(old_var))
        if feature not in vocabulary.oov_features or int(new_var.shape[0]) != int(old_var.shape[0]) + 1:
            return None
        values = old_var.numpy()
        return np.concatenate([values, oov_row(values, vocabulary.train_ids[feature])], axis=0)

    new = rebuild(model_config, sizes, vocabulary.n_domains, tasks, model_features(model, model_config, vocabulary))
    transfer(model, new, resize)
    return new


def without_oov_rows(model: keras.Model, model_config, vocabulary: Vocabulary, tasks=()) -> keras.Model:
    """Inverse of `with_oov_rows`: drop the last row of every id table."""
    owner = {id(v): f for f, variables in feature_tables(model).items() for v in variables}

    def resize(old_var, new_var):
        feature = owner.get(id(old_var))
        if feature is None or feature == DOMAIN or int(new_var.shape[0]) != int(old_var.shape[0]) - 1:
            return None
        return old_var.numpy()[:-1]

    new = rebuild(
        model_config, vocabulary.vocab_sizes, vocabulary.n_domains, tasks, model_features(model, model_config, vocabulary)
    )
    transfer(model, new, resize)
    return new
