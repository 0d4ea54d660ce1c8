"""The multi-domain multi-task trainer: M3oE's loop (m3oe.md §3) for every MDMT model.

Per epoch:

1. **Train** one pass over the training split in a fresh seeded shuffle, batches mixing
   every domain. The loss of a batch is the **sum over the (domain, task) pairs of the
   mean BCE over that batch's rows of the domain** (m3oe.md §3.2); with one domain or one
   task it is the plain mean over the `(batch, tasks)` entries, as the code. A domain
   absent from a batch adds nothing (the code would add NaN; at its batch size it never
   happens). Every gradient gets torch's coupled weight decay, `weight_decay * w`.
2. **Fusion step** (models with learned fusion scalars, i.e. M3oE): one step of the
   scalars' own Adam, per `MultiTaskTrainConfig.fusion_schedule`: `paper` on the
   next batch of a second shuffled pass over the training data ("a mini-batch of
   training data", m3oe.md §3.3) with the per-pair loss, the main optimizer never
   touching the scalars; `as_coded` on the next batch of a second shuffled pass over the training
   data with the mean BCE, the main optimizer training the scalars too (m3oe.md §3.3).
3. **Validate**: per-pair AUC on the whole validation split; the selection metric is
   their plain mean (the paper's overall AUC).
4. **Early stopping**: a strictly better mean saves the weights; `patience` epochs
   without one restore them and stop.

The test split is scored with the best weights (`restore_best`, default) or, as the
code, with the last weights unless early stopping fired.

Speed: the training split lives in memory as tensors; a pass is one `tf.function`
looping over batches in the graph (rows gathered by a shuffled order drawn in numpy,
so a resumed run draws the same orders).

The epochs, early stopping, best weights, checkpoints and TensorBoard scalars are the
one loop's (`mlora_tf.training.loop`); this trainer is its step strategy.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from mlora_tf.config import MultiTaskTrainConfig
from mlora_tf.training.metrics import multitask_metrics
from mlora_tf.models import m3oe as m3oe_lib
from mlora_tf.models.mdmt_parts import input_names
from mlora_tf.training.loop import Checkpoint, EarlyStoppingLoop, LoopState, model_weights
from mlora_tf.training.optimizers import FusedAdam

_ORDER_SPEC = tf.TensorSpec([None], tf.int32)


def pair_mean_loss(labels, logits, domain, n_domains: int):
    """Sum over (domain, task) pairs of the mean BCE over the rows of the domain.

    Args:
        labels: `(batch_size, n_tasks)` 0/1 floats.
        logits: `(batch_size, n_tasks)`.
        domain: `(batch_size,)` integer ids in `[0, n_domains)`.

    Returns:
        A scalar. A domain without rows in the batch contributes 0.
    """
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    one_hot = tf.one_hot(tf.cast(domain, tf.int32), n_domains, dtype=bce.dtype)
    sums = tf.matmul(one_hot, bce, transpose_a=True)  # (n_domains, n_tasks)
    counts = tf.reduce_sum(one_hot, axis=0)[:, None]
    return tf.reduce_sum(tf.math.divide_no_nan(sums, counts))


def mean_loss(labels, logits):
    """Mean BCE over all `(batch_size, n_tasks)` entries."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class _Batches:
    """An endless sequence of shuffled batches over `n` rows (a new shuffle when used up)."""

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.order, self.position = None, 0

    def next(self) -> np.ndarray:
        if self.order is None or self.position >= self.n:
            self.order, self.position = self.rng.permutation(self.n).astype(np.int32), 0
        rows = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return rows

    def state(self) -> tuple[int, np.ndarray | None]:
        return self.position, self.order

    def set_state(self, position: int, order: np.ndarray | None) -> None:
        self.position, self.order = int(position), None if order is None else np.asarray(order, np.int32)


