"""Wall time of the full Table-2 grid (10 backbones x {Base, +MLoRA}, 1 seed) on
ML-1M-sized data: the synthetic generator with MovieLens-1M's shape (1,000,209 rows,
6,040 users, 3,952 items, 2 domains), split 60/20/20 per domain like ML-gen.

Every run trains to early stopping exactly as `make reproduce-table2` does (same
driver code, same defaults). Prints per backbone the training examples/second of Base
and +MLoRA side by side, epochs and seconds, and the grid's total wall time.

    python benchmarks/table2_time.py [--models=...] [--max_epochs=N] [--json_out=PATH]
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from mlora_tf.runtime import configure_threads  # noqa: E402

BACKBONES = ("mlp", "star", "wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
ML1M_SHAPE = {"n_rows": 1_000_209, "n_users": 6040, "n_items": 3952, "n_domains": 2}

flags.DEFINE_list("models", list(BACKBONES), "Backbones of the grid.")
flags.DEFINE_integer("max_epochs", 100, "Epoch limit per run (early stopping ends runs sooner).")
flags.DEFINE_integer("seed", 2024, "Training seed.")
flags.DEFINE_string("json_out", None, "Also write the figures as JSON here.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    threads = configure_threads()
    from mlora_tf.runs.train import load_run_dataset, train_run

    data_config = DataConfig(dataset="synthetic", options=dict(ML1M_SHAPE))
    t0 = time.time()
    dataset = load_run_dataset(RunConfig(data=data_config))
    print(f"data: {dataset.sizes()} (generated in {time.time() - t0:.1f}s); threads (intra, inter) = {threads}", flush=True)
    rows, start = [], time.time()
    for model in FLAGS.models:
        row = {"model": model}
        for adapter in ("none", "mlora"):
            config = RunConfig(
                data=data_config,
                model=ModelConfig(name=model, adapter=adapter),
                train=TrainConfig(seed=FLAGS.seed, max_epochs=FLAGS.max_epochs),
            )
            record = train_run(config, dataset=dataset)
            row[adapter] = {
                "examples_per_second": record["train_examples_per_second"],
                "epochs": record["epochs"],
                "seconds": record["seconds"],
                "wauc": record["wauc"],
            }
            print(
                f"  {model:<8} {adapter:<6} {record['train_examples_per_second']:>10,.0f} ex/s  "
                f"{record['epochs']:>3} epochs  {record['seconds']:>6.1f}s  WAUC {record['wauc']:.4f}",
                flush=True,
            )
        rows.append(row)
    total = time.time() - start
    print()
    print(f"{'backbone':<9}{'Base ex/s':>12}{'MLoRA ex/s':>12}{'ratio':>7}{'Base ep':>8}{'MLoRA ep':>9}{'Base s':>8}{'MLoRA s':>8}")
    for row in rows:
        b, m = row["none"], row["mlora"]
        print(
            f"{row['model']:<9}{b['examples_per_second']:>12,.0f}{m['examples_per_second']:>12,.0f}"
            f"{m['examples_per_second'] / b['examples_per_second']:>7.2f}{b['epochs']:>8}{m['epochs']:>9}"
            f"{b['seconds']:>8.0f}{m['seconds']:>8.0f}"
        )
    print(f"\ngrid of {2 * len(rows)} runs: {total / 60:.1f} minutes wall time (target: under 15 on 2 CPU cores, issue 18)")
    if FLAGS.json_out:
        from mlora_tf.io import atomic_write_json

        atomic_write_json(FLAGS.json_out, {"rows": rows, "total_seconds": total, "threads": threads, "cpu_count": os.cpu_count()})
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
