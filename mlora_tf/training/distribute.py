"""Multi-device and multi-machine training: the one place a `tf.distribute` strategy is chosen.

Strategies (`make_strategy(name)`):

* `default`: no distribution (TensorFlow's default strategy); the trainer's fast
  single-device pass.
* `mirrored`: synchronous data parallelism over every local GPU, or, on a host without
  a GPU, over every logical CPU device (`configure_cpu_devices(n)` makes `n` of them:
  for tests and benchmarks).
* `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine,
  the cluster read from the `TF_CONFIG` environment variable (every local GPU of each
  worker, else its CPU). Create it before any other TensorFlow op.

Batch semantics: the configured `batch_size` stays the *global* batch, the number of
rows one optimizer step sees summed over all replicas; each replica gets
`batch_size / num_replicas_in_sync` of them (so the batch size must be divisible by the
replica count), and the loss is the mean over the global batch. A run on N replicas
therefore takes the same steps as a run on one device.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging

STRATEGIES = ("default", "mirrored", "multi_worker")
_TASK_TYPES = ("chief", "worker")


def configure_cpu_devices(count: int) -> int:
    """Split the host CPU into `count` logical devices (`/device:CPU:0` ... `CPU:count-1`).

    Call before TensorFlow initialises (before any op, and before
    `mlora_tf.runtime.configure_threads`): the `mirrored` strategy on a host without a
    GPU then has `count` replicas. The logical devices share the host's thread pools, so
    this simulates several devices rather than adding compute.

    Args:
        count: number of logical CPU devices, >= 1.

    Returns:
        The number of logical CPU devices in force.

    Raises:
        ValueError: `count` is not positive, or TensorFlow is already initialised with
            another number of CPU devices.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"`cpu_devices` must be a positive integer. Received: cpu_devices={count!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as e:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == count:
            return count
        raise ValueError(
            f"Cannot make {count} logical CPU devices: TensorFlow is already initialised with {current}. "
            "Call configure_cpu_devices() before any TensorFlow op."
        ) from e
    logging.info("Host CPU split into %d logical devices.", count)
    return count


def read_tf_config() -> dict:
    """The validated `TF_CONFIG` of a multi-worker run.

    Expected: `{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
    "index": i}}` (a `"chief"` task list of one address is also accepted).

    Raises:
        ValueError: `TF_CONFIG` is missing, not JSON, or inconsistent.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}\' (see README, "Several GPUs or machines").'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: {raw!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError(f"TF_CONFIG must be an object with a 'cluster' object. Received: {raw!r}")
    cluster, task = config["cluster"], config.get("task")
    unknown = sorted(set(cluster) - set(_TASK_TYPES))
    if unknown:
        raise ValueError(f"TF_CONFIG cluster: unknown task types {unknown}; valid: {list(_TASK_TYPES)}.")
    for task_type, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ValueError(
                f"TF_CONFIG cluster[{task_type!r}] must be a non-empty list of 'host:port' strings. "
                f"Received: {addresses!r}"
            )
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG: at most one chief. Received: {cluster['chief']!r}")
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int):
        raise ValueError(
            "TF_CONFIG must name this process's task as {'type': one of " f"{sorted(cluster)}, 'index': int}}. "
            f"Received: task={task!r}"
        )
    if not 0 <= task["index"] < len(cluster[task["type"]]):
        raise ValueError(
            f"TF_CONFIG task index {task['index']} is out of range for the {len(cluster[task['type']])} "
            f"{task['type']} address(es)."
        )
    return config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    Raises:
        ValueError: unknown name, or (multi_worker) a missing or invalid `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
        logging.info("MirroredStrategy over %d device(s): %s", len(devices), ", ".join(devices))
        return strategy
    if name == "multi_worker":
        config = read_tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logging.info(
            "MultiWorkerMirroredStrategy: task %s/%d of cluster %s, %d replica(s) in sync.",
            config["task"]["type"], config["task"]["index"], config["cluster"], strategy.num_replicas_in_sync,
        )
        return strategy
    raise ValueError(f"Unknown strategy {name!r}. Valid: {', '.join(STRATEGIES)}")


def is_default_strategy(strategy: tf.distribute.Strategy | None) -> bool:
    """True for None and TensorFlow's default (non-distributing) strategy."""
    return strategy is None or type(strategy).__name__ == "_DefaultDistributionStrategy"


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """True when `strategy` spans several processes (a cluster from `TF_CONFIG`)."""
    if is_default_strategy(strategy):
        return False
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run's files: always outside a multi-worker
    cluster; in one, the `chief` task, or worker 0 when the cluster has no chief."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy | None) -> int:
    """Rows per replica of a global batch of `global_batch_size` rows.

    Raises:
        ValueError: `global_batch_size` is not divisible by the number of replicas.
    """
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"`batch_size` is the global batch and must be divisible by the {replicas} replicas in sync. "
            f"Received: batch_size={global_batch_size}"
        )
    return global_batch_size // replicas


def input_pipelines(strategy: tf.distribute.Strategy) -> tuple[int, tf.distribute.InputReplicationMode]:
    """`(P, mode)`: the input pipelines of a distributed dataset under `strategy` and
    their replication mode: one per replica under `MirroredStrategy` (`PER_REPLICA`, its
    only user: no multi-device prefetching on the host), one per worker otherwise
    (`PER_WORKER`; 1 outside a cluster)."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return strategy.num_replicas_in_sync, tf.distribute.InputReplicationMode.PER_REPLICA
    workers = 1
    if is_multi_worker(strategy):
        cluster = strategy.cluster_resolver.cluster_spec().as_dict()
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    return workers, tf.distribute.InputReplicationMode.PER_WORKER
