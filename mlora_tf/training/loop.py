"""The one training loop: epochs, early stopping, best weights, TensorBoard, progress.

Every kind of run trains through `EarlyStoppingLoop.run`: an MLoRA or Base phase, each
phase of MoE-MLoRA's schedule, and the multi-task loop of M3oE and its baselines. What
differs between them is the *step strategy*, an object with four methods:

- `train_epoch() -> (mean training loss, examples)`: one epoch of training (the
  single-task trainer's domain-homogeneous passes in a random domain order, or the
  multi-task trainer's mixed pass plus the fusion scalars' step);
- `validate() -> (metrics dict, selection metric)`: score the validation split;
- `snapshot() -> weights` and `restore_best(weights)`: the best-weights copy;
- optionally `epoch_fields(val, metric, examples) -> dict`: its own keys of an epoch's
  history entry.

The loop (m3oe.md §3.4, original-model-zoo.md §5.3):

1. train an epoch, validate, and compare the selection metric with the best so far:
   strictly better saves a snapshot and resets the patience counter;
2. after a non-improving epoch, with `restore_best_each_epoch`, the best weights come
   back (the optimizer keeps its state, as the original's checkpoint reload did);
3. `patience` non-improving epochs stop the loop and restore the best weights;
4. at the end, with `restore_at_end`, the best weights are restored even without an
   early stop (the M3oE code tests the last weights instead: `restore_at_end=False`).

The loop's progress is a `LoopState`, which a caller checkpoints (`Checkpoint`) after
any epoch and passes back to `run` to resume.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from typing import Callable, Protocol

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from mlora_tf.io import atomic_write_bytes, atomic_write_json


class StepStrategy(Protocol):
    """What one kind of training plugs into `EarlyStoppingLoop` (see the module docstring)."""

    def train_epoch(self) -> tuple[float, int]: ...

    def validate(self) -> tuple[dict, float]: ...

    def snapshot(self) -> list: ...

    def restore_best(self, weights: list) -> None: ...


@dataclasses.dataclass
class LoopState:
    """The progress of one `EarlyStoppingLoop.run`.

    Attributes:
        epoch: epochs finished.
        best: the best selection metric so far (None before any).
        best_epoch: the epoch that reached it (0: the starting weights).
        counter: epochs since the last improvement.
        stopped_early: whether patience ran out.
        history: one record per epoch (`EarlyStoppingLoop.record`).
    """

    epoch: int = 0
    best: float | None = None
    best_epoch: int = 0
    counter: int = 0
    stopped_early: bool = False
    history: list = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "LoopState":
        return cls(**values)


def model_weights(model) -> list:
    """A model's weights and statistics: every variable but the dropout layers'
    random-seed states (restoring the best weights must not replay dropout masks)."""
    return [v for v in model.variables if v.name != "seed_generator_state"]


class EarlyStoppingLoop:
    """Epochs with early stopping on a validation metric (see the module docstring).

    Args:
        max_epochs: the most epochs to train.
        patience: non-improving epochs before stopping.
        name: the label of the log lines and TensorBoard tags (a phase's name).
        metric_name: what the selection metric is, for the log lines.
        restore_best_each_epoch: restore the best weights after a non-improving epoch.
        restore_at_end: restore the best weights at the end without an early stop.
        writer: an optional `tf.summary` file writer for per-epoch scalars.
        first_summary_step: the TensorBoard step of this loop's first epoch.
    """

    def __init__(
        self,
        max_epochs: int,
        patience: int,
        name: str = "train",
        metric_name: str = "auc",
        restore_best_each_epoch: bool = False,
        restore_at_end: bool = True,
        writer=None,
        first_summary_step: int = 1,
    ):
        self.max_epochs = max_epochs
        self.patience = patience
        self.name = name
        self.metric_name = metric_name
        self.restore_best_each_epoch = restore_best_each_epoch
        self.restore_at_end = restore_at_end
        self.writer = writer
        self.first_summary_step = first_summary_step

    def run(
        self,
        step: StepStrategy,
        state: LoopState | None = None,
        best_weights: list | None = None,
        best_val: dict | None = None,
        on_epoch_end: Callable | None = None,
    ):
        """Train until `max_epochs` or early stopping.

        Args:
            step: the step strategy.
            state: a previous run's progress (resume), or a starting best (a carried or
                baseline metric with `best_weights`); None: a fresh start.
            best_weights: the snapshot of `state.best`.
            best_val: the validation metrics of `best_weights`, when known.
            on_epoch_end: called as `on_epoch_end(state, best_weights)` after every
                epoch's bookkeeping (e.g. to checkpoint).

        Returns:
            `(state, best_weights, best_val)`: the final progress, the best snapshot and
            the validation metrics of the weights left in the model when they are those
            of `best_weights` (else None).
        """
        state = state if state is not None else LoopState()
        while state.epoch < self.max_epochs and not state.stopped_early:
            epoch = state.epoch + 1
            t0 = time.time()
            loss, examples = step.train_epoch()
            seconds = time.time() - t0
            val, metric = step.validate()
            improved = state.best is None or metric > state.best
            if improved:
                state.best, state.best_epoch, state.counter = metric, epoch, 0
                best_weights, best_val = step.snapshot(), val
            else:
                state.counter += 1
            state.history.append(self.record(step, epoch, loss, examples, seconds, val, metric))
            state.epoch = epoch
            logging.info(
                "[%s] epoch %d  loss %.5f  val %s %.5f  (best %.5f @ %d, patience %d/%d)  %.1fs  %.0f ex/s",
                self.name, epoch, loss, self.metric_name, metric, state.best, state.best_epoch, state.counter,
                self.patience, seconds, examples / max(seconds, 1e-9),
            )
            self._write_summaries(epoch, loss, val, metric)
            if state.counter >= self.patience:
                logging.info("[%s] early stop after epoch %d; restoring epoch %d", self.name, epoch, state.best_epoch)
                state.stopped_early = True
                step.restore_best(best_weights)
            elif not improved and self.restore_best_each_epoch:
                # The original reloads the best checkpoint after every non-improving
                # epoch and keeps Adam's state (original-model-zoo.md §5.3, §8 item 9).
                step.restore_best(best_weights)
            if on_epoch_end is not None:
                on_epoch_end(state, best_weights)
        if best_weights is None:
            best_val = None
        elif self.restore_at_end and not state.stopped_early:
            step.restore_best(best_weights)
        elif not state.stopped_early:
            best_val = None  # the last weights stay, not the best
        return state, best_weights, best_val

    @staticmethod
    def record(step, epoch, loss, examples, seconds, val, metric) -> dict:
        """The history entry of an epoch: its loss, selection metric, time and speed,
        then the step's own fields (`step.epoch_fields(val, metric, examples)`, if it
        has that method)."""
        entry = {
            "epoch": epoch,
            "train_loss": loss,
            "val_metric": metric,
            "train_seconds": seconds,
            "examples_per_second": examples / max(seconds, 1e-9),
        }
        fields = getattr(step, "epoch_fields", None)
        if fields is not None:
            entry.update(fields(val, metric, examples))
        return entry

    def _write_summaries(self, epoch: int, loss: float, val: dict, metric: float) -> None:
        if self.writer is None:
            return
        scalars = {"train_loss": loss, "val_mean_auc": metric}
        if "wauc" in val:
            scalars["val_wauc"] = val["wauc"]
        scalars.update({f"val_auc/{n}": a for n, a in val.get("domain_auc", {}).items() if a is not None})
        # Raw Summary protos: TensorBoard reads them, and TF writes them without the
        # `tensorboard` package (which tf.summary.scalar needs).
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=f"{self.name}/{k}", simple_value=float(v)) for k, v in scalars.items()]
        )
        with self.writer.as_default():
            tf.summary.experimental.write_raw_pb(
                summary.SerializeToString(), step=self.first_summary_step + epoch - 1
            )
        self.writer.flush()


class Checkpoint:
    """A training run's progress on disk, for resuming a killed run: the one format of
    every trainer.

    Files in `folder`: `state.json` (JSON state: what was finished, counters, random
    generator states) and a weights file `weights-<n>.npz` (named groups of arrays:
    `model`, `best`, optimizers, ...; group `g`'s i-th array is stored as `g_i`) that
    the state names. Each save writes a new weights file, then the state that names it
    (both atomically), then deletes older weights files: a run killed at any moment
    leaves a state with its own weights. (A checkpoint of an earlier version, with
    `weights.npz` and no name in its state, still loads.)
    """

    STATE_FILE = "state.json"
    WEIGHTS_FILE = "weights.npz"  # the earlier versions' single weights file

    def __init__(self, folder: str):
        self.folder = folder
        self.state_path = os.path.join(folder, self.STATE_FILE)

    def _weights_name(self) -> str | None:
        """The weights file the state names (the old single file for an old state),
        or None without a state."""
        try:
            with open(self.state_path) as f:
                return json.load(f).get("weights_file", self.WEIGHTS_FILE)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, AttributeError) as error:
            raise ValueError(
                f"The checkpoint in {self.folder} is damaged ({error}); delete the folder to start afresh."
            ) from error

    def exists(self) -> bool:
        name = self._weights_name()
        return name is not None and os.path.exists(os.path.join(self.folder, name))

    def save(self, state: dict, arrays: dict) -> None:
        """Writes `state` (JSON-able) and `arrays` (group name -> list of arrays)."""
        flat = {f"{group}_{i}": value for group, values in arrays.items() for i, value in enumerate(values)}
        buffer = io.BytesIO()
        np.savez(buffer, **flat)
        previous = self._weights_name()
        generation = 0
        if previous is not None and previous.startswith("weights-"):
            generation = int(previous[len("weights-"):-len(".npz")]) + 1
        name = f"weights-{generation}.npz"
        atomic_write_bytes(os.path.join(self.folder, name), buffer.getvalue())
        atomic_write_json(
            self.state_path, {**state, "weights_file": name, "array_groups": {g: len(v) for g, v in arrays.items()}}
        )
        for old in os.listdir(self.folder):
            if old != name and (old == self.WEIGHTS_FILE or (old.startswith("weights-") and old.endswith(".npz"))):
                os.remove(os.path.join(self.folder, old))

    def load(self) -> tuple[dict, dict]:
        """`(state, arrays)` as saved; raises ValueError naming a damaged file."""
        try:
            with open(self.state_path) as f:
                state = json.load(f)
            groups = state.pop("array_groups")
            name = state.pop("weights_file", self.WEIGHTS_FILE)
            with np.load(os.path.join(self.folder, name)) as data:
                arrays = {g: [data[f"{g}_{i}"] for i in range(n)] for g, n in groups.items()}
        except (KeyError, ValueError, OSError) as error:
            raise ValueError(
                f"The checkpoint in {self.folder} is damaged ({error}); delete the folder to start afresh."
            ) from error
        return state, arrays
