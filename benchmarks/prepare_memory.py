"""Peak memory and time of `mlora-prepare --dataset=amazon` on Amazon-6-sized generated data.

    python benchmarks/prepare_memory.py --scale=1.0 [--workdir=/tmp/amz] [--json=out.json]

1. Generates six gzipped 5-core-style review files (the raw format of datasets.md §4.2)
   whose sizes are `--scale` times Amazon-6's: per category the approximate review counts
   of the 2018 5-core files (`REVIEWS`, 4.29 M reviews in all) over 445,789 reviewers and
   172,653 items (paper Table 1). Reviewer activity and item popularity are heavy-tailed
   (Zipf-like); reviewers and a few items are shared between categories; every review
   line carries the unused keys of the real files too. At scale 1 the sampled dataset has
   about 17-18 M rows (positives + negatives, against 16.9 M in Table 1).
2. Runs `python -m mlora_tf.cli.prepare --dataset=amazon` on them in a child process
   and reports its wall time and its peak resident set size (`ru_maxrss` of the child),
   next to the RSS of a child that only imports the package (TensorFlow included).

The budget is 8 GiB of peak RSS at scale 1; the script exits 1 when it is exceeded.
Generation is not timed. The numbers depend on the machine (and on other load).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CATEGORIES = (
    "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden",
    "Prime_Pantry", "Toys_and_Games", "Video_Games",
)
# Approximate review counts of the 2018 5-core files (generation targets only).
REVIEWS = (231_392, 800_357, 798_415, 137_788, 1_828_971, 497_577)
USERS = 445_789
ITEMS = 172_653
BUDGET_GIB = 8.0
_TEXT = "Works as described. Would buy again, five stars from me."


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    rng.shuffle(weights)
    return weights / weights.sum()


def generate(folder: str, scale: float, seed: int = 2024) -> dict:
    """Writes the six `<Category>_5.json.gz` files; returns their sizes."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    n_users = max(20, int(USERS * scale))
    n_items = max(30, int(ITEMS * scale))
    user_p = _zipf_weights(n_users, 0.8, rng)
    # Items: each category gets a contiguous block, plus 2 % shared with the previous one.
    shares = np.asarray(REVIEWS, dtype=np.float64) / sum(REVIEWS)
    bounds = np.concatenate([[0], np.cumsum(np.maximum(5, (shares * n_items).astype(np.int64)))])
    stats = {"reviews": 0, "bytes": 0}
    for k, category in enumerate(CATEGORIES):
        n = max(10, int(REVIEWS[k] * scale))
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        block = np.arange(lo, hi)
        if k > 0:
            shared = np.arange(int(bounds[k - 1]), int(bounds[k - 1]) + max(1, (hi - lo) // 50))
            block = np.concatenate([block, shared])
        item_p = _zipf_weights(len(block), 0.9, rng)
        uid = rng.choice(n_users, size=n, p=user_p)
        pid = block[rng.choice(len(block), size=n, p=item_p)]
        score = rng.integers(1, 6, size=n)
        path = os.path.join(folder, f"{category}_5.json.gz")
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as f:
            chunk = 200_000
            for start in range(0, n, chunk):
                f.write("".join(
                    f'{{"overall": {s}.0, "verified": true, "reviewTime": "01 5, 2016", '
                    f'"reviewerID": "A{u:012d}", "asin": "B{p:09d}", "reviewerName": "x", '
                    f'"reviewText": "{_TEXT}", "summary": "ok", "unixReviewTime": 1451952000}}\n'
                    for u, p, s in zip(uid[start:start + chunk].tolist(), pid[start:start + chunk].tolist(),
                                       score[start:start + chunk].tolist())
                ))
        stats["reviews"] += n
        stats["bytes"] += os.path.getsize(path)
    return stats


def _child_rss(command: list[str], env: dict) -> tuple[float, float, str]:
    """Runs `command` in a fresh child; returns (seconds, peak RSS GiB, stdout)."""
    # ru_maxrss of RUSAGE_CHILDREN is the largest of all waited-for children, so each
    # measurement runs behind its own intermediate process.
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.time()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.time() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': p.returncode, 'seconds': dt, 'maxrss_kb': rss, 'out': p.stdout[-4000:], "
        "'err': p.stderr[-4000:]}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env)
    result = json.loads(proc.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result['err']}")
    return result["seconds"], result["maxrss_kb"] / 2**20, result["out"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="Fraction of Amazon-6's size (1 = full).")
    parser.add_argument("--workdir", default=None, help="Where to generate (default: a temporary folder, removed).")
    parser.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="prepare-memory-")
    raw, out = os.path.join(workdir, "raw"), os.path.join(workdir, "out")
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLORA_TF_CACHE=os.path.join(workdir, "cache"))
    try:
        start = time.time()
        generated = generate(raw, args.scale)
        print(f"generated {generated['reviews']:,} reviews ({generated['bytes'] / 2**20:.0f} MiB gzipped) "
              f"in {time.time() - start:.0f}s")
        _, base_gib, _ = _child_rss([sys.executable, "-c", "import mlora_tf.data"], env)
        seconds, peak_gib, printed = _child_rss(
            [sys.executable, "-m", "mlora_tf.cli.prepare", "--dataset=amazon", f"--raw_dir={raw}",
             f"--out_dir={out}"], env)
        manifest = json.load(open(os.path.join(out, "prepared.json")))
        stats = manifest["statistics"]
        figures = {
            "scale": args.scale,
            "reviews": generated["reviews"],
            "rows_after_sampling": stats["total"],
            "users": stats["users"],
            "items": stats["items"],
            "prepare_seconds": round(seconds, 1),
            "peak_rss_gib": round(peak_gib, 3),
            "import_only_rss_gib": round(base_gib, 3),
            "budget_gib": BUDGET_GIB,
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        }
        print(printed.split("Statistics of")[-1].strip() if "Statistics of" in printed else printed)
        print(json.dumps(figures, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2)
        return 0 if peak_gib <= BUDGET_GIB else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
