"""Process-wide TensorFlow settings the programs apply before any op runs."""

from __future__ import annotations

import os

import tensorflow as tf
from absl import logging


def configure_threads(
    intra_op: int | None = None, inter_op: int | None = None, large_ops: bool = False
) -> tuple[int, int]:
    """Size TensorFlow's thread pools; call before the first TensorFlow op.

    A small CTR model's step is a chain of many small ops. On a CPU-only host, running
    each op on one thread and up to `cpu_count` independent ops at once is much faster
    than splitting every small op across all cores (measured in docs/performance.md).
    So by default, without a GPU: `intra_op = 1`, `inter_op = os.cpu_count()`; with a
    GPU, TensorFlow's own defaults (0 = automatic). Explicit values win.

    `large_ops=True` is for models whose steps are few large matrix products (the
    multi-task models at batch 40,960): then every op may use every core too
    (`intra_op = os.cpu_count()`), 1.6x faster there (docs/performance.md).

    Returns:
        The `(intra_op, inter_op)` values in force (0 = TensorFlow's automatic choice).
    """
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if intra_op is None:
        intra_op = 0 if on_gpu else ((os.cpu_count() or 1) if large_ops else 1)
    if inter_op is None:
        inter_op = 0 if on_gpu else (os.cpu_count() or 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        logging.warning(
            "TensorFlow is already initialised: thread pools left at intra_op=%d, inter_op=%d.",
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        )
    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
