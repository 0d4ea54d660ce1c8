"""Streaming a shard folder under a strategy: every input pipeline reads its own files.

Pipeline `p` of `P` (a replica of `mirrored`, a worker of `multi_worker`) reads, of every
domain, the files `p, p + P, ...` only, in its own shuffle buffer's order, in batches of
`batch_size / P` rows; global batch `k` is the `k`-th batch of every pipeline (a shorter
pipeline ends with empty batches). The references:

- one device on the global batches built by hand from the pipelines' batches: the
  distributed pass must give its weights to float rounding (the loss is the global
  batch's mean, the padding adds nothing);
- two workers on loopback against `mirrored` over two logical devices in one process (the
  same files on the same number of pipelines): the same metrics, also when worker 1 is
  killed and the cluster is started again from the chief's checkpoint.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from core.helpers import tiny_dataset
from distribute.test_distribute import WORKER_TIMEOUT_S, _assert_same_run, _env, _free_ports, wait_for_workers
from mlora_tf.data.shards import ShardedDataset, open_shards, write_shards

SHARD_ROWS = 70  # about 4 files per domain: pipeline 0 gets more rows than pipeline 1


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_shards(tiny_dataset(), folder, file_format="parquet", shard_rows=SHARD_ROWS)
    return folder


def test_each_pipeline_reads_its_own_files_only(shard_dir, monkeypatch):
    shards = open_shards(shard_dir)
    opened = []
    real = ShardedDataset._column_chunks

    def column_chunks(self, files):
        opened.extend(f.path for f in files)
        return real(self, files)

    monkeypatch.setattr(ShardedDataset, "_column_chunks", column_chunks)
    uids = []
    for p in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=p, num_replicas_in_sync=2)
        mine = [f.path for d in range(shards.n_domains) for f in shards.files("train", d)[p::2]]
        assert [f.path for f in shards.files("train", None, context)] == mine
        opened.clear()
        batches = list(shards.batches("train", 32, input_context=context).as_numpy_iterator())
        assert opened == mine  # no other file was opened
        uids.append(np.concatenate([b["uid"] for b in batches]))
        expected = np.concatenate([shards._read_file(f)["uid"] for f in shards.files("train", None, context)])
        np.testing.assert_array_equal(uids[-1], expected)
    assert sum(len(u) for u in uids) == shards.num_rows("train")


# One process, two logical CPU devices: the mirrored streamed pass against one device
# trained on the same global batches, put together from the two pipelines' batches.
_NUMERICS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mlora_tf.training.distribute import configure_cpu_devices, make_strategy
    configure_cpu_devices(2)
    import keras, tensorflow as tf
    from mlora_tf.config import ModelConfig, TrainConfig
    from mlora_tf.data.streamed import StreamedDataset
    from mlora_tf.models import DataSpec, build_model
    from mlora_tf.training import Trainer, schedule_phases

    data = StreamedDataset.open(sys.argv[1])
    spec = DataSpec.from_dataset(data)
    phase = schedule_phases("joint", "mlora")[0]
    config = TrainConfig(batch_size=64, seed=3, shuffle_buffer=100)

    def build(strategy):
        keras.utils.set_random_seed(3)
        with strategy.scope():
            return build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(8, 4), dropout=0.0,
                                           l2_reg_embedding=0.05), spec)

    def global_batches(self, key, domains):
        # Pipeline p's k-th batch of 32 rows, for p = 0, 1, one after the other.
        parts = []
        for p in range(2):
            context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=p, num_replicas_in_sync=2)
            n = sum(f.rows for d in domains for f in data.shards.files("train", d, context))
            order = self._stream_order(key, n, p) if n else None
            parts.append(list(data.shards.batches("train", 32, domains=list(domains), input_context=context,
                                                  order=order).as_numpy_iterator()))
        steps = max(len(part) for part in parts)
        merged = [{c: np.concatenate([part[k][c] for part in parts if k < len(part)]) for c in parts[0][0]}
                  for k in range(steps)]
        # One block per global batch (the one-device streamed pass takes numpy blocks).
        return (iter(merged),)

    def train(strategy, batches=None):
        trainer = Trainer(build(strategy), data, config, strategy=strategy)
        if batches is not None:
            trainer._stream_batches = batches.__get__(trainer)
        trainer._enter_phase(phase)
        losses = [trainer._train_epoch(phase) for _ in range(2)]
        return trainer, losses, [v.numpy() for v in trainer.weight_variables]

    one, mirrored = make_strategy("default"), make_strategy("mirrored")
    _, loss1, w1 = train(one, global_batches)
    _, loss2, w2 = train(mirrored)
    start = [v.numpy() for v in build(one).variables if v.name != "seed_generator_state"]
    out = {
        "replicas": mirrored.num_replicas_in_sync,
        "moved": max(float(np.max(np.abs(a - b))) for a, b in zip(start, w1)),
        "diff": max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2)),
        "losses": [loss1, loss2],
    }
    print("RESULT " + json.dumps(out))
""")


