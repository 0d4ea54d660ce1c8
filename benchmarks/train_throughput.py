"""Training throughput of `mlora_tf` on ML-1M-sized synthetic data (`make bench`).

Measures examples/second of a full training epoch (every domain once, one domain at a
time, batch 1024), after one warm-up epoch that includes tracing; reports the median of
`--epochs` timed epochs (`--fit_epochs` for the two slow Keras-loop paths). The trainer
paths' timed epochs are interleaved (round k runs epoch k of every configuration back to
back, `common.interleaved_epochs`), so their ratios (MLoRA's time over Base's) are taken
within each round and their spread over the rounds is printed. Paths measured:

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

Peers, each in its own venv and timed in the same run when the venv exists, fed the way
their users feed them (`fit` on numpy columns), both per domain and on mixed batches:

* DeepCTR 0.9.4's WDL on tf-keras (`peer_deepctr.py`, `--peer_python`);
* DeepCTR-Torch 0.3.0's WDL on PyTorch (`peer_torch.py`, `--peer_torch_python`).

The data comes from `benchmarks/common.py`, shared with the peers, so every figure is
measured on the very same rows. After the speed table come our ratios to every peer
figure, and the roofline: each path's training FLOPs per example (`flops.py`: 2 m n per
row and matmul, one per element of a bias, activation, dropout or adapter sum, 3x the
forward pass for training; counted from the built model's layers), the achieved
GFLOP/s (FLOPs per example x ex/s) and its share of a `tf.matmul` float32 peak measured
in the same process (`--matmul_size`). Prints tables; no assertions.
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
import flops  # noqa: E402
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
flags.DEFINE_string(
    "peer_torch_python", ".venv-peer-torch/bin/python",
    "Python of the DeepCTR-Torch venv (`make bench-peer-torch` builds it): when it exists, DeepCTR-Torch's WDL is "
    "timed on the same data in the same run and the tables show our ratio to it. Empty: skip.",
)
flags.DEFINE_integer("matmul_size", 1024, "Side of the square float32 matmuls of the measured peak (0: skip the roofline).")
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
def trainer_epoch(name, adapter, dataset, spec, strategy, loop: str = "fast") -> tuple:
    """`(run_epoch, finish)` of our trainer on one configuration: `run_epoch()` trains
    one epoch (for `common.interleaved_epochs`); `finish(result)` adds the FLOP counts
    and the examples per CPU-second to the timing result."""
    model = new_model(name, adapter, spec, strategy, loop)
    # The trainer's passes run one domain per batch: adapters take their one-slot path.
    flop_counts = flops.train_flops_per_example(model)
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

    def finish(result):
        result["replicas"] = strategy.num_replicas_in_sync
        result.update(flops_per_example=flop_counts["train"], flops=flop_counts, adapter_arithmetic="one slot")
        # Examples per CPU-second of this process (all its threads): less sensitive than
        # wall-clock ex/s to other programs sharing the CPU; compare runs with it.
        result["epoch_cpu_seconds"] = [c for c, _ in cpu[1:]]
        result["cpu_examples_per_second"] = statistics.median(n / max(c, 1e-9) for c, n in cpu[1:])
        return result

    return run_epoch, finish


def bench_trainers(configurations: dict, dataset, spec, strategy) -> dict:
    """Label -> result of our trainer on every `configurations` entry (label ->
    `(name, adapter, loop)`), their timed epochs interleaved round by round."""
    runs = {label: trainer_epoch(name, adapter, dataset, spec, strategy, loop)
            for label, (name, adapter, loop) in configurations.items()}
    timed = common.interleaved_epochs({label: run for label, (run, _) in runs.items()}, FLAGS.epochs)
    return {label: runs[label][1](timed[label]) for label in runs}


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
    add_fit_flops(result, model)
    return result


def add_fit_flops(result: dict, model: keras.Model) -> None:
    """The FLOPs of a Keras `fit` path. Its batches hold one domain each (one `fit` per
    domain), so the dense stack's per-batch test routes them to one adapter slot."""
    flop_counts = flops.train_flops_per_example(model)
    result.update(flops_per_example=flop_counts["train"], flops=flop_counts, adapter_arithmetic="one slot")


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
    add_fit_flops(result, model)
    return result


# ---------------------------------------------------------------------- main
def run_peer(name: str, python: str, script: str, make_target: str, env=None) -> list:
    """A peer's figures on the same data, from its own venv (empty when that venv is absent)."""
    import json
    import subprocess

    if not python or not os.path.exists(python):
        print(f"  (no {name} venv at {python!r}: `make {make_target}` builds it; peer skipped)", flush=True)
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "peer.json")
        here = os.path.dirname(os.path.abspath(__file__))
        cmd = [python, os.path.join(here, script), f"--json_out={out}", f"--rows={FLAGS.rows}",
               f"--domains={FLAGS.domains}", f"--seed={FLAGS.seed}", f"--epochs={FLAGS.epochs}",
               f"--batch_size={FLAGS.batch_size}"]
        proc = subprocess.run(cmd, env=dict(os.environ, **(env or {})), capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out):
            print(f"  {name} peer failed:\n{proc.stderr[-2000:]}", flush=True)
            return []
        with open(out) as f:
            peer = json.load(f)
    return [dict(r) for r in peer["results"]]


