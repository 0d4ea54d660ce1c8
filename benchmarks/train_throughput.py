"""Training throughput of `mlora_tf` on ML-1M-sized synthetic data (`make bench`).

Measures examples/second of a full training epoch (every domain once, one domain at a
time, batch 1024), after one warm-up epoch that includes tracing; reports the median of
`--epochs` timed epochs (`--fit_epochs` for the two slow Keras-loop paths). Paths measured:

* `trainer`: our `Trainer` (one `tf.function` pass per domain over in-memory tensors),
  for every `--models` x `--adapters` combination;
* `trainer-original`: WDL+MLoRA under `--loop=original` (the TF 1.12 + DeepCTR loop,
  `mlora_tf.training.loops`), the yardstick the fast loop is measured against;
* `keras-fit`: WDL+MLoRA trained with plain Keras `compile` + `fit(epochs=1)` per
  domain on an in-memory `tf.data` pipeline (shuffle, batch 1024, prefetch): what a
  default Keras loop gives;
* `csv-pipeline`: WDL+MLoRA fed like the original code: one CSV file per domain, read
  with `tf.data.experimental.make_csv_dataset`, and `fit(epochs=1)` one domain at a
  time. Ratios in the table are relative to this path.

The data comes from `benchmarks/common.py`, shared with `peer_deepctr.py`, so the
DeepCTR figure is measured on the very same rows. Prints a table; no assertions.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import common  # noqa: E402
from mlora_tf.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from mlora_tf.data.dataset import MultiDomainDataset  # noqa: E402
from mlora_tf.models import DataSpec, build_model  # noqa: E402
from mlora_tf.runtime import configure_threads  # noqa: E402
from mlora_tf.training import Trainer, schedule_phases  # noqa: E402
from mlora_tf.training import distribute  # noqa: E402
from mlora_tf.training.loops import resolve_loop  # noqa: E402

MODELS = ("mlp", "wdl")
ADAPTERS = ("none", "mlora")
LABELS = {"mlp": "MLP", "wdl": "WDL", "none": "Base", "mlora": "MLoRA"}
# The Keras-loop paths train this model (the original's WDL+MLoRA).
KERAS_MODEL, KERAS_ADAPTER = "wdl", "mlora"

flags.DEFINE_list("models", list(MODELS), f"Backbones for the trainer path ({', '.join(MODELS)}).")
flags.DEFINE_list("adapters", list(ADAPTERS), f"Adapters for the trainer path ({', '.join(ADAPTERS)}).")
flags.DEFINE_integer("epochs", 3, "Timed epochs per configuration (after one warm-up epoch); the median is reported.")
flags.DEFINE_integer("rows", common.DEFAULT_ROWS, "Training rows over all domains.")
flags.DEFINE_integer("domains", common.DEFAULT_DOMAINS, "Number of domains (sizes follow ML-1M occupations).")
flags.DEFINE_integer("batch_size", 1024, "Training batch size (every path).")
flags.DEFINE_integer("seed", common.DEFAULT_SEED, "Seed of the data and of the models.")
flags.DEFINE_enum("strategy", "default", list(distribute.STRATEGIES),
                  "tf.distribute strategy the models are built and trained under (batch_size is the global batch).")
flags.DEFINE_integer("cpu_devices", None, "Split the host CPU into N logical devices first (--strategy=mirrored "
                     "then has N replicas on a host without a GPU).")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON to this path.")
flags.DEFINE_enum(
    "threads", "auto", ["auto", "tf"],
    "auto: mlora_tf's thread pools (1 thread per op, CPU-count ops at once on a CPU host; what the programs use); "
    "tf: TensorFlow's defaults. Applies to every path of the run.",
)
flags.DEFINE_string(
    "peer_python", ".venv-peer/bin/python",
    "Python of the DeepCTR venv (`make bench-peer` builds it): when it exists, DeepCTR's WDL is timed on the same "
    "data in the same run and the table shows our ratio to it. Empty: skip.",
)
flags.DEFINE_boolean("original_loop", True, "Also time WDL+MLoRA under --loop=original (the yardstick) in the same run.")
flags.DEFINE_boolean("skip_csv", False, "Skip the csv-pipeline path.")
flags.DEFINE_boolean("skip_keras_fit", False, "Skip the keras-fit path.")
flags.DEFINE_integer(
    "fit_epochs", 1,
    "Timed epochs of the keras-fit and csv-pipeline paths (after one warm-up epoch): they are 5-10x slower, "
    "so one keeps the default run near 5 minutes.",
)
FLAGS = flags.FLAGS

# Harmless notes Keras prints on every per-domain `fit` over a finite tf.data pipeline.
warnings.filterwarnings("ignore", message=r".*`shuffle=True` was passed.*")
warnings.filterwarnings("ignore", message=r".*Your input ran out of data.*")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The distribution strategy for `--strategy` (`mlora_tf.training.distribute`)."""
    return distribute.make_strategy(name)


