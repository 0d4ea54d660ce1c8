"""Multi-device training (`mlora_tf.training.distribute`, `Trainer(strategy=...)`).

Logical CPU devices must be configured before TensorFlow initialises, so every run with
a strategy is a fresh subprocess. The reference is the default one-device pass itself:
the distributed pass draws the same permutations and the same global batches and only
splits each batch among the replicas, so 2 mirrored replicas and 2 workers must match
one device to float rounding, which they can only do if the loss is the global-batch
mean, the gradients are summed once over the replicas, regularisation counts once and
every replica's copy of the weights gets the same update.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import tensorflow as tf

from mlora_tf.training import distribute

SMALL = [
    "--dataset=synthetic",
    "--data_options=n_rows=3000,n_users=200,n_items=100",
    "--hidden_units=16,8",
    "--max_epochs=2",
    "--dropout=0",
]
TOLERANCE = 1e-4
WORKER_TIMEOUT_S = 120


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _assert_same_run(reference, record):
    """Test metrics, validation metrics and per-epoch training losses agree."""
    for key in ("wauc", "mean_auc", "logloss"):
        assert record[key] == pytest.approx(reference[key], abs=TOLERANCE), key
    assert record["domain_auc"].keys() == reference["domain_auc"].keys()
    for name, auc in reference["domain_auc"].items():
        assert record["domain_auc"][name] == pytest.approx(auc, abs=TOLERANCE), name
    assert record["val"]["wauc"] == pytest.approx(reference["val"]["wauc"], abs=TOLERANCE)
    losses = [h["train_loss"] for p in record["phases"] for h in p["history"]]
    reference_losses = [h["train_loss"] for p in reference["phases"] for h in p["history"]]
    assert losses == pytest.approx(reference_losses, abs=TOLERANCE)


RUNS = {"default": [], "mirrored": ["--strategy=mirrored", "--cpu_devices=2"]}


def _train_default_and_mirrored(folder, *extra):
    """`{name: result record}` of `mlora-train SMALL *extra` on the default pass and on 2
    mirrored replicas, run at the same time (each is mostly single-threaded tracing)."""
    folders = {name: folder / name for name in RUNS}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "mlora_tf.cli.train", *SMALL, *extra, f"--output_dir={folders[name]}", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        for name, args in RUNS.items()
    }
    records = {}
    try:
        for name, proc in procs.items():
            _, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr[-3000:]
            records[name] = json.loads((folders[name] / "result.json").read_text())
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert records["default"]["replicas"] == 1 and records["mirrored"]["replicas"] == 2
    return records


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`{name: result record}` of the default pass and of 2 mirrored replicas."""
    return _train_default_and_mirrored(tmp_path_factory.mktemp("runs"))


def test_mirrored_on_two_devices_matches_one_device(runs):
    _assert_same_run(runs["default"], runs["mirrored"])


def test_adaptdhm_centroids_move_by_the_global_batch_on_every_replica(tmp_path):
    # AdaptDHM's online k-means: each replica sees half the batch; the per-cluster sums
    # are summed over the replicas, so the centroids (and everything routed by them)
    # follow one device's whole-batch update.
    records = _train_default_and_mirrored(tmp_path, "--model=adaptdhm")
    _assert_same_run(records["default"], records["mirrored"])


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for_workers(procs, files, timeout=WORKER_TIMEOUT_S):
    """Wait up to `timeout` seconds for the worker processes, kill any still running,
    close their log files; returns their exit codes."""
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for file in files:
            file.close()
    return [p.returncode for p in procs]


def test_two_workers_on_loopback_write_one_result(runs, tmp_path):
    out, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs, files = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        files.append(open(tmp_path / f"worker{index}.log", "w"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "mlora_tf.cli.train", *SMALL, "--strategy=multi_worker", f"--output_dir={out}"],
            stdout=files[-1], stderr=subprocess.STDOUT, env=_env(TF_CONFIG=tf_config, TMPDIR=str(scratch)),
        ))
    codes = wait_for_workers(procs, files)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)
    results = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("result.json"))
    assert results == ["run/result.json"], results
    # The chief wrote the run folder; worker 1 its own temporary folder, since deleted.
    assert f"Wrote {out / 'result.json'}" in logs[0]
    assert f"Wrote {scratch / 'mlora_tf_worker_'}" in logs[1] and f"Wrote {out}" not in logs[1]
    assert not list(scratch.iterdir())
    record = json.loads((out / "result.json").read_text())
    assert record["replicas"] == 2
    _assert_same_run(runs["default"], record)