def run_peers() -> list:
    """Every peer's figures: DeepCTR (tf-keras) and DeepCTR-Torch, per domain and mixed."""
    results = run_peer("DeepCTR", FLAGS.peer_python, "peer_deepctr.py", "bench-peer", {"TF_USE_LEGACY_KERAS": "1"})
    for r in results:
        r.setdefault("configuration", "WDL (DeepCTR)")
        r.setdefault("path", "deepctr-fit")
    return results + run_peer("DeepCTR-Torch", FLAGS.peer_torch_python, "peer_torch.py", "bench-peer-torch")


PEER_PATHS = ("deepctr-fit", "deepctr-fit-mixed", "torch-fit", "torch-fit-mixed")


def format_table(results, header_lines) -> str:
    csv_speed = next((r["examples_per_second"] for r in results if r["path"] == "csv-pipeline"), None)
    peer_speed = next((r["examples_per_second"] for r in results if r["path"] == "deepctr-fit"), None)
    torch_speed = next((r["examples_per_second"] for r in results if r["path"] == "torch-fit"), None)
    rows = []
    for r in results:
        ratio = f"{r['examples_per_second'] / csv_speed:.2f}x" if csv_speed else "n/a"
        r["ratio_to_csv"] = r["examples_per_second"] / csv_speed if csv_speed else None
        r["ratio_to_deepctr"] = r["examples_per_second"] / peer_speed if peer_speed else None
        peer_ratio = f"{r['ratio_to_deepctr']:.2f}x" if peer_speed else "n/a"
        r["ratio_to_torch"] = r["examples_per_second"] / torch_speed if torch_speed else None
        torch_ratio = f"{r['ratio_to_torch']:.2f}x" if torch_speed else "n/a"
        epoch_s = sorted(r["epoch_seconds"])[len(r["epoch_seconds"]) // 2]
        rows.append((r["configuration"], r["path"], f"{r['examples_per_second']:,.0f}", f"{epoch_s:.2f}",
                     f"{r['warmup_seconds']:.1f}", ratio, peer_ratio, torch_ratio))
    titles = ("configuration", "path", "ex/s", "epoch s", "warm-up s", "vs csv", "vs DeepCTR", "vs Torch")
    widths = [max(len(t), *(len(row[i]) for row in rows)) for i, t in enumerate(titles)]
    align = ["<", "<", ">", ">", ">", ">", ">", ">"]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths))

    out = list(header_lines)
    out.append(line(titles))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def format_columns(titles, align, rows) -> list[str]:
    widths = [max(len(t), *(len(row[i]) for row in rows)) for i, t in enumerate(titles)]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    return [line(titles), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]


def format_peer_ratios(results) -> str:
    """Our trainer's WDL-MLoRA (and WDL-Base) against every peer figure of the run."""
    peers = [r for r in results if r["path"] in PEER_PATHS]
    ours = [r for r in results if r["path"] == "trainer" and r["configuration"] in ("WDL-MLoRA", "WDL-Base")]
    if not peers or not ours:
        return ""
    rows = []
    for p in peers:
        cells = [p["configuration"], p["path"], p.get("feeding", "per-domain"), f"{p['examples_per_second']:,.0f}"]
        cells += [f"{r['examples_per_second'] / p['examples_per_second']:.2f}x" for r in ours]
        rows.append(tuple(cells))
    titles = ("peer", "path", "feeding", "ex/s") + tuple(f"{r['configuration']} vs it" for r in ours)
    return "\n".join(["", "Our trainer against the peers (fed as their users feed them):"]
                     + format_columns(titles, ["<", "<", "<", ">"] + [">"] * len(ours), rows))


