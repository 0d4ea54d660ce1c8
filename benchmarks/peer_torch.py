"""Training throughput of DeepCTR-Torch's WDL on the benchmark data (`make bench-peer-torch`).

The PyTorch peer. Runs in its own venv (`.venv-peer-torch`: torch 2.13 CPU,
deepctr-torch 0.3.0); it never imports `mlora_tf`, TensorFlow or Keras. The data comes
from `benchmarks/common.py` with the same seed as `train_throughput.py`, so both
measure the very same rows.

The model is the same as `peer_deepctr.py`'s: `deepctr_torch.models.WDL` with
`SparseFeat` uid/pid/domain (embedding_dim 8) in both the linear and the deep part,
dnn_hidden_units (256, 128, 64), dnn_dropout 0.5 and DeepCTR-Torch's default L2
(1e-5 on the embeddings and the linear part), `torch.optim.Adam(lr=1e-3)`, binary
cross-entropy (DeepCTR-Torch sums it over the batch). Torch runs `--threads` intra-op
threads (default `os.cpu_count()`, the machine's cores).

It is fed the way a DeepCTR-Torch user feeds it, `model.fit(x, y, batch_size=1024,
epochs=1, verbose=0)` on in-memory numpy columns, in two modes (`--modes`):

* `per-domain`: one `fit` per domain, domains in a fresh random order each epoch (as
  our trainer and the DeepCTR peer train);
* `mixed`: one `fit` over all training rows, which `fit` shuffles (mixed-domain batches).

Each mode trains a fresh model; reports examples/second, the median of `--epochs`
timed epochs after one warm-up epoch, and the training FLOPs per example of the model
(`train_flops_per_example`). Prints; no assertions.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from absl import app, flags  # noqa: E402

import common  # noqa: E402

MODES = common.PEER_MODES
PATHS = {"per-domain": "torch-fit", "mixed": "torch-fit-mixed"}

flags.DEFINE_integer("epochs", 3, "Timed epochs (after one warm-up epoch); the median is reported.")
flags.DEFINE_integer("rows", common.DEFAULT_ROWS, "Training rows over all domains.")
flags.DEFINE_integer("domains", common.DEFAULT_DOMAINS, "Number of domains (sizes follow ML-1M occupations).")
flags.DEFINE_integer("batch_size", 1024, "Training batch size.")
flags.DEFINE_integer("seed", common.DEFAULT_SEED, "Seed of the data, the model and the domain order.")
flags.DEFINE_integer("threads", os.cpu_count() or 1, "torch.set_num_threads: intra-op threads (default: the cores).")
flags.DEFINE_list("modes", list(MODES), f"Feeding modes to time ({', '.join(MODES)}).")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON to this path.")
FLAGS = flags.FLAGS


def build_wdl(vocab_sizes, seed):
    from deepctr_torch.inputs import SparseFeat
    from deepctr_torch.models import WDL

    columns = [SparseFeat(f, vocabulary_size=int(vocab_sizes[f]), embedding_dim=8) for f in common.FEATURES]
    model = WDL(columns, columns, dnn_hidden_units=(256, 128, 64), dnn_dropout=0.5, seed=seed, task="binary",
                device="cpu")
    model.compile(torch.optim.Adam(model.parameters(), lr=1e-3), "binary_crossentropy")
    return model


def train_flops_per_example(model: torch.nn.Module) -> dict:
    """Training FLOPs per example of the model's dense layers, from its modules.

    Same convention as `train_throughput.train_flops_per_example`: a matmul of a row by
    an `(m, n)` weight is `2 m n` FLOPs; a bias, an activation and a dropout each cost
    one FLOP per output element; embedding gathers, the linear part's per-row sums and
    the optimizer update are left out. Training is 3x the forward pass (the backward
    pass computes two matmuls per forward one).

    Returns:
        `{"forward_matmul", "forward_elementwise", "forward", "train"}` FLOPs per example.
    """
    matmul = elementwise = 0
    # Dense stacks (deepctr_torch.layers.DNN): an activation, and a dropout when its
    # rate is positive, after every linear layer.
    per_unit = {}
    for module in model.modules():
        if hasattr(module, "linears") and hasattr(module, "activation_layers"):
            rate = float(getattr(module, "dropout_rate", 0.0) or 0.0)
            for linear in module.linears:
                per_unit[id(linear)] = 1 + (1 if rate > 0 else 0)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            n_in, n_out = module.in_features, module.out_features
            matmul += 2 * n_in * n_out
            elementwise += n_out * ((1 if module.bias is not None else 0) + per_unit.get(id(module), 0))
    forward = matmul + elementwise
    return {"forward_matmul": matmul, "forward_elementwise": elementwise, "forward": forward, "train": 3 * forward}


def quiet_fit(model, x, y, batch_size):
    """`model.fit(..., verbose=0)`; DeepCTR-Torch prints two lines per call even then."""
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)


def time_mode(mode, data, seed) -> dict:
    torch.manual_seed(seed)
    model = build_wdl(data["vocab_sizes"], seed)
    run_epoch = common.peer_epoch(mode, data, lambda x, y: quiet_fit(model, x, y, FLAGS.batch_size), seed)
    result = common.time_epochs(run_epoch, FLAGS.epochs)
    flops = train_flops_per_example(model)
    result.update(
        configuration="WDL (DeepCTR-Torch)",
        path=PATHS[mode],
        feeding=mode,
        flops_per_example=flops["train"],
        flops=flops,
    )
    return result


def main(argv):
    del argv
    if FLAGS.epochs < 1:
        raise app.UsageError("--epochs must be >= 1")
    problem = common.check_peer_modes(FLAGS.modes)
    if problem:
        raise app.UsageError(problem)
    if FLAGS.threads < 1:
        raise app.UsageError("--threads must be >= 1")
    torch.set_num_threads(FLAGS.threads)
    deepctr_torch_version = importlib.metadata.version("deepctr-torch")

    load_before = common.machine_info().get("loadavg")
    data = common.make_data(rows=FLAGS.rows, n_domains=FLAGS.domains, seed=FLAGS.seed)
    print(f"Data: {common.describe(data)}", flush=True)
    results = []
    for mode in FLAGS.modes:
        result = time_mode(mode, data, FLAGS.seed)
        results.append(result)
        print(f"  {result['configuration']:<20} {result['path']:<15} {result['examples_per_second']:>10,.0f} ex/s",
              flush=True)

    info = common.machine_info()
    common.print_peer_run(
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads, "
        f"{torch.get_num_interop_threads()} inter-op), DeepCTR-Torch {deepctr_torch_version}",
        data, FLAGS.batch_size, FLAGS.epochs, load_before, info, results,
    )
    if FLAGS.json_out:
        common.write_json(
            FLAGS.json_out,
            {
                "benchmark": "peer_torch",
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "torch_interop_threads": torch.get_num_interop_threads(),
                "deepctr_torch": deepctr_torch_version,
                "machine": info,
                "loadavg_before": load_before,
                "settings": common.flag_settings(FLAGS, "threads", "modes"),
                "results": results,
            },
        )
        print(f"\nWrote {FLAGS.json_out}")


if __name__ == "__main__":
    app.run(main)
