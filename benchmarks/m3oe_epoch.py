"""Seconds per training epoch of the multi-task models on ML-1M-sized data.

M3oE's MovieLens-1M setup has 1,000,209 rows, 800,167 of them in training, trained in
batches of 40,960 (m3oe.md §1.5). This script generates `synthetic-mt` data of that
size (same schema: 7 sparse features, `age`, tasks click and like, 3 age domains),
runs one warm-up epoch (tracing included), then times `--epochs` training epochs of
`MultiTaskTrainer.train_epoch` (the pass and the fusion step; no validation) and
prints the median seconds per epoch and examples per second for each model.

    python benchmarks/m3oe_epoch.py [--models=m3oe,shared_bottom] [--epochs=3]
        [--batch_size=40960] [--n_rows=1000209] [--json_out=PATH]
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mlora_tf.cli.common import configure_threads_from_flags, define_thread_flags  # noqa: E402

flags.DEFINE_list("models", ["m3oe"], "Multi-task models to time (mlora-train --list_models).")
flags.DEFINE_integer("epochs", 3, "Timed epochs after the warm-up epoch.")
flags.DEFINE_integer("batch_size", 40960, "Training batch (the reference's 4096*10).")
flags.DEFINE_integer("n_rows", 1_000_209, "Rows generated (80% train: 800,167 for the default).")
flags.DEFINE_string("fusion_schedule", "paper", "paper or as_coded.")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON here.")
define_thread_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    threads = configure_threads_from_flags(large_ops=True)
    import keras

    from mlora_tf.config import MultiTaskTrainConfig
    from mlora_tf.data.registry import load_dataset
    from mlora_tf.models import MultiTaskModelConfig, build_multitask_model
    from mlora_tf.models import DataSpec
    from mlora_tf.training.multitask import MultiTaskTrainer

    t0 = time.time()
    dataset = load_dataset("synthetic-mt", n_rows=FLAGS.n_rows, n_users=6040, n_items=3706)
    print(f"data: {dataset.num_rows('train'):,} training rows, generated in {time.time() - t0:.1f}s; "
          f"batch {FLAGS.batch_size}; threads {threads}")
    results = {}
    for name in FLAGS.models:
        keras.utils.set_random_seed(2022)
        model = build_multitask_model(MultiTaskModelConfig(name=name), DataSpec.from_dataset(dataset))
        trainer = MultiTaskTrainer(
            model, dataset, MultiTaskTrainConfig(batch_size=FLAGS.batch_size, fusion_schedule=FLAGS.fusion_schedule)
        )
        t = time.time()
        trainer.train_epoch()
        warmup = time.time() - t
        seconds = []
        for _ in range(FLAGS.epochs):
            t = time.time()
            _, rows = trainer.train_epoch()
            seconds.append(time.time() - t)
        median = statistics.median(seconds)
        results[name] = {
            "warmup_seconds": warmup,
            "epoch_seconds": seconds,
            "median_epoch_seconds": median,
            "examples_per_second": rows / median,
            "params": int(sum(int(v.numpy().size) for v in model.trainable_weights)),
        }
        print(f"{name:<14} warm-up {warmup:6.1f}s  epoch median {median:6.2f}s  "
              f"({rows / median:,.0f} ex/s; epochs {', '.join(f'{s:.2f}' for s in seconds)})", flush=True)
    if FLAGS.json_out:
        from mlora_tf.io import atomic_write_json

        atomic_write_json(FLAGS.json_out, {
            "batch_size": FLAGS.batch_size, "train_rows": dataset.num_rows("train"), "threads": threads,
            "models": results,
        })


if __name__ == "__main__":
    app.run(main)
