"""The trainer: the original's loop (original-model-zoo.md §5.3–§5.5) with a fast step.

Per epoch every domain's training data is visited in a fresh (seeded) random domain
order, one domain-homogeneous pass at a time; then each domain's validation split is
scored; early stopping watches the plain mean of the domain AUCs (strict improvement,
patience); after a non-improving epoch the best weights come back while the optimizer
keeps its state; the test split is scored with the best weights.

Speed: a whole pass over one domain is one `tf.function` call: the shuffle, the batch
slicing and every step run inside one graph loop over in-memory tensors, so no Python
runs per batch. On a CPU host each step also splits its batch into `batch_parts` row
groups whose forward and backward passes are independent subgraphs (TensorFlow runs them
on different cores) before one optimizer update with their summed gradients: the
batch's mean-loss gradient, as one pass over the whole batch computes it.

Distribution: with a `tf.distribute` strategy (`Trainer(..., strategy=...)`, see
`mlora_tf.training.distribute`) a pass draws the same shuffled, domain-homogeneous global
batches and runs each step on every replica with `strategy.run`, each replica taking the
slice of the batch that a distributed `tf.data` input assigns it; the default path is
untouched.

Streaming: a `mlora_tf.data.streamed.StreamedDataset` (a shard folder, `streamed = True`)
is trained without holding its rows. A pass reads the pass's shard files
(`ShardedDataset.batch_blocks`: rows read in file order, each batch gathered in the order
of the `shuffle_buffer`-row shuffle buffer, 64k-row blocks of whole batches read ahead on
a thread) and hands each block to one `tf.function` that slices it into batches and runs
the same training step as the in-memory pass on each. The
buffer's order is the in-memory pass's (`tf.data`'s shuffle of the row numbers, seeded
per pass key as `_buffer_order` seeds it), written once per pass to a file of int32 row
numbers in a temporary folder (4 bytes a row, on disk) and read back a block at a time.
On the same rows the streamed pass trains on the same batches in the same order, so
training and evaluation (streamed too, in `eval_batch_size` chunks) give the same
numbers; the pass seeds are checkpointed. Only `shuffle="buffer"` streams (a full
permutation needs every row).

Streaming under a strategy: every input pipeline (each replica of `mirrored`, each
worker of `multi_worker`) reads its own files only (`ShardedDataset.files(...,
input_context)`: of each domain of the pass, every `P`-th file from its own on), in the
order of its own shuffle buffer (seeded from the pass seed and the pipeline), in batches
of `batch_size / num_replicas` rows; global batch `k` is the `k`-th batch of every
replica. The pipelines agree from the manifest's row counts on the number of steps of a
pass (the longest pipeline's; the others get empty batches at the end) and on each step's
global rows (the loss is their mean), so no collective beyond the gradients' all-reduce
runs and no worker waits for another's files. The same files on the same number of
pipelines give the same batches whether the pipelines are replicas of one process or
workers of a cluster (`mirrored` over `P` logical devices is the one-process reference
of a `P`-worker run); a single device reads every file in one order, so its batches
differ. Evaluation streams every row on every worker (memory stays flat).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import tempfile
import time
import weakref

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mlora_tf.config import TrainConfig
from mlora_tf.layers.adapted_dnn import Routing
from mlora_tf.models.builder import count_params, dense_stack_of, ordered_features, variable_groups
from mlora_tf.models.mdmt_parts import input_names
from mlora_tf.training.distribute import (
    input_pipelines,
    is_default_strategy,
    is_multi_worker,
    per_replica_batch_size,
)
from mlora_tf.training.optimizers import FusedAdam
from mlora_tf.training.metrics import AUC_FUNCTIONS, domain_metrics, plain_mean
from mlora_tf.training.loops import CHOICES, get_factor
from mlora_tf.training.loop import Checkpoint, EarlyStoppingLoop, LoopState, model_weights
from mlora_tf.training.phases import GROUPS, Phase

# Clipping of Keras' probability losses (TF 1.12 `K.epsilon()`).
KERAS_EPSILON = 1e-7


def clipped_binary_crossentropy(label, logit):
    """Keras' `binary_crossentropy` on `sigmoid(logit)`, per row, as TF 1.12 computes
    it: the probability clipped to `[1e-7, 1 - 1e-7]`, turned back into a logit and
    scored with `sigmoid_cross_entropy_with_logits` (so a clipped row has no gradient).
    """
    p = tf.clip_by_value(tf.sigmoid(logit), KERAS_EPSILON, 1.0 - KERAS_EPSILON)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=tf.math.log(p / (1.0 - p)))


def logit_binary_crossentropy(label, logit):
    """Binary cross-entropy from logits, per row (the fast loop's)."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logit)


LOSSES = {"logits": logit_binary_crossentropy, "clipped": clipped_binary_crossentropy}
# Variables of a moving average's hidden zero-debias state (`PartitionedNorm`).
EMA_STATE_NAMES = ("moving_mean_biased", "moving_variance_biased", "num_updates")


def shuffle_buffer_order(n: int, buffer_size: int, seed: int) -> np.ndarray:
    """The order in which a `buffer_size`-row `tf.data` shuffle buffer with `seed`
    emits rows `0 .. n - 1` read in order: `(n,)` int32."""
    rows = tf.data.Dataset.range(n).shuffle(buffer_size, seed=seed, reshuffle_each_iteration=False)
    return np.concatenate([b for b in rows.batch(1 << 16).as_numpy_iterator()] or [np.zeros(0, np.int64)]).astype(
        np.int32
    )


def write_shuffle_buffer_order(path: str, n: int, buffer_size: int, seed: int) -> None:
    """`shuffle_buffer_order(n, buffer_size, seed)` written to `path` as `n` native
    int32 values (`numpy.ndarray.tofile`), a block at a time (memory holds one block)."""
    rows = tf.data.Dataset.range(n).shuffle(buffer_size, seed=seed, reshuffle_each_iteration=False)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        for block in rows.batch(1 << 16).as_numpy_iterator():
            block.astype(np.int32).tofile(f)
    os.replace(tmp, path)


# Streamed passes' row-order files live in `<tmp>/mlora_tf_orders_<pid>_*` folders.
ORDER_DIR_PREFIX = "mlora_tf_orders_"


def remove_stale_order_dirs(folder: str | None = None) -> list[str]:
    """Remove the row-order folders (`ORDER_DIR_PREFIX<pid>_*`, this user's) that a
    process no longer running left in `folder` (default: the temporary folder), as a
    killed run does (4 bytes per training row); returns the removed paths. A folder of
    a live process, or of another user, is kept."""
    folder = folder or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = re.fullmatch(rf"{ORDER_DIR_PREFIX}(\d+)_.*", name)
        path = os.path.join(folder, name)
        if not match or not os.path.isdir(path):
            continue
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(match.group(1)), 0)  # raises if no such process
            continue
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue  # a live process of another user, or unreadable: keep
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        logging.info("Removed %d row-order folder(s) of runs no longer running: %s", len(removed), ", ".join(removed))
    return removed