def format_roofline(results, peak) -> str:
    """FLOPs per example, achieved GFLOP/s and its share of the measured matmul peak."""
    rows = []
    for r in results:
        if not r.get("flops_per_example"):
            continue
        r["gflops"] = r["flops_per_example"] * r["examples_per_second"] / 1e9
        r["peak_share"] = r["gflops"] / peak["gflops"] if peak else None
        share = f"{100 * r['peak_share']:.1f} %" if peak else "n/a"
        rows.append((r["configuration"], r["path"], r.get("adapter_arithmetic", "-"),
                     f"{r['flops_per_example']:,}", f"{r['examples_per_second']:,.0f}", f"{r['gflops']:.1f}", share))
    if not rows:
        return ""
    out = [""]
    if peak:
        out.append(f"Roofline: tf.matmul float32 {peak['size']}x{peak['size']}, {peak['streams']} independent chains "
                   f"(this process's thread pools): {peak['gflops']:.1f} GFLOP/s, best of {len(peak['seconds'])}")
    out.append("train FLOP/ex: 3 x forward (2 m n per matmul row, 1 per bias/activation/dropout/adapter-sum element; "
               "gathers and optimizer left out)")
    out += format_columns(("configuration", "path", "adapters", "train FLOP/ex", "ex/s", "GFLOP/s", "of peak"),
                          ["<", "<", "<", ">", ">", ">", ">"], rows)
    speeds = {r["configuration"]: r for r in results if r["path"] == "trainer"}
    for name in FLAGS.models:
        base, mlora = speeds.get(f"{LABELS[name]}-Base"), speeds.get(f"{LABELS[name]}-MLoRA")
        if base and mlora:
            ratio = common.round_ratios(mlora, base)
            mlora["time_vs_base"] = ratio
            out.append(f"{LABELS[name]}: MLoRA's epoch takes {ratio['median']:.2f}x Base's time at {FLAGS.domains} "
                       f"domains (median of {ratio['rounds']} rounds, each timing both back to back: "
                       f"{ratio['min']:.2f}x-{ratio['max']:.2f}x), for "
                       f"{mlora['flops_per_example'] / base['flops_per_example']:.2f}x its FLOPs")
    return "\n".join(out)


def main(argv):
    del argv
    for value, valid, what in ((FLAGS.models, MODELS, "--models"), (FLAGS.adapters, ADAPTERS, "--adapters")):
        unknown = [v for v in value if v not in valid]
        if unknown:
            raise app.UsageError(f"{what}: unknown {unknown}. Valid: {', '.join(valid)}")
    if FLAGS.epochs < 1 or FLAGS.fit_epochs < 1:
        raise app.UsageError("--epochs and --fit_epochs must be >= 1")
    if FLAGS.matmul_size < 0:
        raise app.UsageError("--matmul_size must be >= 0 (0: no roofline)")
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

    configurations = {}
    for name in FLAGS.models:
        for adapter in FLAGS.adapters:
            configurations[(f"{LABELS[name]}-{LABELS[adapter]}", "trainer")] = (name, adapter, "fast")
    if FLAGS.original_loop and FLAGS.strategy == "default":
        # The yardstick (`--loop=original`: one pass per batch, Keras Dropout, clipped loss, ...).
        configurations[(f"{LABELS[KERAS_MODEL]}-{LABELS[KERAS_ADAPTER]}", "trainer-original")] = (
            KERAS_MODEL, KERAS_ADAPTER, "original")
    print(f"Our trainer: {len(configurations)} configurations, a warm-up epoch each, then {FLAGS.epochs} rounds "
          "of one timed epoch each", flush=True)
    for (configuration, path), result in bench_trainers(configurations, dataset, spec, strategy).items():
        record(configuration, path, result)
    keras_label = f"{LABELS[KERAS_MODEL]}-{LABELS[KERAS_ADAPTER]}"
    if not FLAGS.skip_keras_fit:
        record(keras_label, "keras-fit", bench_keras_fit(data, spec, strategy))
    if not FLAGS.skip_csv:
        record(keras_label, "csv-pipeline", bench_csv(data, spec, strategy))
    for peer in run_peers():
        results.append(peer)
        print(f"  {peer['configuration']:<12} {peer['path']:<13} {peer['examples_per_second']:>10,.0f} ex/s", flush=True)
    peak = flops.matmul_peak(size=FLAGS.matmul_size) if FLAGS.matmul_size > 0 else None

    info = common.machine_info()
    header = [
        "",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, os.cpu_count()={info['cpu_count']}, "
        f"strategy={FLAGS.strategy} ({strategy.num_replicas_in_sync} replica(s) in sync), "
        f"threads={FLAGS.threads} (intra_op, inter_op = {threads}; 0 = TF's choice)",
        f"{common.describe(data)}; batch {FLAGS.batch_size}",
        f"ex/s: median of {FLAGS.epochs} timed epochs (trainer: interleaved rounds), {FLAGS.fit_epochs} (keras-fit, csv-pipeline), "
        "each after 1 warm-up epoch",
        f"load average before/after: {load_before} / {info.get('loadavg')}",
        "",
    ]
    print(format_table(results, header))
    for block in (format_peer_ratios(results), format_roofline(results, peak)):
        if block:
            print(block)
    if FLAGS.json_out and distribute.is_chief(strategy):
        common.write_json(
            FLAGS.json_out,
            {
                "benchmark": "train_throughput",
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "machine": info,
                "loadavg_before": load_before,
                "settings": dict(
                    common.flag_settings(FLAGS, "fit_epochs", "strategy", "cpu_devices"),
                    replicas=strategy.num_replicas_in_sync,
                ),
                "matmul_peak": peak,
                "results": results,
            },
        )
        print(f"\nWrote {FLAGS.json_out}")


if __name__ == "__main__":
    app.run(main)