class MultiTaskTrainer:
    """Trains an MDMT model (`mlora_tf.models.build_multitask_model`) on a multi-task
    `MultiDomainDataset`.

    Args:
        model: outputs `"<task>_logit"` for every label of `dataset`; inputs named as
            dataset columns (sparse int64, dense float32).
        dataset: a `MultiDomainDataset` whose `labels` are the tasks.
        config: `MultiTaskTrainConfig`.

    Raises:
        ValueError: the model lacks an output for a task, or the data a model input.
    """

    def __init__(self, model: keras.Model, dataset, config: MultiTaskTrainConfig):
        self.model, self.dataset, self.config = model, dataset, config
        self.tasks = tuple(dataset.labels)
        missing = [t for t in self.tasks if f"{t}_logit" not in model.output]
        if missing:
            raise ValueError(
                f"The model has no output for task(s) {missing}. Received outputs: {sorted(model.output)}"
            )
        self.inputs = input_names(model)
        columns = set(dataset.column_names)
        missing = [f for f in self.inputs if f not in columns]
        if missing:
            raise ValueError(f"Dataset '{dataset.name}' lacks model input(s) {missing}. Received: {sorted(columns)}")
        self.n_domains = dataset.n_domains
        self.pair_loss = self.n_domains > 1 and len(self.tasks) > 1
        groups = m3oe_lib.variable_groups(model)
        self.fusion_variables = groups["fusion"]
        if config.fusion_schedule == "as_coded":
            self.main_variables = groups["main"] + groups["fusion"]
        else:
            self.main_variables = groups["main"]
        self.rng = np.random.default_rng(config.seed)
        self._tensors: dict = {}
        self.optimizer = FusedAdam(learning_rate=config.learning_rate, epsilon=config.adam_epsilon)
        self.optimizer.build(self.main_variables)
        self.fusion_optimizer = None
        if self.fusion_variables:
            self.fusion_optimizer = FusedAdam(learning_rate=config.fusion_learning_rate, epsilon=config.adam_epsilon)
            self.fusion_optimizer.build(self.fusion_variables)
            # Both schedules step the scalars on a training batch: the paper's
            # "a mini-batch of training data" after each epoch (m3oe.md §3.3).
            split = "train"
            self._fusion_split = split
            self._fusion_batches = _Batches(dataset.num_rows(split), config.batch_size, self.rng)
        self._train_pass = self._make_train_pass()
        self._fusion_step = self._make_fusion_step() if self.fusion_variables else None
        self._predict = self._make_predict()
        self.history: list[dict] = []

    # ----------------------------------------------------------------- data
    def _split_tensors(self, split: str):
        """`(inputs tuple, labels (n, n_tasks), domain)` of a split, as tensors."""
        if split not in self._tensors:
            columns = self.dataset.splits[split]
            dense = set(self.dataset.dense_features)
            inputs = tuple(
                tf.constant(np.asarray(columns[f], np.float32 if f in dense else np.int64)) for f in self.inputs
            )
            labels = tf.constant(np.stack([np.asarray(columns[t], np.float32) for t in self.tasks], axis=1))
            self._tensors[split] = (inputs, labels, tf.constant(np.asarray(columns["domain"], np.int64)))
        return self._tensors[split]

    def _specs(self):
        dense = set(self.dataset.dense_features)
        return [tf.TensorSpec([None], tf.float32 if f in dense else tf.int64) for f in self.inputs]

    # --------------------------------------------------------------- graphs
    def _logits(self, inputs, training: bool):
        out = self.model(dict(zip(self.inputs, inputs)), training=training)
        return tf.stack([out[f"{t}_logit"] for t in self.tasks], axis=-1)

    def _loss(self, labels, logits, domain, pair: bool):
        return pair_mean_loss(labels, logits, domain, self.n_domains) if pair else mean_loss(labels, logits)

    def _apply(self, optimizer, loss, tape, variables):
        """One optimizer step with torch's coupled weight decay on every variable that
        has a gradient (torch skips parameters without one)."""
        gradients = tape.gradient(loss, variables)
        decay = self.config.weight_decay
        pairs = [
            (tf.convert_to_tensor(g) + decay * v.value if decay else g, v)
            for g, v in zip(gradients, variables)
            if g is not None
        ]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

    def _make_train_pass(self):
        batch_size, variables, pair = self.config.batch_size, self.main_variables, self.pair_loss
        domain_index = self.inputs.index("domain")
        specs = self._specs()
        n_inputs = len(specs)

        @tf.function(input_signature=specs + [tf.TensorSpec([None, len(self.tasks)], tf.float32), _ORDER_SPEC])
        def train_pass(*args):
            inputs, labels, order = args[:n_inputs], args[n_inputs], args[n_inputs + 1]
            n = tf.shape(order)[0]
            steps = (n + batch_size - 1) // batch_size
            loss_sum = tf.constant(0.0)
            for i in tf.range(steps):
                rows = order[i * batch_size : tf.minimum((i + 1) * batch_size, n)]
                batch = [tf.gather(x, rows) for x in inputs]
                batch_labels = tf.gather(labels, rows)
                with tf.GradientTape() as tape:
                    logits = self._logits(batch, training=True)
                    loss = self._loss(batch_labels, logits, batch[domain_index], pair)
                self._apply(self.optimizer, loss, tape, variables)
                loss_sum += loss
            return loss_sum, steps

        return train_pass

    def _make_fusion_step(self):
        pair = self.pair_loss and self.config.fusion_schedule == "paper"
        domain_index = self.inputs.index("domain")
        specs = self._specs()
        n_inputs = len(specs)

        @tf.function(input_signature=specs + [tf.TensorSpec([None, len(self.tasks)], tf.float32)])
        def fusion_step(*args):
            inputs, labels = args[:n_inputs], args[n_inputs]
            with tf.GradientTape() as tape:
                logits = self._logits(inputs, training=True)
                loss = self._loss(labels, logits, inputs[domain_index], pair)
            self._apply(self.fusion_optimizer, loss, tape, self.fusion_variables)
            return loss

        return fusion_step

    def _make_predict(self):
        @tf.function(input_signature=self._specs())
        def predict(*inputs):
            return tf.sigmoid(self._logits(inputs, training=False))

        return predict

    # ------------------------------------------------------------ evaluation
    def predict_split(self, split: str) -> np.ndarray:
        """`(n_rows, n_tasks)` probabilities for every row of `split`, in its order."""
        inputs, labels, _ = self._split_tensors(split)
        n, chunk = int(labels.shape[0]), self.config.eval_batch_size
        out = [self._predict(*(x[i : i + chunk] for x in inputs)).numpy() for i in range(0, n, chunk)]
        return np.concatenate(out) if out else np.zeros((0, len(self.tasks)), np.float32)

    def evaluate(self, split: str) -> dict:
        """`mlora_tf.training.metrics.multitask_metrics` of `split`."""
        _, labels, domain = self._split_tensors(split)
        return multitask_metrics(
            labels.numpy(),
            self.predict_split(split),
            domain.numpy(),
            tasks=self.tasks,
            domain_names=self.dataset.domain_names,
            n_domains=self.n_domains,
        )

    def _selection_metric(self, metrics: dict) -> float:
        if metrics["overall_auc"] is None:
            raise ValueError(
                f"Dataset '{self.dataset.name}': no (domain, task) pair of the validation split has both "
                "classes, so there is nothing to select on."
            )
        return metrics["overall_auc"]

    # -------------------------------------------------------------- weights
    @property
    def weight_variables(self) -> list:
        return model_weights(self.model)

    def _snapshot(self) -> list:
        return [v.numpy() for v in self.weight_variables]

    def _restore(self, snapshot) -> None:
        for v, value in zip(self.weight_variables, snapshot):
            v.assign(value)

    def fusion_weights(self) -> dict:
        return m3oe_lib.fusion_weights(self.model)

    # -------------------------------------------------------------- training
    def train_epoch(self) -> tuple[float, int]:
        """One training pass and, with learned fusion scalars, their step.

        Returns:
            `(mean training loss over the batches, rows)`.
        """
        inputs, labels, _ = self._split_tensors("train")
        n = int(labels.shape[0])
        if n == 0:
            raise ValueError(f"Dataset '{self.dataset.name}' has no training rows.")
        order = self.rng.permutation(n).astype(np.int32)
        loss_sum, steps = self._train_pass(*inputs, labels, tf.constant(order))
        if self._fusion_step is not None:
            f_inputs, f_labels, _ = self._split_tensors(self._fusion_split)
            rows = tf.constant(self._fusion_batches.next())
            self._fusion_step(*(tf.gather(x, rows) for x in f_inputs), tf.gather(f_labels, rows))
        return float(loss_sum) / max(int(steps), 1), n

    # The loop's step strategy (`mlora_tf.training.loop.StepStrategy`).
    def validate(self) -> tuple[dict, float]:
        val = self.evaluate("val")
        return val, self._selection_metric(val)

    def snapshot(self) -> list:
        return self._snapshot()

    def restore_best(self, weights: list) -> None:
        self._restore(weights)

    def epoch_fields(self, val, metric, rows) -> dict:
        """The history keys of an epoch besides the loop's own."""
        return {
            "val_auc": metric,
            "val_logloss": val["overall_logloss"],
            "train_rows": rows,
            "fusion_weights": self.fusion_weights(),
        }

    def fit(self, checkpoint_dir: str | None = None, tensorboard_dir: str | None = None) -> dict:
        """Train with early stopping; leaves the test weights in the model.

        With `checkpoint_dir`, the weights, both optimizers, the best weights and the
        loop's state are saved after every epoch (`mlora_tf.training.loop.Checkpoint`),
        and a run started again with the same folder continues after the last finished
        epoch. With `tensorboard_dir`, per-epoch scalars go there.

        Returns:
            `{"epochs", "best_epoch", "best_val_auc", "stopped_early", "history",
            "train_examples", "train_seconds"}`.
        """
        cfg = self.config
        store = Checkpoint(checkpoint_dir) if checkpoint_dir else None
        state, best_weights = LoopState(), None
        if store is not None and store.exists():
            state, best_weights = self._load_checkpoint(store)
        writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
        loop = EarlyStoppingLoop(
            cfg.max_epochs, cfg.patience, name="train", metric_name="mean AUC",
            restore_at_end=cfg.restore_best, writer=writer,
        )

        def save(state, best_weights):
            if store is not None:
                store.save(*self._checkpoint_state(state, best_weights))

        state, _, _ = loop.run(self, state, best_weights, on_epoch_end=save)
        self.history = state.history
        return {
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "best_val_auc": state.best,
            "stopped_early": state.stopped_early,
            "history": self.history,
            "train_examples": sum(h["train_rows"] for h in self.history),
            "train_seconds": sum(h["train_seconds"] for h in self.history),
        }

    # ------------------------------------------------------------ checkpoint
    def _optimizers(self) -> list:
        return [("optimizer", self.optimizer)] + (
            [("fusion_optimizer", self.fusion_optimizer)] if self.fusion_optimizer is not None else []
        )

    def _checkpoint_state(self, state: LoopState, best_weights) -> tuple[dict, dict]:
        """The epoch checkpoint: the loop's state, the random generators' states; the
        model weights, best weights and both optimizers' variables."""
        arrays = {"model": self._snapshot(), "best": list(best_weights or [])}
        for key, optimizer in self._optimizers():
            arrays[key] = [v.numpy() for v in optimizer.variables]
        fusion = getattr(self, "_fusion_batches", None)
        position, order = fusion.state() if fusion is not None else (0, None)
        arrays["fusion_order"] = [] if order is None else [order]
        return {
            "loop": state.to_dict(),
            "rng": self.rng.bit_generator.state,
            "fusion_position": position,
            "n_weights": len(self.weight_variables),
        }, arrays

    def _load_checkpoint(self, store: Checkpoint):
        saved, arrays = store.load()
        n = len(self.weight_variables)
        if saved.get("n_weights") != n or "loop" not in saved:
            raise ValueError(
                f"{store.state_path} belongs to another model ({saved.get('n_weights')} weights, this one {n}); "
                "use another --output_dir or delete it."
            )
        self._restore(arrays["model"])
        best = arrays["best"] or None
        for key, optimizer in self._optimizers():
            for v, value in zip(optimizer.variables, arrays[key]):
                v.assign(value)
        if self.fusion_optimizer is not None:
            order = arrays["fusion_order"][0] if arrays["fusion_order"] else None
            self._fusion_batches.set_state(saved["fusion_position"], order)
        state = LoopState.from_dict(saved["loop"])
        self.history = state.history
        self.rng.bit_generator.state = saved["rng"]
        logging.info("Resuming after epoch %d (%s).", state.epoch, store.folder)
        return state, best