def to_dataset(data: dict) -> MultiDomainDataset:
    return MultiDomainDataset(
        name="bench-synthetic",
        n_domains=data["n_domains"],
        vocab_sizes=data["vocab_sizes"],
        domain_names=data["domain_names"],
        splits=data["splits"],
        info={"source": "benchmarks/common.py", "rows": FLAGS.rows, "seed": FLAGS.seed},
    )


def run_config(name: str, adapter: str, loop: str = "fast") -> RunConfig:
    """The resolved config of one trainer path (`--loop`: which training loop)."""
    return resolve_loop(
        RunConfig(model=ModelConfig(name=name, adapter=adapter),
                  train=TrainConfig(batch_size=FLAGS.batch_size, seed=FLAGS.seed, loop=loop))
    )


def new_model(name: str, adapter: str, spec: DataSpec, strategy, loop: str = "fast") -> keras.Model:
    keras.utils.set_random_seed(FLAGS.seed)
    with strategy.scope():
        return build_model(run_config(name, adapter, loop).model, spec, graph_seed=FLAGS.seed)


# ------------------------------------------------------------------ our trainer
def bench_trainer(name, adapter, dataset, spec, strategy, loop: str = "fast") -> dict:
    model = new_model(name, adapter, spec, strategy, loop)
    trainer = Trainer(model, dataset, run_config(name, adapter, loop).train, strategy=strategy)
    phase = schedule_phases("joint", adapter)[0]
    with strategy.scope():
        trainer._enter_phase(phase)
    train_epoch = trainer._train_epoch
    cpu = []  # process CPU seconds and examples of every epoch, the warm-up first

    def run_epoch():
        start = time.process_time()
        _, examples = train_epoch(phase)
        cpu.append((time.process_time() - start, examples))
        return examples

    result = common.time_epochs(run_epoch, FLAGS.epochs)
    result["replicas"] = strategy.num_replicas_in_sync
    # Examples per CPU-second of this process (all its threads): less sensitive than
    # wall-clock ex/s to other programs sharing the CPU; compare runs with it.
    result["epoch_cpu_seconds"] = [c for c, _ in cpu[1:]]
    result["cpu_examples_per_second"] = statistics.median(n / max(c, 1e-9) for c, n in cpu[1:])
    return result


# ------------------------------------------------------------ Keras fit paths
def compile_keras(model: keras.Model) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8),
        loss={"probability": "binary_crossentropy"},
    )
    return model


def time_fit(model, per_domain_datasets, sizes) -> dict:
    """Time `fit(epochs=1)` over every domain in a fresh random order per epoch."""
    rng = np.random.default_rng(FLAGS.seed)

    def run_epoch():
        examples = 0
        for d in rng.permutation(len(per_domain_datasets)):
            if sizes[d] == 0:
                continue
            model.fit(per_domain_datasets[d], epochs=1, verbose=0)
            examples += int(sizes[d])
        return examples

    return common.time_epochs(run_epoch, FLAGS.fit_epochs)


def bench_keras_fit(data, spec, strategy) -> dict:
    model = new_model(KERAS_MODEL, KERAS_ADAPTER, spec, strategy)
    with strategy.scope():
        compile_keras(model)
    per_domain = common.domain_rows(data["splits"]["train"], data["n_domains"])
    datasets = []
    for rows in per_domain:
        n = len(rows["label"])
        features = {f: rows[f] for f in common.FEATURES}
        ds = tf.data.Dataset.from_tensor_slices((features, {"probability": rows["label"]}))
        ds = ds.shuffle(max(n, 1), seed=FLAGS.seed, reshuffle_each_iteration=True)
        datasets.append(ds.batch(FLAGS.batch_size).prefetch(tf.data.AUTOTUNE))
    result = time_fit(model, datasets, [len(r["label"]) for r in per_domain])
    result["jit_compile"] = bool(model.jit_compile)
    return result


