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
save, and each part's ratio +MLoRA / Base.

Then (unless `--no_trace`) it traces one loop of `step, 1 group` and of `step` with
`tf.profiler` and reads the trace's host plane itself (`xplane.pb`; no TensorBoard
plugin needed): of the executor threads' capacity (threads x wall time) per step, how
much each kind of op took (`CATEGORIES`: dense matmuls, adapter matmuls, the rest of
the adapters, dropout, embeddings, the optimizer, other ops), how much the executor
spent around its kernels (scheduling, and ops too small to trace), and how much the
threads sat idle. The figures depend on the machine and on whatever else runs on it;
the script makes no assertion.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import platform
import statistics
import sys
import tempfile
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
TRACED = ("step, 1 group", "step")
MATMULS = ("MatMul", "_FusedMatMul", "_MklMatMul", "_MklFusedMatMul", "_MklNativeFusedMatMul", "BatchMatMulV2",
           "_MklBatchMatMulV2")
# The trace's own markers, not ops.
MARKERS = ("StartRegion", "StopRegion", "Record", "MemoryAllocation", "MemoryDeallocation", "ExecutorDoneCallback")
CATEGORIES = ("dense matmuls", "adapter matmuls", "adapters, other", "dropout", "embeddings", "optimizer",
              "other ops", "executor", "idle")


def op_category(name: str, op_type: str) -> str:
    """The `CATEGORIES` entry of one traced op, from its graph name and type."""
    path = name.lower()
    if op_type in ("ResourceApplyAdam", "ResourceApplyAdamWithAmsgrad", "AssignAddVariableOp"):
        return "optimizer"
    if "dropout" in path:
        return "dropout"
    if "adapter" in path or (op_type == "Pad" and "dense_stack" in path):
        # (The Pads under the stack pad a batch's slot gradients into its adapter variables.)
        return "adapter matmuls" if op_type in MATMULS else "adapters, other"
    if op_type in MATMULS:
        return "dense matmuls"
    if "emb" in path or "linear_logit" in path or op_type in ("UnsortedSegmentSum", "DynamicStitch"):
        return "embeddings"
    return "other ops"


def trace_thread_time(run, steps: int) -> dict:
    """Milliseconds per step of every `CATEGORIES` entry in one traced call of `run()`
    (`steps` steps), over the executor threads' capacity (threads x traced wall time):
    op kernels by kind, the executor's time around them, idle time."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory(prefix="mlora_tf_trace_") as logdir:
        tf.profiler.experimental.start(logdir, options=tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=3, python_tracer_level=0, device_tracer_level=0))
        try:
            float(run())
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            raise RuntimeError(f"tf.profiler wrote no *.xplane.pb under {logdir}")
        space = xplane_pb2.XSpace()
        with open(paths[0], "rb") as f:
            space.ParseFromString(f.read())
    totals = collections.defaultdict(float)  # picoseconds
    threads, first, last = set(), None, None
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's inter-op threads
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                name, _, op_type = label.rpartition(":")
                if op_type in MARKERS:
                    continue
                threads.add(line.name)
                start = line.timestamp_ns * 1000 + event.offset_ps
                first = start if first is None else min(first, start)
                last = start + event.duration_ps if last is None else max(last, start + event.duration_ps)
                if op_type == "Process":  # one executor turn: the ops it ran and its own work
                    totals["busy"] += event.duration_ps
                else:
                    totals[op_category(name, op_type)] += event.duration_ps
    if first is None:
        raise RuntimeError("the trace holds no executor thread events")
    capacity = len(threads) * (last - first)
    ops_total = sum(v for k, v in totals.items() if k != "busy")
    totals["executor"] = max(totals.pop("busy") - ops_total, 0.0)
    totals["idle"] = max(capacity - ops_total - totals["executor"], 0.0)
    out = {c: totals.get(c, 0.0) / steps / 1e9 for c in CATEGORIES}
    out.update(capacity=capacity / steps / 1e9, threads=len(threads), wall=(last - first) / steps / 1e9)
    return out


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
    result = {part: 1000 * statistics.median(t) / steps for part, t in times.items()} | {
        "steps": steps, "batch_parts": trainers[None].batch_parts}
    if args.trace:
        for part in TRACED:
            trainer._restore(snapshot)
            result["trace " + part] = trace_thread_time(runs[part], steps)
    return result


def print_traces(results: dict) -> None:
    """The traced thread time of every configuration, ms per step and share of capacity."""
    for part in TRACED:
        print()
        print(f"`{part}`, traced: ms per step of the executor threads' time (threads x traced wall), by kind of work "
              "(share of that capacity); tracing itself slows the step (untraced vs traced wall, ms):")
        print(f"{'configuration':<12}{'untraced':>9}{'traced':>8}{'threads':>8}" + "".join(f"{c:>17}" for c in CATEGORIES))
        for (name, adapter), r in results.items():
            t = r["trace " + part]
            print(f"{name + '+' + adapter:<12}{r[part]:9.3f}{t['wall']:8.3f}{t['threads']:8d}" + "".join(
                f"{t[c]:8.3f} ({t[c] / t['capacity']:5.1%})" for c in CATEGORIES))


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
    parser.add_argument("--no_trace", dest="trace", action="store_false",
                        help="Skip the tf.profiler traces of the step (thread time by kind of work).")
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
        print(f"{'':<12} the update on fixed gradients adds {r['+update(fixed)'] - r['+dense+L2']:.3f} ms "
              f"(alone {r['apply']:.3f}); on the computed ones {whole - r['+update(fixed)']:.3f} ms more: fixed "
              "gradients let it run beside the forward pass, computed ones only after the backward pass")
    for name in args.models.split(","):
        if (name, "none") in results and (name, "mlora") in results:
            base, lora = results[(name, "none")], results[(name, "mlora")]
            print(f"{name} +MLoRA / Base: " + ", ".join(f"{p} {lora[p] / base[p]:.2f}x" for p in PARTS))
    if args.trace:
        print_traces(results)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
