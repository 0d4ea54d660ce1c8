"""Training streamed from a shard folder equals training on the same rows in memory.

The trainer streams a `StreamedDataset` (`mlora_tf.data.streamed`) through `tf.data`
with the shuffle buffer seeded as the in-memory `shuffle="buffer"` pass is, and runs the
same step: the weights, losses, validation history and test metrics must be identical.
"""

import json

import keras
import numpy as np
import pytest

from core.helpers import tiny_dataset
from mlora_tf.config import ModelConfig, TrainConfig
from mlora_tf.data.shards import write_shards
from mlora_tf.data.streamed import StreamedDataset
from mlora_tf.models import DataSpec, build_model, dense_stack_of
from mlora_tf.training import Trainer, schedule_phases


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def _open(data, tmp_path_factory, file_format):
    folder = tmp_path_factory.mktemp(f"shards_{file_format}")
    write_shards(data, folder, file_format=file_format, shard_rows=70)  # several files per domain
    return StreamedDataset.open(folder)


@pytest.fixture(scope="module")
def shards(data, tmp_path_factory):
    return _open(data, tmp_path_factory, "parquet")


@pytest.fixture(scope="module", params=["parquet", "tfrecord"])
def any_shards(request, data, tmp_path_factory):
    return _open(data, tmp_path_factory, request.param)


def _phases(adapter, data, model):
    if adapter == "moe":
        return schedule_phases("paper", "moe", data.n_domains, dense_stack_of(model).num_slots)
    return schedule_phases("joint", adapter)


def _train(dataset, spec_data, adapter="mlora", checkpoint_dir=None, **train):
    keras.utils.set_random_seed(7)
    model = build_model(
        ModelConfig(name="wdl", adapter=adapter, hidden_units=(16, 8), experts_per_domain=1),
        DataSpec.from_dataset(spec_data),
    )
    config = dict(batch_size=64, max_epochs=2, patience=2, seed=3, eval_batch_size=150)
    config.update(train)
    trainer = Trainer(model, dataset, TrainConfig(**config))
    results = trainer.fit(_phases(adapter, spec_data, model), checkpoint_dir=checkpoint_dir)
    return trainer, results


def _assert_same_run(a, b):
    (trainer_a, results_a), (trainer_b, results_b) = a, b
    assert [r.name for r in results_a] == [r.name for r in results_b]
    for ra, rb in zip(results_a, results_b):
        assert ra.train_examples == rb.train_examples
        assert [h["train_loss"] for h in ra.history] == [h["train_loss"] for h in rb.history]
        assert [h["val_metric"] for h in ra.history] == [h["val_metric"] for h in rb.history]
        assert ra.test == rb.test
    for wa, wb in zip(trainer_a._snapshot(), trainer_b._snapshot()):
        np.testing.assert_array_equal(wa, wb)
    assert trainer_a.final_metrics == trainer_b.final_metrics


@pytest.mark.parametrize("shuffle_buffer", [10_000, 50])  # a full-size buffer, and a small one
def test_streamed_training_equals_in_memory_training(data, any_shards, shuffle_buffer):
    memory = _train(data, data, shuffle_buffer=shuffle_buffer)
    streamed = _train(any_shards, data, shuffle_buffer=shuffle_buffer)
    assert streamed[0].streamed and not memory[0].streamed
    assert streamed[0]._stream_seeds and not streamed[0]._buffer_orders  # no order held in memory
    _assert_same_run(memory, streamed)