def write_domain_csvs(data, folder) -> list[str]:
    paths = []
    for d, rows in enumerate(common.domain_rows(data["splits"]["train"], data["n_domains"])):
        path = os.path.join(folder, f"train_domain_{d:02d}.csv")
        table = np.stack([rows["uid"], rows["pid"], rows["domain"], rows["label"].astype(np.int64)], axis=1)
        np.savetxt(path, table, fmt="%d", delimiter=",", header="uid,pid,domain,label", comments="")
        paths.append(path)
    return paths


def _csv_features(features, label):
    """The CSV columns as the model takes them: int64 `(batch,)` ids, float labels."""
    ids = {f: tf.reshape(tf.cast(features[f], tf.int64), [-1]) for f in common.FEATURES}
    return ids, {"probability": tf.reshape(tf.cast(label, tf.float32), [-1])}


def bench_csv(data, spec, strategy) -> dict:
    model = new_model(KERAS_MODEL, KERAS_ADAPTER, spec, strategy)
    with strategy.scope():
        compile_keras(model)
    sizes = np.bincount(data["splits"]["train"]["domain"], minlength=data["n_domains"])
    with tempfile.TemporaryDirectory(prefix="mlora_bench_csv_") as folder:
        paths = write_domain_csvs(data, folder)
        datasets = [
            tf.data.experimental.make_csv_dataset(
                path,
                batch_size=FLAGS.batch_size,
                label_name="label",
                num_epochs=1,
                shuffle=True,
                shuffle_buffer_size=10000,
                shuffle_seed=FLAGS.seed,
                num_parallel_reads=8,
            ).map(_csv_features)
            for path in paths
        ]
        result = time_fit(model, datasets, sizes)
    result["jit_compile"] = bool(model.jit_compile)
    return result


