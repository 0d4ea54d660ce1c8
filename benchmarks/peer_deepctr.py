"""Training throughput of DeepCTR 0.9.4's WDL on the benchmark data (`make bench-peer`).

Runs in its own venv (`.venv-peer`: deepctr 0.9.4, tf-keras 2.21, TensorFlow 2.21,
started with `TF_USE_LEGACY_KERAS=1`); it never imports `mlora_tf`. The data comes
from `benchmarks/common.py` with the same seed as `train_throughput.py`, so both
measure the very same rows.

The model: `deepctr.models.WDL` with `SparseFeat` uid/pid/domain (embedding_dim 8) in
both the linear and the deep part, dnn_hidden_units (256, 128, 64), dnn_dropout 0.5,
Adam(1e-3), binary cross-entropy. Training is DeepCTR's natural usage,
`model.fit(x, y, batch_size=1024, epochs=1, verbose=0)` on in-memory numpy columns, in
two modes (`--modes`):

* `per-domain` (path `deepctr-fit`): one `fit` per domain, domains in a fresh random
  order each epoch (as our trainer trains);
* `mixed` (path `deepctr-fit-mixed`): one `fit` over all training rows, which `fit`
  shuffles (mixed-domain batches).

Each mode trains a fresh model; reports examples/second, the median of `--epochs` timed
epochs after one warm-up epoch, and the model's training FLOPs per example
(`train_flops_per_example`). Prints; no assertions.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import common  # noqa: E402

flags.DEFINE_integer("epochs", 3, "Timed epochs (after one warm-up epoch); the median is reported.")
flags.DEFINE_integer("rows", common.DEFAULT_ROWS, "Training rows over all domains.")
flags.DEFINE_integer("domains", common.DEFAULT_DOMAINS, "Number of domains (sizes follow ML-1M occupations).")
flags.DEFINE_integer("batch_size", 1024, "Training batch size.")
flags.DEFINE_integer("seed", common.DEFAULT_SEED, "Seed of the data and of the model.")
flags.DEFINE_list("modes", ["per-domain", "mixed"], "Feeding modes to time (per-domain, mixed).")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON to this path.")
FLAGS = flags.FLAGS

MODES = common.PEER_MODES
PATHS = {"per-domain": "deepctr-fit", "mixed": "deepctr-fit-mixed"}


def build_wdl(vocab_sizes, seed):
    from deepctr.feature_column import SparseFeat
    from deepctr.models import WDL

    columns = [SparseFeat(f, vocabulary_size=int(vocab_sizes[f]), embedding_dim=8) for f in common.FEATURES]
    model = WDL(columns, columns, dnn_hidden_units=(256, 128, 64), dnn_dropout=0.5, seed=seed, task="binary")
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-3), loss="binary_crossentropy")
    return model


def train_flops_per_example(model) -> dict:
    """Training FLOPs per example of the model's dense layers, from its layers' weights.

    Same convention as `train_throughput.train_flops_per_example`: a matmul of a row by
    an `(m, n)` kernel is `2 m n` FLOPs; a bias, an activation and a dropout each cost
    one FLOP per output element; embedding gathers, the linear part's per-row sums and
    the optimizer update are left out. Training is 3x the forward pass.

    Returns:
        `{"forward_matmul", "forward_elementwise", "forward", "train"}` FLOPs per example.
    """
    matmul = elementwise = 0
    for layer in model.layers:
        if hasattr(layer, "kernels") and hasattr(layer, "dropout_rate"):  # deepctr.layers.DNN
            # A bias per kernel (`layer.bias` is their list), the activation, the dropout.
            per_unit = (1 if getattr(layer, "bias", None) else 0) + 1 + (1 if layer.dropout_rate > 0 else 0)
            for kernel in layer.kernels:
                n_in, n_out = (int(d) for d in kernel.shape)
                matmul += 2 * n_in * n_out
                elementwise += per_unit * n_out
        elif isinstance(layer, tf.keras.layers.Dense):
            n_in, n_out = (int(d) for d in layer.kernel.shape)
            matmul += 2 * n_in * n_out
            elementwise += n_out if layer.use_bias else 0
    forward = matmul + elementwise
    return {"forward_matmul": matmul, "forward_elementwise": elementwise, "forward": forward, "train": 3 * forward}


def time_mode(mode, data) -> dict:
    tf.keras.utils.set_random_seed(FLAGS.seed)
    model = build_wdl(data["vocab_sizes"], FLAGS.seed)

    def fit(x, y):
        model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0, shuffle=True)

    run_epoch = common.peer_epoch(mode, data, fit, FLAGS.seed)
    result = common.time_epochs(run_epoch, FLAGS.epochs)
    flops = train_flops_per_example(model)
    result.update(configuration="WDL (DeepCTR)", path=PATHS[mode], feeding=mode,
                  flops_per_example=flops["train"], flops=flops)
    return result


def main(argv):
    del argv
    if FLAGS.epochs < 1:
        raise app.UsageError("--epochs must be >= 1")
    problem = common.check_peer_modes(FLAGS.modes)
    if problem:
        raise app.UsageError(problem)
    keras_module = tf.keras.__name__
    if not keras_module.startswith("tf_keras"):
        print(f"warning: tf.keras is {keras_module}, not tf-keras; set TF_USE_LEGACY_KERAS=1", file=sys.stderr)
    import deepctr

    tf_keras_version = importlib.metadata.version("tf-keras")

    load_before = common.machine_info().get("loadavg")
    data = common.make_data(rows=FLAGS.rows, n_domains=FLAGS.domains, seed=FLAGS.seed)
    print(f"Data: {common.describe(data)}", flush=True)
    results = []
    for mode in FLAGS.modes:
        result = time_mode(mode, data)
        results.append(result)
        print(f"  {result['configuration']:<14} {result['path']:<17} {result['examples_per_second']:>10,.0f} ex/s",
              flush=True)
    info = common.machine_info()
    common.print_peer_run(
        f"TensorFlow {tf.__version__}, tf.keras={keras_module.split('.')[0]} {tf_keras_version}, "
        f"DeepCTR {deepctr.__version__}",
        data, FLAGS.batch_size, FLAGS.epochs, load_before, info, results,
    )
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
                "settings": common.flag_settings(FLAGS, "modes"),
                "results": results,
            },
        )
        print(f"\nWrote {FLAGS.json_out}")


if __name__ == "__main__":
    app.run(main)