_ID_SPEC = tf.TensorSpec([None], tf.int64)
_LABEL_SPEC = tf.TensorSpec([None], tf.float32)
_ORDER_SPEC = tf.TensorSpec([None], tf.int32)


@dataclasses.dataclass
class PhaseResult:
    """What one phase did: its epochs, its best validation metric, and the validation
    and test metrics of the weights it ended with (what the phase bought)."""

    name: str
    epochs: int
    best_epoch: int
    best_val_metric: float
    history: list
    seconds: float
    train_examples: int
    val: dict | None = None
    test: dict | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _l2_factor(variable):
    """The factor of a pure L2 regularizer on `variable`, else None."""
    regularizer = variable.regularizer
    if isinstance(regularizer, keras.regularizers.L2):
        return float(regularizer.l2)
    return None


def _summary(metrics: dict) -> dict:
    keys = ("wauc", "mean_auc", "mean_auc500", "logloss", "domain_auc")
    return {k: metrics[k] for k in keys}


def _replica_slots(per_replica: int, context: tf.distribute.InputContext) -> tf.data.Dataset:
    """One input pipeline's endless stream of replica slots: `[r * b, (r + 1) * b]`, the
    positions within every global batch that replica `r` trains on (`b = per_replica`).

    The pipeline serves the replicas `first .. first + local - 1` (one per pipeline with
    `InputReplicationMode.PER_REPLICA`, a worker's local replicas in turn with
    `PER_WORKER`), so step after step each replica draws its own slot.
    """
    local = context.num_replicas_in_sync // context.num_input_pipelines
    first = context.input_pipeline_id * local
    slots = [[(first + i) * per_replica, (first + i + 1) * per_replica] for i in range(local)]
    # No autotuning: a live pipeline would keep a tuning thread that its deletion waits for.
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices(tf.constant(slots, tf.int32)).repeat().with_options(options)


def default_batch_parts(model: keras.Model) -> int:
    """Row groups per training step: 2 on a CPU-only host with at least two inter-op
    threads, else 1.

    A step's ops form mostly one chain (layer after layer, forward then backward), so
    one core idles much of the time; two independent halves keep both busy (measured in
    docs/performance.md). A GPU runs one op at a time anyway. Models with batch
    statistics (batch normalisation, STAR's partitioned normalisation: variables named
    `moving_*`; AdaptDHM's online k-means, a layer with `batch_statistics = True`) keep
    whole batches: halves would change their statistics.
    """
    if tf.config.list_logical_devices("GPU"):
        return 1
    threads = tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count() or 1
    if threads < 2:
        return 1
    if any(
        isinstance(layer, keras.layers.BatchNormalization) or getattr(layer, "batch_statistics", False)
        for layer in model._flatten_layers()
    ):
        return 1
    if any(v.name.startswith("moving_") for v in model.variables):
        return 1
    return 2