# ---------------------------------------------------------------------- main
def run_peer():
    """DeepCTR's WDL on the same data, in its own venv (None when that venv is absent)."""
    import json
    import subprocess

    if not FLAGS.peer_python or not os.path.exists(FLAGS.peer_python):
        print(f"  (no DeepCTR venv at {FLAGS.peer_python!r}: `make bench-peer` builds it; peer skipped)", flush=True)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "peer.json")
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        cmd = [FLAGS.peer_python, os.path.join(here, "peer_deepctr.py"), f"--json_out={out}",
               f"--rows={FLAGS.rows}", f"--domains={FLAGS.domains}", f"--seed={FLAGS.seed}", f"--epochs={FLAGS.epochs}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out):
            print(f"  DeepCTR peer failed:\n{proc.stderr[-2000:]}", flush=True)
            return None
        with open(out) as f:
            peer = json.load(f)
    result = dict(peer["results"][0])
    result.setdefault("configuration", "WDL (DeepCTR)")
    result.setdefault("path", "deepctr-fit")
    return result


def format_table(results, header_lines) -> str:
    csv_speed = next((r["examples_per_second"] for r in results if r["path"] == "csv-pipeline"), None)
    peer_speed = next((r["examples_per_second"] for r in results if r["path"] == "deepctr-fit"), None)
    rows = []
    for r in results:
        ratio = f"{r['examples_per_second'] / csv_speed:.2f}x" if csv_speed else "n/a"
        r["ratio_to_csv"] = r["examples_per_second"] / csv_speed if csv_speed else None
        r["ratio_to_deepctr"] = r["examples_per_second"] / peer_speed if peer_speed else None
        peer_ratio = f"{r['ratio_to_deepctr']:.2f}x" if peer_speed else "n/a"
        epoch_s = sorted(r["epoch_seconds"])[len(r["epoch_seconds"]) // 2]
        rows.append((r["configuration"], r["path"], f"{r['examples_per_second']:,.0f}", f"{epoch_s:.2f}",
                     f"{r['warmup_seconds']:.1f}", ratio, peer_ratio))
    titles = ("configuration", "path", "ex/s", "epoch s", "warm-up s", "vs csv", "vs DeepCTR")
    widths = [max(len(t), *(len(row[i]) for row in rows)) for i, t in enumerate(titles)]
    align = ["<", "<", ">", ">", ">", ">", ">"]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths))

    out = list(header_lines)
    out.append(line(titles))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def main(argv):
    del argv
    for value, valid, what in ((FLAGS.models, MODELS, "--models"), (FLAGS.adapters, ADAPTERS, "--adapters")):
        unknown = [v for v in value if v not in valid]
        if unknown:
            raise app.UsageError(f"{what}: unknown {unknown}. Valid: {', '.join(valid)}")
    if FLAGS.epochs < 1 or FLAGS.fit_epochs < 1:
        raise app.UsageError("--epochs and --fit_epochs must be >= 1")
    if FLAGS.strategy == "multi_worker" and not (FLAGS.skip_keras_fit and FLAGS.skip_csv):
        raise app.UsageError("--strategy=multi_worker times the trainer only: add --skip_keras_fit --skip_csv")
    if FLAGS.cpu_devices is not None:
        distribute.configure_cpu_devices(FLAGS.cpu_devices)
    threads = configure_threads() if FLAGS.threads == "auto" else (0, 0)
    strategy = make_strategy(FLAGS.strategy)
    load_before = common.machine_info().get("loadavg")

    data = common.make_data(rows=FLAGS.rows, n_domains=FLAGS.domains, seed=FLAGS.seed)
    dataset = to_dataset(data)
    spec = DataSpec.from_dataset(dataset)
    print(f"Data: {common.describe(data)}", flush=True)

    results = []

    def record(configuration, path, result):
        result.update(configuration=configuration, path=path)
        results.append(result)
        cpu = result.get("cpu_examples_per_second")
        cpu_note = f"  ({cpu:,.0f} ex per CPU-second)" if cpu else ""
        print(f"  {configuration:<12} {path:<13} {result['examples_per_second']:>10,.0f} ex/s{cpu_note}", flush=True)
        gc.collect()

    for name in FLAGS.models:
        for adapter in FLAGS.adapters:
            label = f"{LABELS[name]}-{LABELS[adapter]}"
            record(label, "trainer", bench_trainer(name, adapter, dataset, spec, strategy))
    if FLAGS.original_loop and FLAGS.strategy == "default":
        # The yardstick (`--loop=original`: one pass per batch, Keras Dropout, clipped loss, ...).
        record(f"{LABELS[KERAS_MODEL]}-{LABELS[KERAS_ADAPTER]}", "trainer-original",
               bench_trainer(KERAS_MODEL, KERAS_ADAPTER, dataset, spec, strategy, loop="original"))
    keras_label = f"{LABELS[KERAS_MODEL]}-{LABELS[KERAS_ADAPTER]}"
    if not FLAGS.skip_keras_fit:
        record(keras_label, "keras-fit", bench_keras_fit(data, spec, strategy))
    if not FLAGS.skip_csv:
        record(keras_label, "csv-pipeline", bench_csv(data, spec, strategy))
    peer = run_peer()
    if peer is not None:
        results.append(peer)
        print(f"  {peer['configuration']:<12} {peer['path']:<13} {peer['examples_per_second']:>10,.0f} ex/s", flush=True)

    info = common.machine_info()
    header = [
        "",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, os.cpu_count()={info['cpu_count']}, "
        f"strategy={FLAGS.strategy} ({strategy.num_replicas_in_sync} replica(s) in sync), "
        f"threads={FLAGS.threads} (intra_op, inter_op = {threads}; 0 = TF's choice)",
        f"{common.describe(data)}; batch {FLAGS.batch_size}",
        f"ex/s: median of {FLAGS.epochs} timed epochs (trainer), {FLAGS.fit_epochs} (keras-fit, csv-pipeline), "
        "each after 1 warm-up epoch",
        f"load average before/after: {load_before} / {info.get('loadavg')}",
        "",
    ]
    print(format_table(results, header))
    if FLAGS.json_out and distribute.is_chief(strategy):
        common.write_json(
            FLAGS.json_out,
            {
                "benchmark": "train_throughput",
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "machine": info,
                "loadavg_before": load_before,
                "settings": {
                    "rows": FLAGS.rows,
                    "domains": FLAGS.domains,
                    "batch_size": FLAGS.batch_size,
                    "epochs": FLAGS.epochs,
                    "fit_epochs": FLAGS.fit_epochs,
                    "seed": FLAGS.seed,
                    "strategy": FLAGS.strategy,
                    "replicas": strategy.num_replicas_in_sync,
                    "cpu_devices": FLAGS.cpu_devices,
                },
                "results": results,
            },
        )
        print(f"\nWrote {FLAGS.json_out}")


if __name__ == "__main__":
    app.run(main)