# One process: the default pass against 2 mirrored replicas, weight by weight, on
# domains of 129 and 70 training rows in batches of 64 (in the last batch of each,
# replica 1 gets no row), with strong L2 terms and an L1 term (a regulariser
# differentiated through the loss).
_NUMERICS = textwrap.dedent("""
    import json
    import numpy as np
    from mlora_tf.training.distribute import configure_cpu_devices, make_strategy
    configure_cpu_devices(2)
    import keras, tensorflow as tf
    from mlora_tf.config import ModelConfig, TrainConfig
    from mlora_tf.data.dataset import MultiDomainDataset
    from mlora_tf.models import DataSpec, build_model
    from mlora_tf.training import Trainer, schedule_phases

    rng = np.random.default_rng(0)
    def rows(sizes):
        domain = np.repeat(np.arange(len(sizes)), sizes).astype("int64")
        n = len(domain)
        label = (rng.random(n) < 0.4).astype("float32")
        label[::7], label[1::7] = 1.0, 0.0
        return {"uid": rng.integers(0, 40, n), "pid": rng.integers(0, 30, n), "domain": domain, "label": label}
    data = MultiDomainDataset(name="odd", n_domains=2, vocab_sizes={"uid": 40, "pid": 30, "domain": 2},
                              domain_names=["a", "b"], splits={"train": rows([129, 70]), "val": rows([40, 30]),
                              "test": rows([40, 30])}, info={})
    spec = DataSpec.from_dataset(data)
    phase = schedule_phases("joint", "mlora")[0]

    def build(strategy, dropout=0.0):
        keras.utils.set_random_seed(3)
        with strategy.scope():
            model = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(8, 4), dropout=dropout,
                                            l2_reg_embedding=0.05, l2_reg_linear=0.05), spec)
        kernel = next(v for v in model.trainable_variables if v.path.endswith("kernel"))
        kernel.regularizer = keras.regularizers.L1(1e-4)  # near the data gradient: Adam would hide a 2x term
        return model

    def train(strategy, batch_size, epochs=2):
        trainer = Trainer(build(strategy), data, TrainConfig(batch_size=batch_size, seed=3), strategy=strategy)
        trainer._enter_phase(phase)
        losses = [trainer._train_epoch(phase)[0] for _ in range(epochs)]
        return trainer, losses, [v.numpy() for v in trainer.weight_variables]

    def max_diff(a, b):
        return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))

    one = make_strategy("default")
    mirrored2 = make_strategy("mirrored")
    initial = [v.numpy() for v in build(one).variables if v.name != "seed_generator_state"]
    _, loss0, w0 = train(one, 64)
    t2, loss2, w2 = train(mirrored2, 64)
    out = {
        "replicas": mirrored2.num_replicas_in_sync,
        "moved": max_diff(initial, w0),
        "diff": max_diff(w0, w2), "loss": [loss0, loss2],
        "copies_differ": max(max_diff([v.value.values[0].numpy()], [v.value.values[1].numpy()])
                             for v in t2.weight_variables),
    }
    dropout_trainer = Trainer(build(mirrored2, dropout=0.5), data, TrainConfig(batch_size=64), strategy=mirrored2)
    states = [v for v in dropout_trainer.model.variables if v.name == "seed_generator_state"]
    out["seed_shift"] = [(v.value.values[1].numpy() - v.value.values[0].numpy()).tolist() for v in states]
    errors = []
    for model, config in ((build(mirrored2), TrainConfig(batch_size=63)), (build(one), TrainConfig(batch_size=64))):
        try:
            Trainer(model, data, config, strategy=mirrored2)
        except ValueError as e:
            errors.append(str(e))
    out["errors"] = errors
    print("RESULT " + json.dumps(out))
""")