def test_mirrored_streamed_pass_equals_one_device_on_the_same_global_batches(shard_dir):
    proc = subprocess.run([sys.executable, "-c", _NUMERICS, str(shard_dir)], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["replicas"] == 2
    assert out["moved"] > 1e-3, out  # training moved the weights
    assert out["diff"] <= 1e-5, out
    one_device, mirrored = out["losses"]  # [mean loss, examples] of each epoch
    assert [e for _, e in one_device] == [e for _, e in mirrored] == [600, 600]  # every row once an epoch
    assert [loss for loss, _ in mirrored] == pytest.approx([loss for loss, _ in one_device], abs=1e-5)


TRAIN = ["--model=wdl", "--adapter=mlora", "--hidden_units=16,8", "--dropout=0", "--max_epochs=3", "--patience=3",
         "--batch_size=64"]

# Worker 1 of the first start dies (SIGKILL) as its third epoch begins.
_KILLED_AT_EPOCH_3 = textwrap.dedent("""
    import os, signal, sys
    from mlora_tf.training.trainer import Trainer
    real, calls = Trainer.train_epoch, []
    def train_epoch(self):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self)
    Trainer.train_epoch = train_epoch
    from mlora_tf.cli.train import run
    sys.argv = ["mlora-train", *sys.argv[1:]]
    run()
""")


def _start_cluster(shard_dir, out, logs, kill_worker_1=False):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs, files = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        files.append(open(logs / f"worker{index}.log", "w"))
        head = ["-c", _KILLED_AT_EPOCH_3] if kill_worker_1 and index == 1 else ["-m", "mlora_tf.cli.train"]
        procs.append(subprocess.Popen(
            [sys.executable, *head, f"--data_dir={shard_dir}", *TRAIN, "--strategy=multi_worker",
             f"--output_dir={out}"],
            stdout=files[-1], stderr=subprocess.STDOUT, env=_env(TF_CONFIG=tf_config),
        ))
    return procs, files


def test_two_workers_read_their_own_shards_match_mirrored_and_resume_after_a_kill(shard_dir, tmp_path):
    reference_dir = tmp_path / "mirrored"
    reference = subprocess.Popen(
        [sys.executable, "-m", "mlora_tf.cli.train", f"--data_dir={shard_dir}", *TRAIN, "--strategy=mirrored",
         "--cpu_devices=2", f"--output_dir={reference_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    out, first, second = tmp_path / "run", tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    # First start: worker 1 dies at its third epoch; the chief, left waiting on it, is killed.
    procs, files = _start_cluster(shard_dir, out, first, kill_worker_1=True)
    procs[1].wait(timeout=WORKER_TIMEOUT_S)
    time.sleep(2.0)  # the chief's checkpoint of epoch 2, if it was writing it
    wait_for_workers(procs, files, timeout=0.1)
    logs = [(first / f"worker{i}.log").read_text() for i in range(2)]
    assert procs[1].returncode == -9, logs[1][-2000:]
    assert not (out / "result.json").exists()
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["current"] is not None and state["current"]["loop"]["epoch"] >= 1, state.get("current")
    # Second start: both workers read the chief's checkpoint and finish the run.
    codes = wait_for_workers(*_start_cluster(shard_dir, out, second))
    logs = [(second / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert all("Resuming phase" in log for log in logs), [log[-1500:] for log in logs]
    _, stderr = reference.communicate(timeout=300)
    assert reference.returncode == 0, stderr[-3000:]
    expected = json.loads((reference_dir / "result.json").read_text())
    record = json.loads((out / "result.json").read_text())
    assert record["replicas"] == expected["replicas"] == 2
    assert sum(p["train_examples"] for p in record["phases"]) == 3 * 600
    _assert_same_run(expected, record)
