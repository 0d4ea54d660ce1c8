"""Training throughput of DeepCTR 0.9.4's WDL on the benchmark data (`make bench-peer`).

Runs in its own venv (`.venv-peer`: deepctr 0.9.4, tf-keras 2.21, TensorFlow 2.21,
started with `TF_USE_LEGACY_KERAS=1`); it never imports `mlora_tf`. The data comes
from `benchmarks/common.py` with the same seed as `train_throughput.py`, so both
measure the very same rows.

The model: `deepctr.models.WDL` with `SparseFeat` uid/pid/domain (embedding_dim 8) in
both the linear and the deep part, dnn_hidden_units (256, 128, 64), dnn_dropout 0.5,
Adam(1e-3), binary cross-entropy. Training is DeepCTR's natural usage, one domain at
a time: `model.fit(x, y, batch_size=1024, epochs=1, verbose=0)` on in-memory numpy
columns, domains in a fresh random order each epoch. Reports examples/second, the
median of `--epochs` timed epochs after one warm-up epoch. Prints; no assertions.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import common  # noqa: E402

flags.DEFINE_integer("epochs", 3, "Timed epochs (after one warm-up epoch); the median is reported.")
flags.DEFINE_integer("rows", common.DEFAULT_ROWS, "Training rows over all domains.")
flags.DEFINE_integer("domains", common.DEFAULT_DOMAINS, "Number of domains (sizes follow ML-1M occupations).")
flags.DEFINE_integer("batch_size", 1024, "Training batch size.")
flags.DEFINE_integer("seed", common.DEFAULT_SEED, "Seed of the data and of the model.")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON to this path.")
FLAGS = flags.FLAGS


def build_wdl(vocab_sizes, seed):
    from deepctr.feature_column import SparseFeat
    from deepctr.models import WDL

    columns = [SparseFeat(f, vocabulary_size=int(vocab_sizes[f]), embedding_dim=8) for f in common.FEATURES]
    model = WDL(columns, columns, dnn_hidden_units=(256, 128, 64), dnn_dropout=0.5, seed=seed, task="binary")
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-3), loss="binary_crossentropy")
    return model


def main(argv):
    del argv
    if FLAGS.epochs < 1:
        raise app.UsageError("--epochs must be >= 1")
    keras_module = tf.keras.__name__
    if not keras_module.startswith("tf_keras"):
        print(f"warning: tf.keras is {keras_module}, not tf-keras; set TF_USE_LEGACY_KERAS=1", file=sys.stderr)
    import deepctr

    tf_keras_version = importlib.metadata.version("tf-keras")

    load_before = common.machine_info().get("loadavg")
    data = common.make_data(rows=FLAGS.rows, n_domains=FLAGS.domains, seed=FLAGS.seed)
    print(f"Data: {common.describe(data)}", flush=True)
    per_domain = common.domain_rows(data["splits"]["train"], data["n_domains"])
    inputs = [({f: rows[f] for f in common.FEATURES}, rows["label"]) for rows in per_domain]

    tf.keras.utils.set_random_seed(FLAGS.seed)
    model = build_wdl(data["vocab_sizes"], FLAGS.seed)
    rng = np.random.default_rng(FLAGS.seed)

    def run_epoch():
        examples = 0
        for d in rng.permutation(len(inputs)):
            x, y = inputs[d]
            if len(y) == 0:
                continue
            model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0)
            examples += len(y)
        return examples

    result = common.time_epochs(run_epoch, FLAGS.epochs)
    result.update(configuration="WDL (DeepCTR)", path="deepctr-fit")
    info = common.machine_info()
    print()
    print(f"TensorFlow {tf.__version__}, tf.keras={keras_module.split('.')[0]} {tf_keras_version}, "
          f"DeepCTR {deepctr.__version__}, os.cpu_count()={info['cpu_count']}")
    print(f"{common.describe(data)}; batch {FLAGS.batch_size}; median of {FLAGS.epochs} epochs after 1 warm-up")
    print(f"load average before/after: {load_before} / {info.get('loadavg')}")
    print()
    epoch_s = sorted(result["epoch_seconds"])[len(result["epoch_seconds"]) // 2]
    print(f"{'configuration':<14}  {'path':<11}  {'ex/s':>8}  {'epoch s':>7}  {'warm-up s':>9}")
    print(f"{'-' * 14}  {'-' * 11}  {'-' * 8}  {'-' * 7}  {'-' * 9}")
    print(f"{result['configuration']:<14}  {result['path']:<11}  {result['examples_per_second']:>8,.0f}  "
          f"{epoch_s:>7.2f}  {result['warmup_seconds']:>9.1f}")
    if FLAGS.json_out:
        common.write_json(
            FLAGS.json_out,
            {
                "benchmark": "peer_deepctr",
                "tensorflow": tf.__version__,
                "tf_keras": tf_keras_version,
                "tf_keras_module": keras_module,
                "deepctr": deepctr.__version__,
                "machine": info,
                "loadavg_before": load_before,
                "settings": {
                    "rows": FLAGS.rows,
                    "domains": FLAGS.domains,
                    "batch_size": FLAGS.batch_size,
                    "epochs": FLAGS.epochs,
                    "seed": FLAGS.seed,
                },
                "results": [result],
            },
        )
        print(f"\nWrote {FLAGS.json_out}")


if __name__ == "__main__":
    app.run(main)
