"""Golden results for refactoring: four fixed-seed runs on synthetic data, recorded once
and compared after a change.

    python experiments/golden_results.py --out_dir=/tmp/golden-before           # record
    python experiments/golden_results.py --out_dir=/tmp/golden-after \\
        --compare=/tmp/golden-before                                           # compare

The runs are `make demo`'s two (WDL Base and WDL+MLoRA), one MoE-MLoRA run (WDL, the
paper schedule) and one M3oE run (click/like on `synthetic-mt`), each through
`mlora-train` with a fixed seed, so they exercise the programs as a user calls them.
`--compare` prints every metric of `result.json` (test WAUC, per-domain AUCs, loglosses,
epochs) side by side and exits 1 when one differs by more than `--tolerance` (default
0: bit-identical).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from absl import app, flags

RUNS = {
    "wdl_none": ["--model=wdl", "--adapter=none"],
    "wdl_mlora": ["--model=wdl", "--adapter=mlora"],
    "wdl_moe": ["--model=wdl", "--adapter=moe", "--max_epochs=3"],
    "m3oe": ["--task_set=click,like", "--model=m3oe", "--max_epochs=3", "--batch_size=2048", "--seed=2022"],
}
COMMON = ["--dataset=synthetic", "--seed=2024", "--notensorboard"]

flags.DEFINE_string("out_dir", None, "Where the runs' folders go.", required=True)
flags.DEFINE_string("compare", None, "A folder recorded earlier: compare with it.")
flags.DEFINE_float("tolerance", 0.0, "Largest absolute difference that counts as equal.")
flags.DEFINE_list("runs", list(RUNS), "Which runs: " + ", ".join(RUNS))
FLAGS = flags.FLAGS


def _numbers(value, prefix=""):
    """Flattens the numeric leaves of a result record: `{"a.b": 0.5, ...}`."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_numbers(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return {f"{prefix}[{i}]": float(v) for i, v in enumerate(value)}
    return {}


# What a refactor must keep: the metrics, not timings or parameter bookkeeping.
KEPT = ("test", "val", "wauc", "domain_auc", "logloss", "overall", "pair_", "epochs", "best_epoch")
SKIPPED = ("seconds", "ex_per_s", "time", "history", "config", "version")


def metrics(record: dict) -> dict:
    flat = _numbers(record)
    return {k: v for k, v in flat.items()
            if any(s in k for s in KEPT) and not any(s in k for s in SKIPPED)}


def record_runs(out_dir: str, names) -> None:
    train = [sys.executable, "-m", "mlora_tf.cli.train"]
    for name in names:
        folder = os.path.join(out_dir, name)
        cmd = train + COMMON + RUNS[name] + [f"--output_dir={folder}"]
        print("$", " ".join(cmd[2:]), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"golden run {name} failed (exit {proc.returncode})")


def compare(new_dir: str, old_dir: str, names, tolerance: float) -> int:
    worst = 0.0
    failed = []
    for name in names:
        with open(os.path.join(old_dir, name, "result.json")) as f:
            old = metrics(json.load(f))
        with open(os.path.join(new_dir, name, "result.json")) as f:
            new = metrics(json.load(f))
        print(f"\n{name}: {len(old)} metrics")
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key, math.nan), new.get(key, math.nan)
            diff = abs(a - b) if not (math.isnan(a) and math.isnan(b)) else 0.0
            if math.isnan(diff) or diff > tolerance:
                failed.append(f"{name}:{key}")
                print(f"  DIFF {key}: {a!r} -> {b!r}")
            elif not math.isnan(diff):
                worst = max(worst, diff)
    print(f"\n{len(failed)} metrics differ beyond {tolerance}; largest difference within it: {worst:.3g}")
    return 1 if failed else 0


def main(argv):
    del argv
    unknown = [n for n in FLAGS.runs if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown runs {unknown}; valid: {list(RUNS)}")
    record_runs(FLAGS.out_dir, FLAGS.runs)
    if FLAGS.compare:
        return compare(FLAGS.out_dir, FLAGS.compare, FLAGS.runs, FLAGS.tolerance)
    print(f"Recorded in {FLAGS.out_dir}")
    return 0


if __name__ == "__main__":
    app.run(main)