def test_distributed_pass_numerics():
    proc = subprocess.run([sys.executable, "-c", _NUMERICS], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["replicas"] == 2
    assert out["moved"] > 1e-3, out  # training moved the weights: the comparisons below mean something
    assert out["diff"] <= 1e-5, out
    assert out["loss"][1] == pytest.approx(out["loss"][0], abs=1e-5)
    assert out["copies_differ"] == 0.0  # FusedAdam's raw-op update kept the replicas' copies equal
    # Dropout: replica 1's seeds are shifted (its own masks), the counters are not.
    assert out["seed_shift"] and all(shift == [1_000_003, 0] for shift in out["seed_shift"])
    assert len(out["errors"]) == 2, out["errors"]
    assert "divisible by the 2 replicas" in out["errors"][0]
    assert "strategy.scope()" in out["errors"][1]


def test_strategy_selection_and_tf_config_errors(monkeypatch):
    assert distribute.is_default_strategy(distribute.make_strategy("default"))
    with pytest.raises(ValueError, match="Unknown strategy 'tpu'"):
        distribute.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        distribute.make_strategy("multi_worker")
    bad = {
        "{not json": "not valid JSON",
        '{"cluster": {"worker": ["a:1"]}}': "must name this process's task",
        '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}': "out of range",
        '{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}': "list of 'host:port'",
        '{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}': "unknown task types",
    }
    for value, message in bad.items():
        monkeypatch.setenv("TF_CONFIG", value)
        with pytest.raises(ValueError, match=message):
            distribute.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="positive integer"):
        distribute.configure_cpu_devices(0)
    assert distribute.per_replica_batch_size(1024, None) == 1024


class _ClusterStrategy:
    """Stands in for a multi-worker strategy: only its cluster resolver matters."""

    def __init__(self, cluster, task_type, task_id):
        self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
        )


def test_only_the_chief_writes():
    workers = {"worker": ["a:1", "b:1"]}
    assert distribute.is_chief(None) and not distribute.is_multi_worker(None)
    assert distribute.is_multi_worker(_ClusterStrategy(workers, "worker", 0))
    assert distribute.is_chief(_ClusterStrategy(workers, "worker", 0))
    assert not distribute.is_chief(_ClusterStrategy(workers, "worker", 1))
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert distribute.is_chief(_ClusterStrategy(with_chief, "chief", 0))
    assert not distribute.is_chief(_ClusterStrategy(with_chief, "worker", 0))


_ROUTER_ON_TWO_REPLICAS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mlora_tf.training.distribute import configure_cpu_devices, make_strategy
    configure_cpu_devices(2)
    import tensorflow as tf
    from mlora_tf.layers.cluster_router import ClusterRouter

    u = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    def router():
        layer = ClusterRouter(4, momentum=0.5, centroid_initializer="glorot_uniform")
        layer.build((None, 8))
        layer.centroids.assign(np.random.default_rng(1).normal(size=(4, 8)).astype("float32"))
        return layer

    one = router()
    one(tf.constant(u), training=True)
    strategy = make_strategy("mirrored")
    with strategy.scope():
        two = router()
    halves = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(u[32 * context.replica_id_in_sync_group:][:32]))
    strategy.run(tf.function(lambda x: two(x, training=True)), args=(halves,))
    copies = [v.numpy() for v in strategy.experimental_local_results(two.centroids.value)]
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "moved": float(np.abs(one.centroids.numpy() - np.random.default_rng(1).normal(size=(4, 8))).max()),
        "diff": max(float(np.abs(c - one.centroids.numpy()).max()) for c in copies),
    }))
""")


def test_cluster_router_update_on_two_replicas_equals_the_whole_batch_update():
    # AdaptDHM's online k-means under a strategy: each replica routes its half of the
    # batch, the per-cluster sums and counts are summed over the replicas, and every
    # replica's copy of the centroids gets one device's whole-batch update.
    proc = subprocess.run([sys.executable, "-c", _ROUTER_ON_TWO_REPLICAS], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ")[-1])
    assert out["replicas"] == 2
    assert out["moved"] > 0.05  # the update is not a no-op
    assert out["diff"] < 1e-6