@pytest.mark.parametrize("file_format", ["parquet", "tfrecord"])
@pytest.mark.parametrize("domains", [[1], [1, 0]])
def test_block_batches_follow_the_order(data, tmp_path_factory, file_format, domains):
    # `ShardedDataset.batches`: batch i holds rows order[i*b:(i+1)*b] of the domains'
    # rows in file order (the in-memory rows of those domains, concatenated).
    from mlora_tf.training.trainer import shuffle_buffer_order, write_shuffle_buffer_order

    shards = _open(data, tmp_path_factory, file_format).shards
    rows = {c: np.concatenate([data.domain_slice("train", d)[c] for d in domains]) for c in data.column_names}
    n = len(rows["label"])
    order = shuffle_buffer_order(n, 40, seed=5)  # a small buffer: rows come far from their place
    path = str(tmp_path_factory.mktemp("order") / "order.int32")
    write_shuffle_buffer_order(path, n, 40, seed=5)
    np.testing.assert_array_equal(np.fromfile(path, np.int32), order)
    for given in (order, path, None):
        got = list(shards.batches("train", 64, domains=domains, order=given).as_numpy_iterator())
        assert [len(b["label"]) for b in got] == [64] * (n // 64) + ([n % 64] if n % 64 else [])
        want = np.arange(n) if given is None else order
        for c in data.column_names:
            np.testing.assert_array_equal(np.concatenate([b[c] for b in got]), rows[c][want])
    with pytest.raises(ValueError, match="must hold the"):
        shards.batches("train", 64, domains=domains, order=order[:-1])
    twice = order.copy()
    twice[-1] = twice[0]
    with pytest.raises(Exception, match="not a permutation"):
        list(shards.batches("train", 64, domains=domains, order=twice).as_numpy_iterator())


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_batch_blocks_are_the_batches_in_blocks_of_whole_batches(data, tmp_path_factory, read_ahead):
    # `ShardedDataset.batch_blocks`: the same rows in the same order as `batches`, in
    # numpy blocks of `block_rows // batch_size` whole batches; the reader's error comes
    # out of the iterator; a caller that stops early leaves no reader behind.
    import threading

    from mlora_tf.training.trainer import shuffle_buffer_order

    shards = _open(data, tmp_path_factory, "parquet").shards
    domains = [1, 0]
    n = sum(data.num_rows("train", d) for d in domains)
    order = shuffle_buffer_order(n, 40, seed=5)
    batches = list(shards.batches("train", 64, domains=domains, order=order).as_numpy_iterator())
    blocks = list(shards.batch_blocks("train", 64, domains=domains, order=order, block_rows=200,
                                      read_ahead=read_ahead))
    assert [len(b["label"]) for b in blocks[:-1]] == [192] * (len(blocks) - 1)  # 3 whole batches each
    assert len(blocks) == -(-len(batches) // 3)
    for c in data.column_names:
        np.testing.assert_array_equal(np.concatenate([b[c] for b in blocks]),
                                      np.concatenate([b[c] for b in batches]))
    twice = order.copy()
    twice[-1] = twice[0]
    with pytest.raises(ValueError, match="not a permutation"):
        list(shards.batch_blocks("train", 64, domains=domains, order=twice, block_rows=64, read_ahead=read_ahead))
    with pytest.raises(ValueError, match="must hold the"):  # checked on the call, before any read
        shards.batch_blocks("train", 64, domains=domains, order=order[:-1], read_ahead=read_ahead)
    before = threading.active_count()
    first = next(shards.batch_blocks("train", 64, domains=domains, order=order, block_rows=64, read_ahead=read_ahead))
    assert len(first["label"]) == 64
    for _ in range(50):  # the dropped iterator's reader stops within its 0.1 s put timeout
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.05)
    assert threading.active_count() <= before


def test_streamed_mixed_batches_equal_in_memory(data, shards):
    _assert_same_run(_train(data, data, mixed_batches=True), _train(shards, data, mixed_batches=True))


def test_streamed_moe_phases_equal_in_memory(data, shards):
    memory = _train(data, data, adapter="moe", max_epochs=1)
    streamed = _train(shards, data, adapter="moe", max_epochs=1)
    assert len(streamed[1]) == 2 + data.n_domains  # backbone, one expert per domain, gate
    _assert_same_run(memory, streamed)


def test_streamed_evaluation_equals_in_memory(data, shards):
    memory, _ = _train(data, data, max_epochs=1)
    streamed, _ = _train(shards, data, max_epochs=1)
    for split in ("val", "test"):
        (labels_m, probs_m), (labels_s, probs_s) = memory.predict_split(split), streamed.predict_split(split)
        for a, b in zip(labels_m + probs_m, labels_s + probs_s):
            np.testing.assert_array_equal(a, b)
        assert memory.evaluate(split) == streamed.evaluate(split)


class _Killed(Exception):
    pass


def test_streamed_resume_inside_a_phase_gives_the_weights_of_an_unbroken_run(data, shards, tmp_path, monkeypatch):
    from mlora_tf.training.loop import Checkpoint

    real = Checkpoint.save
    saves = []

    def save(self, state, arrays):
        real(self, state, arrays)
        saves.append(state)
        if len(saves) == 2:
            raise _Killed

    unbroken = _train(shards, data, max_epochs=3, checkpoint_dir=str(tmp_path / "a"))
    monkeypatch.setattr(Checkpoint, "save", save)
    with pytest.raises(_Killed):
        _train(shards, data, max_epochs=3, checkpoint_dir=str(tmp_path / "b"))
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["current"] is not None and state["stream_seeds"]  # inside a phase, seeds saved
    monkeypatch.setattr(Checkpoint, "save", real)
    # A resumed trainer must take its pass seeds from the checkpoint, not draw new ones.
    monkeypatch.setattr(Trainer, "_stream_seed", lambda self, key: self._stream_seeds[key])
    resumed = _train(shards, data, max_epochs=3, checkpoint_dir=str(tmp_path / "b"))
    _assert_same_run(unbroken, resumed)


def test_streaming_refuses_a_full_permutation(data, shards):
    with pytest.raises(ValueError, match="shuffle='permutation'` needs every row in memory.*--stream=false"):
        _train(shards, data, shuffle="permutation")


def test_streaming_under_a_one_pipeline_strategy_reads_what_one_device_reads(data, shards):
    # A strategy streams (tests/distribute/test_stream_distribute.py for several
    # pipelines); with one input pipeline it trains on the one-device batches.
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")

    def train(strategy):
        keras.utils.set_random_seed(7)
        with strategy.scope():
            model = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(8,), dropout=0.0),
                                DataSpec.from_dataset(data))
        trainer = Trainer(model, shards, TrainConfig(batch_size=64, max_epochs=2, seed=3), strategy=strategy)
        return trainer, trainer.fit(schedule_phases("joint", "mlora"))

    (one, one_results), (distributed, results) = train(tf.distribute.get_strategy()), train(strategy)
    assert distributed.strategy is strategy and one.strategy is None
    assert results[0].train_examples == one_results[0].train_examples == 2 * sum(data.sizes()["train"])
    losses = [h["train_loss"] for h in results[0].history]
    assert losses == pytest.approx([h["train_loss"] for h in one_results[0].history], abs=1e-6)
    for wa, wb in zip(one._snapshot(), distributed._snapshot()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)


def test_streamed_training_never_reads_the_splits_into_memory(data, shards, monkeypatch):
    # `to_memory` (and with it any whole read of the folder) is never called.
    def refuse(self):
        raise AssertionError("to_memory called")

    monkeypatch.setattr(type(shards.shards), "to_memory", refuse)
    trainer, results = _train(shards, data, max_epochs=1)
    assert results[0].train_examples == sum(data.sizes()["train"])


def test_row_order_folders_of_runs_no_longer_running_are_removed(tmp_path):
    # A killed run leaves its row-order files (4 bytes a training row) behind; the next
    # streamed run removes them, and keeps those of live processes.
    import os
    import subprocess
    import sys

    from mlora_tf.training.trainer import ORDER_DIR_PREFIX, remove_stale_order_dirs

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"{ORDER_DIR_PREFIX}{gone.pid}_abc"
    stale.mkdir()
    (stale / "pass-0.int32").write_bytes(b"\0" * 8)
    live = tmp_path / f"{ORDER_DIR_PREFIX}{os.getpid()}_def"
    live.mkdir()
    unrelated = tmp_path / f"{ORDER_DIR_PREFIX}notapid"
    unrelated.mkdir()
    assert remove_stale_order_dirs(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and unrelated.exists()
