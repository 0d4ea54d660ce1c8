"""Where a training step's time goes: the step taken apart, each part timed alone.

    python benchmarks/step_profile.py [--models=wdl,mlp] [--adapters=none,mlora]
        [--rows=600000] [--domains=21] [--batch_size=1024] [--steps=200] [--rounds=5]

For each configuration (the `make bench` data: `benchmarks/common.py`, 21 domains,
batch 1024, the fast loop, the `joint` phase) the script takes `--steps` one-domain
batches of the largest domain (the trainer's batches: one domain each, in the shuffle
buffer's order) and times, each as one `tf.function` with a graph loop over the same
batches (the in-memory pass's form), median of `--rounds`:

- `embed`: the model from its inputs to the dense stack's input (embedding lookups
  and the concatenation; WDL's wide part is not in it);
- `forward`: the whole model in training mode and the loss;
- `forward+backward`: the same and the gradients of the phase's variables;
- `+dense+L2`: forward+backward, the sparse table gradients made dense and the
  closed-form L2 terms added (what the step hands the update);
- `+update(fixed)`: that, then the update in the same step on fixed gradients (so it
  need not wait for the computed ones);
- `apply`: the optimizer's update alone, on fixed gradients;
- `step, 1 group`: the trainer's step on whole batches (`batch_parts=1`);
- `step`: the trainer's step as it runs (`batch_parts=2` on a CPU host: two row groups
  whose forward and backward passes run on the two cores at once).

It prints milliseconds per step of each, the shares of `step, 1 group` that the
forward pass, the backward pass, the update and the rest take, what the row groups
save, and each part's ratio +MLoRA / Base. The figures depend on the machine and on
whatever else runs on it; the script makes no assertion.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import common  # noqa: E402
from mlora_tf.data.dataset import MultiDomainDataset  # noqa: E402
from mlora_tf.models.builder import DENSE_STACK_NAME  # noqa: E402
from mlora_tf.runtime import configure_threads  # noqa: E402
from mlora_tf.training import Trainer  # noqa: E402
from mlora_tf.training.trainer import _l2_factor  # noqa: E402

PARTS = ("embed", "forward", "forward+backward", "+dense+L2", "+update(fixed)", "apply", "step, 1 group", "step")


def profile(name: str, adapter: str, dataset, args) -> dict:
    """Milliseconds per step of every part of `PARTS` for one configuration."""
    trainer, phase = common.joint_trainer(dataset, name, adapter, args.batch_size, args.seed, batch_parts=1)
    model = trainer.model
    trainers = {1: trainer, None: Trainer(model, dataset, trainer.config)}
    trainers[None]._enter_phase(phase)
    domain = int(np.argmax([dataset.num_rows("train", d) for d in range(dataset.n_domains)]))
    tensors = trainer._domain_tensors("train", domain)
    n = min(int(tensors[-1].shape[0]), args.steps * args.batch_size)
    order = trainer._buffer_order(("profile", domain), int(tensors[-1].shape[0]))[:n]
    rows = [tf.gather(t, order) for t in tensors]
    steps = -(-n // args.batch_size)
    variables = trainer.train_variables
    embed_model = keras.Model(model.inputs, model.get_layer(DENSE_STACK_NAME).input)

    def looped(body):
        @tf.function
        def run(*columns):
            total = tf.constant(0.0)
            for i in tf.range(steps):
                start = i * args.batch_size
                end = tf.minimum(start + args.batch_size, n)
                total += body(*(c[start:end] for c in columns))
            return total

        return lambda: run(*rows)

    def embed(*batch):
        out = embed_model(trainer._model_inputs(batch[:-1]), training=True)
        out = out if isinstance(out, (list, tuple)) else [out]
        return tf.add_n([tf.reduce_sum(o) for o in out if o.dtype.is_floating])

    def forward(*batch):
        with trainer._single_domain(True):
            return trainer._batch_loss(*batch)

    def forward_backward(*batch):
        with tf.GradientTape() as tape, trainer._single_domain(True):
            loss = trainer._batch_loss(*batch)
        gradients = tape.gradient(loss, variables)
        return loss + tf.add_n([tf.reduce_sum(tf.convert_to_tensor(g)[:1]) for g in gradients])

    fixed = [tf.constant(np.full(v.shape, 1e-6, "float32")) for v in variables]
    l2 = [_l2_factor(v) for v in variables]

    def handed_over(batch):
        with tf.GradientTape() as tape, trainer._single_domain(True):
            loss = trainer._batch_loss(*batch)
        gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        gradients = [g if f is None else g + (2.0 * f) * v.value for g, v, f in zip(gradients, variables, l2)]
        return loss + tf.add_n([tf.reduce_sum(g[:1]) for g in gradients])

    def with_fixed_update(*batch):
        out = handed_over(batch)
        trainer.optimizer.apply(fixed, variables)
        return out

    def apply(*batch):
        trainer.optimizer.apply(fixed, variables)
        return tf.constant(0.0)

    runs = {
        "embed": looped(embed),
        "forward": looped(forward),
        "forward+backward": looped(forward_backward),
        "+dense+L2": looped(lambda *batch: handed_over(batch)),
        "+update(fixed)": looped(with_fixed_update),
        "apply": looped(apply),
        "step, 1 group": looped(trainers[1]._make_step(True)),
        "step": looped(trainers[None]._make_step(True)),
    }
    snapshot = trainer._snapshot()
    for run in runs.values():  # trace
        float(run())
    times = {part: [] for part in PARTS}
    for _ in range(args.rounds):
        for part, run in runs.items():
            trainer._restore(snapshot)
            start = time.perf_counter()
            float(run())
            times[part].append(time.perf_counter() - start)
    return {part: 1000 * statistics.median(t) / steps for part, t in times.items()} | {
        "steps": steps, "batch_parts": trainers[None].batch_parts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wdl,mlp")
    parser.add_argument("--adapters", default="none,mlora")
    parser.add_argument("--rows", type=int, default=common.DEFAULT_ROWS)
    parser.add_argument("--domains", type=int, default=common.DEFAULT_DOMAINS)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200, help="Batches per timed loop.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=common.DEFAULT_SEED)
    args = parser.parse_args()
    configure_threads()
    print(f"host: {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    data = common.make_data(args.rows, args.domains, args.seed)
    dataset = MultiDomainDataset(name="bench-synthetic", n_domains=data["n_domains"], vocab_sizes=data["vocab_sizes"],
                                 domain_names=data["domain_names"], splits=data["splits"], info={})
    results = {}
    for name in args.models.split(","):
        for adapter in args.adapters.split(","):
            results[(name, adapter)] = profile(name, adapter, dataset, args)
            r = results[(name, adapter)]
            print(f"{name}+{adapter}: " + ", ".join(f"{p} {r[p]:.3f}" for p in PARTS) + " ms/step", flush=True)
    print()
    print(f"ms per step of {args.batch_size} rows (median of {args.rounds} loops of {args.steps} steps):")
    header = f"{'configuration':<12}" + "".join(f"{p:>17}" for p in PARTS)
    print(header)
    for (name, adapter), r in results.items():
        print(f"{name + '+' + adapter:<12}" + "".join(f"{r[p]:17.3f}" for p in PARTS))
    print()
    print("shares of `step, 1 group`: forward, backward (forward+backward - forward), update (apply), "
          "rest; what 2 row groups save:")
    for (name, adapter), r in results.items():
        whole = r["step, 1 group"]
        backward = r["forward+backward"] - r["forward"]
        rest = whole - r["forward+backward"] - r["apply"]
        print(f"{name + '+' + adapter:<12} forward {r['forward'] / whole:5.1%} (embed {r['embed'] / whole:5.1%})  "
              f"backward {backward / whole:5.1%}  update {r['apply'] / whole:5.1%}  rest {rest / whole:6.1%}  "
              f"row groups: {whole:.3f} -> {r['step']:.3f} ms ({whole / r['step']:.2f}x)")
        print(f"{'':<12} the tail: update in the step on fixed gradients "
              f"{r['+update(fixed)'] - r['+dense+L2']:.3f} ms (alone {r['apply']:.3f}); waiting on the computed ones "
              f"{whole - r['+update(fixed)']:.3f} ms")
    for name in args.models.split(","):
        if (name, "none") in results and (name, "mlora") in results:
            base, lora = results[(name, "none")], results[(name, "mlora")]
            print(f"{name} +MLoRA / Base: " + ", ".join(f"{p} {lora[p] / base[p]:.2f}x" for p in PARTS))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
