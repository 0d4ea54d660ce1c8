"""The parts every multi-domain multi-task model shares: inputs, input vector, outputs.

See `mlora_tf.models.multitask` for the input and output contract.
"""

from __future__ import annotations

from typing import Any

import keras


def check_data(config, data) -> None:
    """Raises ValueError when `data` lacks a configured feature or its domain vocabulary
    differs from its domain count."""
    missing = [f for f in config.sparse_features if f not in data.vocab_sizes]
    if missing:
        raise ValueError(
            f"The data has no vocabulary for sparse feature(s) {missing}. "
            f"Received: vocab_sizes for {sorted(data.vocab_sizes)}"
        )
    missing = [f for f in config.dense_features if f not in data.dense_features]
    if missing:
        raise ValueError(
            f"The data has no dense feature(s) {missing}. "
            f"Received: dense_features={list(data.dense_features)}"
        )
    if data.vocab_sizes["domain"] != data.n_domains:
        raise ValueError(
            f"vocab_sizes['domain'] must equal n_domains={data.n_domains}. "
            f"Received: vocab_sizes['domain']={data.vocab_sizes['domain']}"
        )


def embed_inputs(config, data, prefix: str = "") -> tuple[dict, Any, Any]:
    """The model inputs and the input vector every MDMT model starts from.

    Returns:
        `(inputs, x, domain)`: the `keras.Input` dict, `x` `(batch_size, width)` = the
        sparse features' embeddings (`N(0, embedding_stddev)`, `embedding_dim` each,
        in `sparse_features` order) then the dense features (113 wide for M3oE's
        MovieLens), and the `domain` input.
    """
    check_data(config, data)
    inputs: dict[str, Any] = {
        f: keras.Input(shape=(), dtype="int64", name=f) for f in config.sparse_features
    }
    inputs.update({f: keras.Input(shape=(), dtype="float32", name=f) for f in config.dense_features})
    return inputs, input_vector(config, data, inputs, prefix), inputs["domain"]


def input_vector(config, data, inputs: dict, prefix: str = "") -> Any:
    """Embeds `inputs` into one `(batch_size, width)` vector (own tables per `prefix`)."""
    pieces = []
    for f in config.sparse_features:
        table = keras.layers.Embedding(
            data.vocab_sizes[f],
            config.embedding_dim,
            embeddings_initializer=keras.initializers.RandomNormal(0.0, config.embedding_stddev),
            name=f"{prefix}{f}_embedding",
        )
        pieces.append(table(inputs[f]))
    for f in config.dense_features:
        pieces.append(keras.layers.Reshape((1,), name=f"{prefix}{f}_column")(inputs[f]))
    if len(pieces) == 1:
        return pieces[0]
    return keras.layers.Concatenate(axis=-1, name=f"{prefix}input_vector")(pieces)


def task_outputs(logits: Any, tasks: tuple[str, ...]) -> dict[str, Any]:
    """`{task: probability, task_logit: logit}` from `(batch_size, n_tasks)` logits."""
    outputs = {}
    for t, task in enumerate(tasks):
        logit = keras.layers.Identity(name=f"{task}_logit")(logits[:, t])
        outputs[task] = keras.layers.Activation("sigmoid", name=task)(logit)
        outputs[f"{task}_logit"] = logit
    return outputs


def input_names(model: keras.Model) -> list[str]:
    """The names of a functional model's inputs, in `model.inputs` order."""
    return [t._keras_history.operation.name for t in model.inputs]
