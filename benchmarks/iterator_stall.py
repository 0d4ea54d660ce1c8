"""How a training pass is fed: a `tf.data` iterator per step against blocks of rows.

    python benchmarks/iterator_stall.py [--rows=1000000] [--rounds=4] [--batch_size=1024]

One process, one WDL + MLoRA trainer (hidden 256,128,64, the fast loop, the `joint`
phase) on one domain of generated rows held in memory, in the shuffle buffer's order.
Each round times three passes over the same batches, one after the other:

- `memory`: the in-memory pass (`Trainer._train_pass`: one `tf.function` call slices
  the pass's rows into batches in a graph loop);
- `iterator`: the same step fed from a `tf.data` iterator inside one `tf.function`
  (`for batch in iterator`), each element one prepared batch: the streamed pass's form
  before 2026-12-07;
- `blocks`: the streamed pass as it is (`Trainer._make_stream_pass`): numpy blocks of
  64 batches, one `tf.function` call per block, sliced as the in-memory pass slices.

It prints each pass's ex/s and milliseconds per step. On the 2-core machine this
project is tested on, the `iterator` pass ran, pass by pass, either at the speed of the
others or at exactly 4.9 (sometimes 9.8) ms per step; `memory` and `blocks` never
showed that (docs/performance.md, "Streaming"). The figures depend on the machine; the
script makes no assertion.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows of the timed domain.")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import numpy as np
    import tensorflow as tf

    import common
    from mlora_tf.data import load_dataset
    from mlora_tf.runtime import configure_threads

    configure_threads()
    print(f"host: {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    data = load_dataset("synthetic", seed=args.seed, n_rows=int(args.rows / 0.98) + 8, n_domains=1,
                        n_users=100_000, n_items=50_000, fractions=(0.98, 0.01, 0.01))
    trainer, _ = common.joint_trainer(data, batch_size=args.batch_size, seed=args.seed)
    tensors = trainer._domain_tensors("train", 0)
    n = int(tensors[-1].shape[0])
    order = trainer._buffer_order(0, n)
    ordered = [tf.gather(t, order) for t in tensors]
    steps = -(-n // args.batch_size)

    # `iterator`: one prepared batch per element, the step inside a loop over the iterator.
    elements = tf.data.Dataset.from_tensor_slices(tuple(ordered)).batch(args.batch_size)
    elements = elements.cache()
    step = trainer._make_step(True)

    @tf.function
    def iterator_pass(iterator):
        loss = tf.constant(0.0)
        for batch in iterator:
            loss += step(*batch)
        return loss

    # `blocks`: the streamed pass on numpy blocks of 64 batches.
    block_rows = 64 * args.batch_size
    columns = [t.numpy() for t in ordered]
    names = list(trainer.features) + ["label"]
    stream_pass = trainer._make_stream_pass(True)

    def blocks():
        for start in range(0, n, block_rows):
            yield {c: v[start:start + block_rows] for c, v in zip(names, columns)}

    passes = {
        "memory": lambda: trainer._train_pass(order, *tensors),
        "iterator": lambda: iterator_pass(iter(elements.prefetch(tf.data.AUTOTUNE))),
        "blocks": lambda: stream_pass(blocks()),
    }
    for run in passes.values():  # trace, fill the cache
        run()
    print(f"{n:,} rows, {steps} steps a pass", flush=True)
    figures = {name: [] for name in passes}
    for r in range(args.rounds):
        for name, run in passes.items():
            start = time.perf_counter()
            out = run()
            float(out[0] if isinstance(out, tuple) else out)
            seconds = time.perf_counter() - start
            figures[name].append(seconds)
            print(f"round {r}  {name:<9} {n / seconds:10,.0f} ex/s  {1000 * seconds / steps:6.2f} ms/step", flush=True)
    print("median ex/s: " + ", ".join(f"{k} {n / float(np.median(v)):,.0f}" for k, v in figures.items()))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
