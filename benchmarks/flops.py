"""Arithmetic of the benchmarked models and the CPU's measured matmul peak (issue 18).

`train_flops_per_example(model)` counts, from a built `mlora_tf` model's layers, the
floating-point operations one training example costs; `matmul_peak()` measures what
`tf.matmul` reaches on this machine. `train_throughput.py` prints both, and the share
of the peak that each configuration's examples/second achieves.

The convention (the peers' scripts use the same one for their own layers):

* a row times an `(m, n)` kernel is `2 m n` FLOPs (one multiply and one add per term);
* a bias, an activation and a dropout each cost one FLOP per output element, and so
  does the sum of an adapter's output and the shared output;
* embedding gathers, the wide part's per-row sums, the logit's scalar ops and the
  optimizer's update (per step, not per example) are left out;
* training is 3x the forward pass: the backward pass computes two matmuls (input and
  kernel gradients) per forward one, and the elementwise ops are counted alike.

MLoRA adapters are counted as the trainer runs them on domain-homogeneous batches (one
slot: `x A_s`, then `[x A_s, 1] [B_s; c_s]`); `mixed_batches=True` counts the per-row
formula over all slots instead (`(x A) * repeat(w, r)`, `@ B`, `w @ c`).
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from mlora_tf.layers.adapted_dnn import AdaptedDNN
from mlora_tf.layers.lora_dense import LoRADense


def _is_linear(activation) -> bool:
    return activation is None or getattr(activation, "__name__", "") == "linear"


def _sublayers(model: keras.Model) -> list:
    # Every nested layer once; Keras' own summary and weight tracking walk the same tree.
    return list(model._flatten_layers(include_self=False, recursive=True))


def train_flops_per_example(model: keras.Model, mixed_batches: bool = False) -> dict:
    """Training FLOPs per example of `model`'s dense layers and adapters.

    Counts every `keras.layers.Dense` and `mlora_tf.layers.LoRADense` (with its
    adapter) in the model, from their kernels' shapes, and the dropout of the
    `AdaptedDNN` stacks they belong to; the convention is in the module docstring.
    Other layers (interaction layers, gates, embeddings) are not counted.

    Args:
        model: a built Keras model.
        mixed_batches: count adapters by the per-row formula over all slots (mixed-domain
            batches) instead of the one-slot path of domain-homogeneous batches.

    Returns:
        `{"forward_matmul", "forward_adapter", "forward_elementwise", "forward",
        "train"}`: FLOPs per example; `train` is `3 * forward`.
    """
    dropout_of = {}
    for layer in _sublayers(model):
        if isinstance(layer, AdaptedDNN):
            for dense in layer.dense_layers:
                dropout_of[id(dense)] = layer.dropout
    matmul = adapter = elementwise = 0
    counted = 0
    for layer in _sublayers(model):
        if not isinstance(layer, (keras.layers.Dense, LoRADense)):
            continue
        n_in, n_out = (int(d) for d in layer.kernel.shape)
        matmul += 2 * n_in * n_out
        per_unit = (1 if layer.bias is not None else 0) + (0 if _is_linear(layer.activation) else 1)
        rate = dropout_of.get(id(layer), getattr(layer, "dropout", 0.0) if isinstance(layer, LoRADense) else 0.0)
        per_unit += 1 if rate else 0
        if isinstance(layer, LoRADense):
            r, slots = layer.adapter.rank, layer.adapter.n_slots
            if mixed_batches:
                # x A (all slots), * repeat(w, r), @ B, + w @ c, two additions.
                adapter += 2 * n_in * slots * r + slots * r + 2 * slots * r * n_out + 2 * slots * n_out
                per_unit += 2
            else:
                # x A_s, then [x A_s, 1] @ [B_s; c_s], one addition.
                adapter += 2 * n_in * r + 2 * (r + 1) * n_out
                per_unit += 1
        elementwise += per_unit * n_out
        counted += 1
    if not counted:
        raise ValueError(f"The model has no Dense or LoRADense layer to count. Received: model={model.name!r}")
    forward = matmul + adapter + elementwise
    return {
        "forward_matmul": matmul,
        "forward_adapter": adapter,
        "forward_elementwise": elementwise,
        "forward": forward,
        "train": 3 * forward,
    }


def matmul_peak(size: int = 1024, streams: int | None = None, depth: int = 4, repeats: int = 5) -> dict:
    """The float32 `tf.matmul` rate this process reaches, in GFLOP/s.

    Runs `streams` independent chains of `depth` `(size, size) @ (size, size)` products
    in one `tf.function`, so both the inter-op pool (the trainer's setting: one thread
    per op, one op per core) and an intra-op pool of several threads keep every core
    busy. One call warms up; the best of `repeats` timed calls is the peak.

    Args:
        size: side of the square matrices.
        streams: independent chains (default: `os.cpu_count()`).
        depth: products per chain and call.
        repeats: timed calls.

    Returns:
        `{"gflops", "size", "streams", "depth", "seconds"}` (`seconds`: every timed call).
    """
    streams = int(streams or os.cpu_count() or 1)
    for name, value in (("size", size), ("streams", streams), ("depth", depth), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1. Received: {name}={value!r}")
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.standard_normal((size, size)) / np.sqrt(size), tf.float32)
    starts = [tf.constant(rng.standard_normal((size, size)), tf.float32) for _ in range(streams)]

    @tf.function
    def chains(kernel, starts):
        ends = []
        for x in starts:
            for _ in range(depth):
                x = tf.matmul(x, kernel)
            ends.append(tf.reduce_sum(x[:1, :1]))
        return tf.add_n(ends)

    chains(kernel, starts).numpy()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chains(kernel, starts).numpy()
        seconds.append(time.perf_counter() - t0)
    flops = 2.0 * size**3 * depth * streams
    return {"gflops": flops / min(seconds) / 1e9, "size": size, "streams": streams, "depth": depth,
            "seconds": seconds}