class Trainer:
    """Trains a model built by `mlora_tf.models.build_model` on a `MultiDomainDataset`.

    Args:
        model: the Keras model (outputs `logit` and `probability`); one int64 input per
            sparse feature (`uid, pid, domain` and any further ones).
        dataset: a `MultiDomainDataset` (canonical splits in memory) with a column per
            model input and a `label`.
        config: `TrainConfig`.
        tensorboard_dir: optional folder for TensorBoard scalars.
        strategy: optional `tf.distribute.Strategy`; `model` must have been built under
            its `scope()`. `config.batch_size` is the global batch (divided evenly
            among the replicas). None or the default strategy: one device.
        batch_parts: row groups a one-device training step splits its batch into (see
            the module docstring); None: `default_batch_parts(model)`.
    """

    def __init__(
        self,
        model: keras.Model,
        dataset,
        config: TrainConfig,
        tensorboard_dir: str | None = None,
        strategy: tf.distribute.Strategy | None = None,
        batch_parts: int | None = None,
    ):
        self.model = model
        self.dataset = dataset
        self.config = config
        if config.early_stop_metric not in AUC_FUNCTIONS:
            raise ValueError(
                f"`early_stop_metric` must be one of {sorted(AUC_FUNCTIONS)}. "
                f"Received: early_stop_metric={config.early_stop_metric!r}"
            )
        if config.batch_size < 1:
            raise ValueError(f"`batch_size` must be positive. Received: batch_size={config.batch_size}")
        # The sparse features the model takes (`uid, pid, domain`, then any further
        # ones): every pass and prediction feeds exactly these columns.
        self.features = ordered_features(input_names(model))
        # A shard folder streamed from disk (`StreamedDataset`) holds no rows.
        self.streamed = bool(getattr(dataset, "streamed", False))
        columns = tuple(dataset.column_names) if self.streamed else dataset.splits["train"]
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise ValueError(
                f"Dataset '{dataset.name}' lacks the model input(s) {missing}. "
                f"Received: columns {sorted(columns)}"
            )
        if "label" not in columns:
            raise ValueError(
                f"Dataset '{dataset.name}' has the labels {list(getattr(dataset, 'labels', ()))}, not one `label`: "
                "train a multi-task model on it (mlora-train --task_set=...), or a single-task model on "
                "`dataset.select_task(name)`."
            )
        self.groups = variable_groups(model)
        self.rng = np.random.default_rng(config.seed)
        self.writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
        self._tensors = {}
        self._epoch_counter = 0
        self._carried = None  # (metric, weights) carried across phases with `carry_best`
        self._shared_optimizer = None
        self._replica_slots = None  # distributed iterator of each replica's slot in a global batch
        # Full validation and test metrics of the weights the last phase run here ended
        # with (`run_phase`), or None before any phase ran in this process.
        self.final_metrics = None
        self.strategy = None if is_default_strategy(strategy) else strategy
        if batch_parts is None:
            batch_parts = config.row_groups
        if batch_parts is None:
            batch_parts = default_batch_parts(model) if self.strategy is None else 1
        if not isinstance(batch_parts, int) or batch_parts < 1:
            raise ValueError(f"`batch_parts` must be a positive integer. Received: batch_parts={batch_parts}")
        self.batch_parts = batch_parts
        # The original loop's factors (`mlora_tf.training.loops`); unset: the fast loop's.
        self.shuffle = config.shuffle or get_factor("shuffle").fast
        self.loss_kind = config.loss or get_factor("loss").fast
        if self.shuffle not in CHOICES["shuffle"]:
            raise ValueError(f"`shuffle` must be one of {list(CHOICES['shuffle'])}. Received: shuffle={self.shuffle!r}")
        if self.loss_kind not in LOSSES:
            raise ValueError(f"`loss` must be one of {sorted(LOSSES)}. Received: loss={self.loss_kind!r}")
        self._routing = Routing()  # the current phase's (`_enter_phase`)
        self._buffer_orders = {}  # pass key -> the shuffle buffer's (repeating) row order
        self._stream_seeds = {}  # pass key -> its shuffle buffer's seed (streamed passes)
        self._stream_orders = {}  # pass key -> the file of its row order (streamed passes)
        self._order_dir = None  # the temporary folder of those files
        if self.streamed:
            self._check_streaming()
        if self.strategy is not None:
            if self.batch_parts != 1:
                raise ValueError(f"`row_groups` must be 1 under a strategy. Received: row_groups={self.batch_parts}")
            per_replica_batch_size(config.batch_size, self.strategy)
            if not all(self.strategy.extended.variable_created_in_scope(v.value) for v in self.weight_variables):
                raise ValueError(
                    f"The model's variables were not created under the strategy {type(self.strategy).__name__}: "
                    "build the model inside `with strategy.scope():`."
                )
            self._decorrelate_dropout()

    def _check_streaming(self):
        """Refuses what a streamed dataset cannot train with."""
        if self.shuffle != "buffer":
            raise ValueError(
                f"A streamed shard folder ({self.dataset.folder}) is shuffled by a shuffle buffer: "
                "`shuffle='permutation'` needs every row in memory. Use shuffle='buffer', or read the folder into "
                f"memory (mlora-train --stream=false). Received: shuffle={self.shuffle!r}"
            )

    def _scope(self):
        """The strategy's scope (a no-op context on one device)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    # ----------------------------------------------------------------- data
    def _domain_tensors(self, split: str, domain: int | None):
        """In-memory tensors of one domain (or all rows when `domain` is None): one
        int64 `(rows,)` tensor per feature of `self.features`, then the float32 label."""
        key = (split, domain)
        if key not in self._tensors:
            rows = self.dataset.splits[split] if domain is None else self.dataset.domain_slice(split, domain)
            if domain is not None and not np.all(np.asarray(rows["domain"]) == domain):
                # The passes and predictions over these rows are traced as one domain
                # per batch (`_single_domain`): they must really be.
                raise ValueError(f"The {split!r} rows of domain {domain} hold other domains' rows.")
            self._tensors[key] = tuple(
                tf.constant(np.asarray(rows[f], dtype=np.int64)) for f in self.features
            ) + (tf.constant(np.asarray(rows["label"], dtype=np.float32)),)
        return self._tensors[key]

    def _specs(self, label: bool = True) -> list:
        """The input signature of a pass over `_domain_tensors`' tensors."""
        return [_ID_SPEC] * len(self.features) + ([_LABEL_SPEC] if label else [])

    def _model_inputs(self, features) -> dict:
        """The model's input dict from one tensor per feature of `self.features`."""
        return dict(zip(self.features, features))

    # --------------------------------------------------------------- phases
    def param_counts(self) -> dict:
        return {group: count_params(variables) for group, variables in self.groups.items()}

    def _enter_phase(self, phase: Phase):
        """Freeze/unfreeze groups, set the mixture source, make a fresh optimizer."""
        for group in GROUPS:
            for v in self.groups[group]:
                v.trainable = group in phase.train_groups
        stack = dense_stack_of(self.model)
        # The phase's routing, handed to every pass and prediction traced from here
        # (`_single_domain`); checked now against the stack.
        with stack.routed(phase.routing):
            self._routing = phase.routing
        self.train_variables = [v for g in phase.train_groups for v in self.groups[g]]
        if not self.train_variables:
            raise ValueError(f"Phase {phase.name!r} has no variables to train (groups {phase.train_groups}).")
        # Only one slot of the fused adapter variables trains: remember the others.
        self._frozen_slots = None
        if phase.train_slot is not None:
            self._frozen_slots = [
                (variable, variable.numpy().copy(), mask)
                for layer in stack.adapter_layers
                for variable, mask in zip(layer.weights, layer.slot_masks(phase.train_slot))
            ]
        with self._scope():
            if self.config.share_optimizer:
                # The fork's single Adam: one optimizer (moments, step count) for every phase.
                self.optimizer = self._ensure_shared_optimizer()
            else:
                self.optimizer = FusedAdam(learning_rate=self.config.learning_rate, epsilon=self.config.adam_epsilon)
                self.optimizer.build(self.train_variables)
        make = self._make_train_pass if self.strategy is None else self._make_distributed_train_pass
        if self.streamed:
            make = self._make_stream_pass if self.strategy is None else self._make_distributed_stream_pass
        self._train_pass = self._by_batch_kind(make)
        self._predict = self._make_predict()

    def _by_batch_kind(self, make):
        """A training pass that runs `make(one_domain)`'s pass, made on first use, for
        the current `config.mixed_batches` (one-domain batches are traced without the
        per-batch domain test, mixed ones with the per-row mixture)."""
        passes = {}

        def train_pass(*tensors):
            one_domain = not self.config.mixed_batches
            if one_domain not in passes:
                passes[one_domain] = make(one_domain)
            return passes[one_domain](*tensors)

        return train_pass

    def _ensure_shared_optimizer(self):
        """The optimizer shared by all phases (`share_optimizer`), created once."""
        if self._shared_optimizer is None:
            with self._scope():
                self._shared_optimizer = FusedAdam(
                    learning_rate=self.config.learning_rate, epsilon=self.config.adam_epsilon
                )
                self._shared_optimizer.build([v for g in GROUPS for v in self.groups[g]])
        return self._shared_optimizer

    def _single_domain(self, enabled: bool = True):
        """The context in which the trainer traces its passes and predictions: the
        phase's routing (`Phase.routing`: its mixture) and, with `enabled`, the promise
        that every batch holds one domain (true of `_domain_tensors`' rows, which it
        checks), so the dense stack routes a batch by its first row, with no per-batch
        test."""
        routing = dataclasses.replace(self._routing, one_domain_batches=bool(enabled))
        return dense_stack_of(self.model).routed(routing)

    def _shared_slots(self, enabled: bool):
        """Around one batch's row groups (one domain, unchanged weights): they share
        the dense stack's slot and sliced adapter parameters."""
        if not enabled:
            return contextlib.nullcontext()
        return dense_stack_of(self.model).routed(Routing(shared_slots=True))

    def _make_step(self, one_domain: bool = True):
        """The one-device training step on one batch (one id tensor per feature, then
        the labels): returns its loss. Both the in-memory and the streamed pass run it."""
        optimizer, variables = self.optimizer, self.train_variables
        parts = self.batch_parts

        # L2 terms get their gradient in closed form (2 * l2 * w, the same as
        # differentiating `l2 * sum(w^2)` in the loss, without the reductions);
        # any other regularizer is differentiated through the loss.
        l2 = [_l2_factor(v) for v in variables]
        others = [v for v, f in zip(variables, l2) if f is None and v.regularizer is not None]

        def step(*batch):
            with tf.GradientTape() as tape, self._single_domain(one_domain):
                with self._shared_slots(one_domain and parts > 1):
                    loss = self._batch_loss(*batch, parts=parts)
                total = loss + tf.add_n([v.regularizer(v) for v in others]) if others else loss
            gradients = tape.gradient(total, variables)
            gradients = [
                g if f is None else tf.convert_to_tensor(g) + (2.0 * f) * v.value
                for g, v, f in zip(gradients, variables, l2)
            ]
            optimizer.apply(gradients, variables)
            return loss

        return step

    def _make_train_pass(self, one_domain: bool = True):
        """The one-device training pass; `one_domain`: every batch holds one domain."""
        batches = functools.partial(self._sliced_steps, self._make_step(one_domain))

        if self.shuffle == "buffer":
            # The original's stream: the order comes from the shuffle buffer
            # (`_buffer_order`), the same every epoch.
            @tf.function(input_signature=[_ORDER_SPEC] + self._specs())
            def ordered_pass(order, *tensors):
                # The pass's rows in `order`, gathered once.
                return batches([tf.gather(t, order) for t in tensors])

            return ordered_pass

        @tf.function(input_signature=self._specs())
        def train_pass(*tensors):
            # `tensors`: one id tensor per feature, then the labels.
            n = tf.shape(tensors[-1])[0]
            order = tf.random.shuffle(tf.range(n))
            return batches([tf.gather(t, order) for t in tensors])

        return train_pass

    def _sliced_steps(self, step, tensors):
        """Runs `step` on the consecutive `batch_size`-row slices of `tensors` (one
        column per feature, then the labels; the last slice may be shorter) in a graph
        loop; returns `(loss sum, steps)`."""
        batch_size = self.config.batch_size
        n = tf.shape(tensors[-1])[0]
        steps = (n + batch_size - 1) // batch_size
        loss_sum = tf.constant(0.0)
        for i in tf.range(steps):
            start, end = i * batch_size, tf.minimum((i + 1) * batch_size, n)
            loss_sum += step(*(t[start:end] for t in tensors))
        return loss_sum, steps

    def _make_stream_pass(self, one_domain: bool = True):
        """The streamed training pass: `pass(blocks)` runs `_make_step`'s step on every
        batch of `blocks` (the numpy column blocks of `_stream_batches`, read ahead on
        a thread of their own), a block per call of one `tf.function` that slices it
        into batches as the in-memory pass slices its rows; returns `(loss sum, steps)`
        as the in-memory pass.

        Not a `tf.data` iterator inside the function: on the 2-core CI machine a step
        that takes its batch from an iterator ran, pass by pass, either at full speed
        or at exactly 4.9 (or 9.8) ms a step, half speed; a block of 64k rows per
        call hands over once per 64 steps (docs/performance.md, "Streaming").
        """
        batches = functools.partial(self._sliced_steps, self._make_step(one_domain))
        block_pass = tf.function(lambda *tensors: batches(list(tensors)), input_signature=self._specs())

        def stream_pass(blocks):
            loss_sum, steps = tf.constant(0.0), 0
            for block in blocks:
                s, k = block_pass(*self._row_tuple(block))
                loss_sum, steps = loss_sum + s, steps + int(k)
            return loss_sum, steps

        return stream_pass

    def _row_tuple(self, row: dict):
        """A streamed batch (a dict of columns) as the passes take it: one id tensor per
        feature of `self.features`, then the labels."""
        return tuple(row[f] for f in self.features) + (row["label"],)

    def _stream_seed(self, key) -> int:
        """The shuffle seed of the streamed pass `key`: drawn as `_buffer_order` draws
        it (from the run seed and the number of pass keys seen before), so a streamed
        pass reads the rows in the order of the in-memory pass."""
        if key not in self._stream_seeds:
            self._stream_seeds[key] = int(
                np.random.default_rng([self.config.seed, len(self._stream_seeds)]).integers(2**31 - 1)
            )
        return self._stream_seeds[key]

    def _stream_order(self, key, n: int, pipeline: int | None = None) -> str:
        """The file of the streamed pass `key`'s row order over its `n` rows (the
        shuffle buffer's, `write_shuffle_buffer_order`), written on first use into a
        temporary folder that goes with the trainer. Under a strategy, input pipeline
        `pipeline`'s order over its own rows, seeded from the pass seed and `pipeline`."""
        order_key = key if pipeline is None else ("pipeline", pipeline, key)
        if order_key not in self._stream_orders:
            seed = self._stream_seed(key)
            if pipeline is not None:
                seed = int(np.random.default_rng([seed, pipeline]).integers(2**31 - 1))
            if self._order_dir is None:
                remove_stale_order_dirs()
                self._order_dir = tempfile.mkdtemp(prefix=f"{ORDER_DIR_PREFIX}{os.getpid()}_")
                weakref.finalize(self, shutil.rmtree, self._order_dir, True)
            path = os.path.join(self._order_dir, f"pass-{len(self._stream_orders)}.int32")
            write_shuffle_buffer_order(path, n, self.config.shuffle_buffer, seed)
            self._stream_orders[order_key] = path
        return self._stream_orders[order_key]

    def _stream_batches(self, key, domains) -> tuple:
        """The training input of the streamed pass `key` over `domains` (one domain,
        or several with `mixed_batches`) in the shuffle buffer's order: `(blocks,)` on
        one device (`ShardedDataset.batch_blocks`: numpy blocks of whole batches), `(distributed dataset, steps)` under a strategy
        (`_distributed_stream_batches`)."""
        if self.strategy is not None:
            return self._distributed_stream_batches(key, domains)
        n = sum(self.dataset.num_rows("train", d) for d in domains)
        blocks = self.dataset.shards.batch_blocks(
            "train", self.config.batch_size, domains=list(domains), order=self._stream_order(key, n)
        )
        return (blocks,)

    def _distributed_stream_batches(self, key, domains) -> tuple:
        """`(distributed dataset, steps)` of the streamed pass `key` under the strategy.

        Pipeline `p` of `P` reads its files of `domains` in its own shuffle buffer's
        order (`_stream_order(key, n_p, p)`) in per-replica batches of
        `b = batch_size / R` rows; each of its `R / P` replicas takes every
        `(R / P)`-th of them. `steps` is the longest pipeline's; a shorter one ends
        with empty batches. Every element carries the global batch's row count, the
        same on every replica of a step, from the manifest's per-file rows.
        """
        shards, strategy = self.dataset.shards, self.strategy
        replicas = strategy.num_replicas_in_sync
        per_replica = per_replica_batch_size(self.config.batch_size, strategy)
        pipelines, mode = input_pipelines(strategy)
        local = replicas // pipelines

        def context(p):
            return tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=p,
                                              num_replicas_in_sync=replicas)

        rows = [sum(f.rows for d in domains for f in shards.files("train", d, context(p))) for p in range(pipelines)]
        elements = [-(-n // per_replica) for n in rows]
        steps = max(-(-e // local) for e in elements)
        sizes = np.zeros((pipelines, steps * local), np.int64)  # rows of each pipeline's elements
        for p, n in enumerate(rows):
            sizes[p, : elements[p]] = per_replica
            if n % per_replica:
                sizes[p, elements[p] - 1] = n % per_replica
        global_rows = sizes.reshape(pipelines, steps, local).sum(axis=(0, 2))
        spec = shards.element_spec(batched=True)
        empty = {c: tf.zeros([0], s.dtype) for c, s in spec.items()}

        def pipeline_batches(input_context):
            p = input_context.input_pipeline_id
            if input_context.num_input_pipelines != pipelines:
                raise RuntimeError(f"{input_context.num_input_pipelines} input pipelines; expected {pipelines}.")
            # One pipeline reads what one device reads, in the same order.
            order = self._stream_order(key, rows[p], p if pipelines > 1 else None) if rows[p] else None
            batches = shards.batches("train", per_replica, domains=list(domains), input_context=input_context,
                                     order=order)
            padding = steps * local - elements[p]
            if padding:
                batches = batches.concatenate(tf.data.Dataset.from_tensors(empty).repeat(padding))
            counts = tf.data.Dataset.from_tensor_slices(np.repeat(global_rows, local))
            return tf.data.Dataset.zip(batches, counts).map(lambda row, n: (*self._row_tuple(row), n))

        options = tf.distribute.InputOptions(experimental_fetch_to_device=False, experimental_replication_mode=mode)
        return strategy.distribute_datasets_from_function(pipeline_batches, options), steps

    def _buffer_order(self, key, n: int):
        """The row order of a pass over `n` rows through a `shuffle_buffer`-row
        shuffle buffer (`tf.data`'s, as `make_csv_dataset` used), seeded once per pass
        key from the run seed: like the original's re-initialised iterator, it repeats
        every epoch."""
        if key not in self._buffer_orders:
            seed = int(np.random.default_rng([self.config.seed, len(self._buffer_orders)]).integers(2**31 - 1))
            self._buffer_orders[key] = tf.constant(
                shuffle_buffer_order(n, self.config.shuffle_buffer, seed), tf.int32
            )
        return self._buffer_orders[key]

    def _batch_loss(self, *tensors, parts: int = 1):
        """The training loss of a batch: the mean per-row binary cross-entropy.

        `tensors`: one `(batch_size,)` id tensor per feature of `self.features`
        (`uid, pid, domain`, then any further ones), then the `(batch_size,)` labels.

        With `parts > 1` the rows are split into `parts` groups, each run through the
        model on its own (independent subgraphs for the executor to run side by side),
        and their summed losses divided by the batch's row count: the same loss and
        gradients. Group j holds rows `[j n / parts, (j + 1) n / parts)`; a group with
        no row of its own (a batch of fewer than `parts` rows) scores the batch's last
        row with weight 0, so that no group is empty.
        """
        features, label = tensors[:-1], tensors[-1]
        row_loss = LOSSES[self.loss_kind]
        if parts == 1:
            logit = self.model(self._model_inputs(features), training=True)["logit"]
            return tf.reduce_mean(row_loss(label, logit))
        n = tf.shape(label)[0]
        sums = []
        for j in range(parts):
            lo, hi = (j * n) // parts, ((j + 1) * n) // parts
            start = tf.minimum(lo, n - 1)
            end = tf.maximum(hi, start + 1)
            logit = self.model(self._model_inputs(f[start:end] for f in features), training=True)["logit"]
            per_row = row_loss(label[start:end], logit)
            rows = tf.range(start, end)
            own = tf.cast(tf.logical_and(rows >= lo, rows < hi), per_row.dtype)
            sums.append(tf.reduce_sum(per_row * own))
        return tf.add_n(sums) / tf.cast(n, sums[0].dtype)

    def _make_distributed_train_pass(self, one_domain: bool = True):
        """The training pass under `self.strategy`: the one-device pass's batches, each
        split among the replicas.

        The rows of a pass are permuted exactly as the one-device pass permutes them (the
        same op with the same seed, so the same permutations) and cut into the same
        global batches of `batch_size` consecutive rows (one domain; the last one
        shorter). A distributed `tf.data` input (`_replica_slots`, made once per trainer
        by `strategy.distribute_datasets_from_function`) gives each replica its slot in
        every global batch: replica `r` of `R` trains on rows `[r * b, (r + 1) * b)` of
        it, `b = batch_size / R` (fewer, or none, in the last batch of a pass).
        `strategy.run` runs the step on every replica, which gathers its rows from the
        in-memory tensors on the host, as the one-device pass does. Every worker holds
        all rows and draws the same permutation. Each replica's update is
        `_make_replica_update`'s.
        """
        strategy = self.strategy
        batch_size = self.config.batch_size
        slots = self._slot_iterator()
        update, loss_total = self._make_replica_update(one_domain)

        def replica_step(slot, order, start, end, *tensors):
            # `tensors`: one id tensor per feature, then the labels (the whole pass).
            with tf.device("/cpu:0"):  # the rows stay in host memory; only the share moves
                rows = order[tf.minimum(start + slot[0], end) : tf.minimum(start + slot[1], end)]
                tensors = [tf.gather(t, rows) for t in tensors]
            update(tensors[:-1], tensors[-1], end - start)

        @tf.function(input_signature=self._specs())
        def shuffled_order(*tensors):
            # The very ops that open the one-device pass, in the same order and with the
            # same signature: under a global seed the shuffle gets the same op seed, so
            # both paths draw the same permutations.
            n = tf.shape(tensors[-1])[0]
            return tf.random.shuffle(tf.range(n))

        slot_spec = tf.type_spec_from_value(slots)

        @tf.function(input_signature=[slot_spec, _ORDER_SPEC] + self._specs())
        def run_batches(slots, order, *tensors):
            loss_total.reset_state()
            n = tf.shape(tensors[-1])[0]
            steps = (n + batch_size - 1) // batch_size
            for step in tf.range(steps):
                start = step * batch_size
                end = tf.minimum(start + batch_size, n)
                strategy.run(replica_step, args=(next(slots), order, start, end, *tensors))
            return loss_total.result(), steps

        if self.shuffle == "buffer":
            # The shuffle buffer's order (`_buffer_order`): the same on every worker.
            def ordered_pass(order, *tensors):
                return run_batches(slots, order, *tensors)

            return ordered_pass

        def train_pass(*tensors):
            return run_batches(slots, shuffled_order(*tensors), *tensors)

        return train_pass

    def _make_replica_update(self, one_domain: bool):
        """`(update, loss_total)`: `update(features, label, global_rows)` is one
        replica's share of a distributed step (its rows of a global batch of
        `global_rows` rows), `loss_total` the pass's summed global-batch losses.

        Each replica's loss is its per-row loss summed and divided by the rows of the
        whole global batch (`tf.nn.compute_average_loss`), so the gradients that Keras'
        `optimizer.apply` all-reduces (sums) over the replicas are those of the
        global-batch mean; regularisation enters with weight `1 / num_replicas` on each
        replica, so once in total.
        """
        strategy, model, optimizer, variables = self.strategy, self.model, self.optimizer, self.train_variables
        replicas = strategy.num_replicas_in_sync
        row_loss = LOSSES[self.loss_kind]
        l2 = [_l2_factor(v) for v in variables]
        others = [v for v, f in zip(variables, l2) if f is None and v.regularizer is not None]
        with strategy.scope():
            # Sync-on-read: each replica adds its share locally; reading sums them.
            loss_total = keras.metrics.Sum(name="train_loss_total")

        def update(features, label, global_rows):
            with tf.GradientTape() as tape, self._single_domain(one_domain):
                logit = model(self._model_inputs(features), training=True)["logit"]
                per_row = row_loss(label, logit)
                loss = tf.nn.compute_average_loss(per_row, global_batch_size=global_rows)
                total = loss + tf.add_n([v.regularizer(v) for v in others]) / replicas if others else loss
            gradients = tape.gradient(total, variables)
            gradients = [
                g if f is None else tf.convert_to_tensor(g) + (2.0 * f / replicas) * v.value
                for g, v, f in zip(gradients, variables, l2)
            ]
            optimizer.apply(gradients, variables)
            loss_total.update_state(loss)

        return update, loss_total

    def _make_distributed_stream_pass(self, one_domain: bool = True):
        """The streamed training pass under `self.strategy`: `pass(dataset, steps)`
        runs `steps` global steps over the distributed dataset of
        `_distributed_stream_batches`, each replica its batch (`_make_replica_update`),
        inside one `tf.function`; returns `(loss sum, steps)`."""
        strategy = self.strategy
        update, loss_total = self._make_replica_update(one_domain)

        def replica_step(*batch):
            *features, label, global_rows = batch
            update(features, label, global_rows)

        @tf.function
        def run(iterator, steps):
            loss_total.reset_state()
            for _ in tf.range(steps):
                strategy.run(replica_step, args=next(iterator))
            return loss_total.result(), steps

        def stream_pass(dataset, steps):
            return run(iter(dataset), tf.constant(steps, tf.int32))

        return stream_pass

    def _slot_iterator(self):
        """The distributed iterator of replica slots (`_replica_slots`), made on first
        use: one per trainer, for all its phases."""
        if self._replica_slots is None:
            per_replica = per_replica_batch_size(self.config.batch_size, self.strategy)
            _, mode = input_pipelines(self.strategy)
            options = tf.distribute.InputOptions(experimental_fetch_to_device=False, experimental_replication_mode=mode)
            slots = self.strategy.distribute_datasets_from_function(
                functools.partial(_replica_slots, per_replica), options
            )
            self._replica_slots = iter(slots)
        return self._replica_slots

    def _decorrelate_dropout(self):
        """Give every replica its own dropout masks.

        Each replica holds its own copy of every `SeedGenerator` state; equal copies would
        draw equal masks on every replica's share of a batch. Replica r adds
        `r * 1_000_003` to the seed half of its copies, so replica 0 draws what one
        device draws. The states are not part of `weight_variables` (never restored).
        """
        replicas = self.strategy.num_replicas_in_sync
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        if replicas == 1 or not states:
            return

        def offset():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            for state in states:
                shift = tf.stack([tf.cast(replica, state.dtype) * 1_000_003, tf.zeros([], state.dtype)])
                state.assign(state.value + shift)

        tf.function(lambda: self.strategy.run(offset))()

    def _make_predict(self):
        model = self.model

        @tf.function(input_signature=self._specs(label=False))
        def predict(*features):
            # `predict_split` scores one domain's rows at a time.
            with self._single_domain():
                return model(self._model_inputs(features), training=False)["probability"]

        return predict

    # ------------------------------------------------------------ evaluation
    def predict_split(self, split: str):
        """Per-domain `(labels, probabilities)` lists for `split`."""
        if not hasattr(self, "_predict"):
            self._predict = self._make_predict()
        if self.streamed:
            return self._predict_streamed(split)
        labels, probs = [], []
        chunk = self.config.eval_batch_size
        for d in range(self.dataset.n_domains):
            *features, label = self._domain_tensors(split, d)
            n = int(label.shape[0])
            out = [self._predict(*(f[i : i + chunk] for f in features)).numpy() for i in range(0, n, chunk)]
            probs.append(np.concatenate(out) if out else np.zeros((0,), np.float32))
            labels.append(label.numpy())
        return labels, probs

    def _predict_streamed(self, split: str):
        """`predict_split` of a streamed dataset: each domain's rows read in their order
        in `eval_batch_size` chunks (the in-memory chunks)."""
        labels, probs = [], []
        for d in range(self.dataset.n_domains):
            label_parts, prob_parts = [], []
            if self.dataset.num_rows(split, d):
                rows = self.dataset.shards.batches(split, self.config.eval_batch_size, domains=[d])
                for *features, label in rows.map(self._row_tuple):
                    prob_parts.append(self._predict(*features).numpy())
                    label_parts.append(label.numpy())
            probs.append(np.concatenate(prob_parts) if prob_parts else np.zeros((0,), np.float32))
            labels.append(np.concatenate(label_parts) if label_parts else np.zeros((0,), np.float32))
        return labels, probs

    def evaluate(self, split: str) -> dict:
        labels, probs = self.predict_split(split)
        return domain_metrics(labels, probs, self.dataset.domain_names)

    def _stop_metric(self, metrics: dict) -> float:
        key = "domain_auc500" if self.config.early_stop_metric == "auc500" else "domain_auc"
        values = [np.nan if v is None else v for v in metrics[key].values()]
        return plain_mean(values)

    # -------------------------------------------------------------- training
    def _train_epoch(self, phase: Phase):
        if self.streamed:
            return self._train_stream_epoch(phase)
        domains = list(phase.domains) if phase.domains is not None else list(range(self.dataset.n_domains))
        if self.config.mixed_batches:
            passes = [(("mixed", tuple(domains)), self._mixed_tensors(domains))]
        else:
            order = self.rng.permutation(domains)
            passes = [(int(d), self._domain_tensors("train", int(d))) for d in order]
        loss_sum, steps, examples = 0.0, 0, 0
        for key, tensors in passes:
            label = tensors[-1]
            n = int(label.shape[0])
            if n == 0:
                continue
            if self.shuffle == "buffer":
                s, k = self._train_pass(self._buffer_order(key, n), *tensors)
            else:
                s, k = self._train_pass(*tensors)
            loss_sum += float(s)
            steps += int(k)
            examples += int(label.shape[0])
        return loss_sum / max(steps, 1), examples

    def _train_stream_epoch(self, phase: Phase):
        """`_train_epoch` of a streamed dataset: the same passes (the same domain
        order from `self.rng`), each streamed from the shard files."""
        domains = list(phase.domains) if phase.domains is not None else list(range(self.dataset.n_domains))
        if self.config.mixed_batches:
            passes = [(("mixed", tuple(domains)), tuple(domains))]
        else:
            order = self.rng.permutation(domains)
            passes = [(int(d), (int(d),)) for d in order]
        loss_sum, steps, examples = 0.0, 0, 0
        for key, pass_domains in passes:
            n = sum(self.dataset.num_rows("train", d) for d in pass_domains)
            if n == 0:
                continue
            s, k = self._train_pass(*self._stream_batches(key, pass_domains))
            loss_sum += float(s)
            steps += int(k)
            examples += n
        return loss_sum / max(steps, 1), examples

    def _mixed_tensors(self, domains):
        key = ("train-mixed", tuple(domains))
        if key not in self._tensors:
            parts = [self._domain_tensors("train", d) for d in domains]
            self._tensors[key] = tuple(tf.concat([p[i] for p in parts], 0) for i in range(len(self.features) + 1))
        return self._tensors[key]

    @property
    def weight_variables(self) -> list:
        """The model's weights and statistics (`mlora_tf.training.loop.model_weights`)."""
        return model_weights(self.model)

    def _snapshot(self):
        return [v.numpy() for v in self.weight_variables]

    def _restore(self, snapshot):
        for v, value in zip(self.weight_variables, snapshot):
            v.assign(value)

    def _restore_best(self, snapshot):
        """Back to the best weights during training. With `restore_ema_state=False`
        (the original loop) the hidden zero-debias state of moving averages (STAR's
        partitioned-norm `moving_*_biased` and `num_updates`) keeps its current value,
        as TF 1.12 did: those were not Keras weights, so its checkpoint did not hold
        them (original-model-zoo.md §8 item 9)."""
        keep = self.config.restore_ema_state is False
        for v, value in zip(self.weight_variables, snapshot):
            if keep and v.name.split("/")[-1] in EMA_STATE_NAMES:
                continue
            v.assign(value)

    # ------------------------------------------- the loop's step strategy (a phase)
    def train_epoch(self) -> tuple[float, int]:
        """One epoch of the current phase (`EarlyStoppingLoop`'s step)."""
        loss, examples = self._train_epoch(self._phase)
        self._phase_examples += examples
        return loss, examples

    def validate(self) -> tuple[dict, float]:
        val = self.evaluate("val")
        return val, self._stop_metric(val)

    def snapshot(self) -> list:
        return self._snapshot()

    def restore_best(self, weights: list) -> None:
        self._restore_best(weights)

    @staticmethod
    def epoch_fields(val, metric, examples) -> dict:
        """The history keys of an epoch besides the loop's own."""
        return {"val_wauc": val["wauc"], "val_domain_auc": val["domain_auc"]}

    def run_phase(self, phase: Phase, on_epoch_end=None, resume=None) -> PhaseResult:
        """Train one phase with early stopping; leaves the best weights in the model.

        Args:
            phase: the phase.
            on_epoch_end: called as `on_epoch_end(loop_state, best_weights)` after every
                epoch (`fit` checkpoints there).
            resume: `(state, arrays)` of a checkpoint taken inside this phase: the phase
                continues after its last finished epoch.
        """
        cfg = self.config
        self._enter_phase(phase)
        self._phase, self._phase_examples = phase, 0
        start = time.time()
        state, best_weights, best_val = LoopState(), None, None
        if resume is not None:
            state, best_weights, seconds = self._resume_phase(*resume)
            start -= seconds
        elif phase.carry_best and self._carried is not None:
            state.best, best_weights = self._carried
            logging.info("[%s] carrying over the best validation metric %.5f", phase.name, state.best)
        elif phase.baseline_first:
            # The full validation metrics of `best_weights` are known: scored on exactly
            # those weights (evaluation is deterministic), so the end needs no rescoring.
            best_val, state.best = self.validate()
            best_weights = self._snapshot()
            logging.info("[%s] baseline validation mean AUC %.5f", phase.name, state.best)
        self._phase_start = start
        loop = EarlyStoppingLoop(
            cfg.max_epochs, cfg.patience, name=phase.name, metric_name=f"mean {cfg.early_stop_metric}",
            restore_best_each_epoch=cfg.restore_best_each_epoch, restore_at_end=True,
            writer=self.writer, first_summary_step=self._epoch_counter + 1,
        )
        state, best_weights, best_val = loop.run(
            self, state, best_weights, best_val, on_epoch_end=on_epoch_end
        )
        self._epoch_counter += state.epoch
        if self._frozen_slots:
            # Slots other than the phase's own end exactly as they began.
            for variable, before, mask in self._frozen_slots:
                kept = np.where(mask, variable.numpy(), before)
                if not np.array_equal(kept, variable.numpy()):
                    best_val = None  # the weights differ from those scored
                variable.assign(kept)
        self._carried = (state.best, self._snapshot())
        val = best_val if best_val is not None else self.evaluate("val")
        test = self.evaluate("test")
        self.final_metrics = {"val": val, "test": test}
        return PhaseResult(
            phase.name, state.epoch, state.best_epoch, float(state.best), state.history, time.time() - start,
            self._phase_examples, val=_summary(val), test=_summary(test),
        )

    def fit(
        self, phases: list[Phase], checkpoint_dir: str | None = None, write_checkpoints: bool = True
    ) -> list[PhaseResult]:
        """Run `phases` in order.

        With `checkpoint_dir`, the run's progress is saved (`mlora_tf.training.loop.
        Checkpoint`, atomically) after every epoch and every phase, and a run started
        again with the same phases continues after the last epoch it finished: with the
        default `shuffle="buffer"`, to the same weights as a run never stopped (under a
        strategy, with dropout 0: the replicas' dropout seeds are not saved; with
        `shuffle="permutation"` the resumed epochs draw other orders).

        `write_checkpoints=False` (a multi-worker cluster's other workers) resumes
        from `checkpoint_dir` but never writes it. On a cluster every worker then
        checks, with one collective, that all resume from the same point.

        Raises:
            ValueError: the workers of a cluster found different checkpoints.
        """
        names = [p.name for p in phases]
        store = Checkpoint(checkpoint_dir) if checkpoint_dir else None
        results, resume = self._restore_checkpoint(store, names) if store is not None else ([], None)
        if store is not None and is_multi_worker(self.strategy):
            self._check_workers_agree(store, len(results), resume)
        if not write_checkpoints:
            store = None
        for phase in phases[len(results):]:
            save_epoch = None
            if store is not None:
                def save_epoch(state, best_weights):
                    store.save(*self._checkpoint_state(names, results, (state, best_weights)))
            results.append(self.run_phase(phase, on_epoch_end=save_epoch, resume=resume))
            resume = None
            if store is not None:
                store.save(*self._checkpoint_state(names, results))
        return results

    # ------------------------------------------------------------ checkpoint
    def _check_workers_agree(self, store: Checkpoint, finished: int, resume) -> None:
        """Every worker of the cluster resumes from the same point (finished phases,
        epoch of the unfinished one), or all fail naming the checkpoint folder."""
        epoch = 0 if resume is None else int(resume[0]["loop"]["epoch"]) + 1
        point = float(finished * 100_000 + epoch)
        strategy = self.strategy

        @tf.function
        def every_point():
            per_replica = strategy.run(lambda: tf.constant([point], tf.float32))
            return strategy.gather(per_replica, axis=0)

        points = every_point().numpy()
        if points.min() != points.max():
            raise ValueError(
                f"The workers resume from different points (this one: {finished} phases and {epoch} epochs done): "
                f"they read different checkpoints in {store.folder}. The chief writes it; every worker must see the "
                "same output_dir (a shared filesystem), or delete the folder to start afresh."
            )

    def _seed_states(self) -> list:
        """The dropout layers' random-seed states, checkpointed on one device (under a
        strategy each replica holds its own, decorrelated, copy: not saved)."""
        if self.strategy is not None:
            return []
        return [v for v in self.model.variables if v.name == "seed_generator_state"]

    def _checkpoint_state(self, names: list, results: list, current=None) -> tuple[dict, dict]:
        """What `fit` checkpoints: the schedule's phase names, the finished phases'
        results, the carried best metric, the random generators' states and the shuffle
        buffers' orders; with `current = (loop_state, best_weights)`, the unfinished
        phase's progress, its best weights, its optimizer and the values its frozen
        slots must end with."""
        arrays = {
            "model": self._snapshot(),
            "seed_states": [v.numpy() for v in self._seed_states()],
            "buffer_orders": [order.numpy() for order in self._buffer_orders.values()],
        }
        if self._carried is not None:
            arrays["carried"] = self._carried[1]
        if self._shared_optimizer is not None:
            arrays["optimizer"] = [v.numpy() for v in self._shared_optimizer.variables]
        state = {
            "phase_names": names,
            "finished": [r.to_dict() for r in results],
            "carried_metric": None if self._carried is None else self._carried[0],
            "rng": self.rng.bit_generator.state,
            "summary_step": self._epoch_counter,
            "buffer_keys": [list(k) if isinstance(k, tuple) else k for k in self._buffer_orders],
        }
        if self.streamed:
            state["stream_seeds"] = [[list(k) if isinstance(k, tuple) else k, s] for k, s in self._stream_seeds.items()]
        if current is not None:
            loop_state, best_weights = current
            state["current"] = {
                "loop": loop_state.to_dict(),
                "examples": self._phase_examples,
                "seconds": time.time() - self._phase_start,
            }
            arrays["best"] = list(best_weights or [])
            if self._shared_optimizer is None:
                arrays["phase_optimizer"] = [v.numpy() for v in self.optimizer.variables]
            arrays["frozen_before"] = [before for _, before, _ in self._frozen_slots or []]
        return state, arrays

    def _restore_checkpoint(self, store: Checkpoint, names: list):
        """Load a previous run's progress; returns its finished phases and, when it
        stopped inside a phase, that phase's `(state, arrays)` for `run_phase`."""
        if not store.exists():
            return [], None
        state, arrays = store.load()
        if state.get("phase_names") != names:
            raise ValueError(
                f"{store.state_path} belongs to a run with other phases ({state.get('phase_names')}); "
                "use another --output_dir or delete it."
            )
        self._restore(arrays["model"])
        if state["carried_metric"] is not None:
            self._carried = (state["carried_metric"], arrays["carried"])
        if self.config.share_optimizer and "optimizer" in arrays:
            self._ensure_shared_optimizer()
            for v, value in zip(self._shared_optimizer.variables, arrays["optimizer"]):
                v.assign(value)
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
            self._epoch_counter = state["summary_step"]
            seeds = self._seed_states()
            if len(seeds) == len(arrays["seed_states"]):
                for v, value in zip(seeds, arrays["seed_states"]):
                    v.assign(value)
            self._buffer_orders = {
                (tuple(k[:1]) + (tuple(k[1]),) if isinstance(k, list) else k): tf.constant(order, tf.int32)
                for k, order in zip(state["buffer_keys"], arrays["buffer_orders"])
            }
            self._stream_seeds = {
                (tuple(k[:1]) + (tuple(k[1]),) if isinstance(k, list) else k): int(s)
                for k, s in state.get("stream_seeds", [])
            }
        finished = [PhaseResult(**r) for r in state["finished"]]
        current = state.get("current")
        if current is not None:
            logging.info("Resuming phase %r after epoch %d (%d of %d phases done).", names[len(finished)],
                         current["loop"]["epoch"], len(finished), len(names))
            return finished, (current, arrays)
        logging.info("Resuming after phase %r (%d of %d done).", finished[-1].name if finished else None,
                     len(finished), len(names))
        return finished, None

    def _resume_phase(self, current: dict, arrays: dict):
        """The unfinished phase's progress, after `_enter_phase`: its optimizer's state
        and its frozen slots' starting values come back; returns `(loop state, best
        weights, seconds spent)`."""
        if self._shared_optimizer is None:
            for v, value in zip(self.optimizer.variables, arrays["phase_optimizer"]):
                v.assign(value)
        if self._frozen_slots:
            self._frozen_slots = [
                (variable, before, mask)
                for (variable, _, mask), before in zip(self._frozen_slots, arrays["frozen_before"])
            ]
        self._phase_examples = current["examples"]
        return LoopState.from_dict(current["loop"]), (arrays["best"] or None), current["seconds"]
