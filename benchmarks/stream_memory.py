"""Peak memory and speed of one training epoch streamed from shards, as the rows grow.

    python benchmarks/stream_memory.py --rows=2000000,20000000,100000000 \
        [--format=parquet] [--memory_max_rows=20000000] [--workdir=/tmp/stream] [--json=out.json]

For each row count N:

1. Generates N training rows with the synthetic generator (`mlora_tf.data.synthetic`)
   straight into a shard folder, `--chunk_rows` rows at a time (each chunk a generator
   draw of its own seed, written with `write_shards` and its train files moved into the
   folder as the next part of each domain), so no more than one chunk is ever held. The
   val and test splits are those of the first chunk only (a fixed size: the epoch does
   not score them). Generation is not timed.
2. In a fresh child process per path, builds WDL + MLoRA (hidden 256,128,64, batch 1024,
   the fast loop) and trains one epoch of the `joint` phase (`Trainer.train_epoch`, every
   domain in a random order): `streamed` reads the folder with `tf.data`
   (`StreamedDataset`, what `mlora-train --data_dir=SHARDS` does); `memory` (only for
   N <= `--memory_max_rows`) first reads every row into memory (`--stream=false`) and
   makes its tensors and shuffle orders (kept for every later epoch). A pass over a few
   batches traces the step before the timed epoch.
3. Prints per path the child's peak resident set size (`VmHWM`), its RSS just before
   the epoch (TensorFlow, the model and, in memory, the rows), the epoch's wall seconds
   and examples per second, and the streamed/in-memory ex/s ratio.

The figures depend on the machine and on whatever else runs on it. The script makes no
assertion.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N_DOMAINS = 4
N_USERS = 100_000
N_ITEMS = 50_000


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mib() -> float:
    """The current resident set size of this process, MiB (`/proc/self/status` VmRSS)."""
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    """The peak resident set size of this process image, MiB: `VmHWM`. Not `ru_maxrss`,
    which keeps across `exec` the peak of the process it was forked from (here the
    generating parent)."""
    peak = _status_mib("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- generation
def generate_shards(folder: str, rows: int, chunk_rows: int, file_format: str, seed: int = 2024) -> dict:
    """Writes `rows` generated training rows as a shard folder, one chunk at a time."""
    from mlora_tf.data import load_dataset
    from mlora_tf.data.shards import MANIFEST, write_shards
    from mlora_tf.io import atomic_write_json

    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    manifest, train_files = None, [[] for _ in range(N_DOMAINS)]
    start, done, chunk = time.time(), 0, 0
    while done < rows:
        n = min(chunk_rows, rows - done)
        # Fractions so that the chunk's train split holds (about) n rows; val and test
        # are kept from the first chunk only.
        data = load_dataset("synthetic", seed=seed + chunk, n_rows=int(n / 0.98) + 8, n_domains=N_DOMAINS,
                            n_users=N_USERS, n_items=N_ITEMS, fractions=(0.98, 0.01, 0.01))
        tmp = tempfile.mkdtemp(dir=folder, prefix=".chunk-")
        write_shards(data, tmp, file_format=file_format, shard_rows=max(chunk_rows, 1 << 20))
        with open(os.path.join(tmp, MANIFEST)) as f:
            chunk_manifest = json.load(f)
        if manifest is None:
            manifest = chunk_manifest
            for split in ("val", "test"):
                for d in manifest["splits"][split]["domains"]:
                    for file in d["files"]:
                        os.renames(os.path.join(tmp, file["path"]), os.path.join(folder, file["path"]))
        for d, entry in enumerate(chunk_manifest["splits"]["train"]["domains"]):
            for file in entry["files"]:
                relpath = f"{file['path'].rsplit('/', 1)[0]}/part-{len(train_files[d]):05d}.{file_format}"
                os.renames(os.path.join(tmp, file["path"]), os.path.join(folder, relpath))
                train_files[d].append(dict(file, path=relpath))
        shutil.rmtree(tmp)
        done += chunk_manifest["splits"]["train"]["rows"]
        chunk += 1
    for d, entry in enumerate(manifest["splits"]["train"]["domains"]):
        entry["files"] = train_files[d]
        entry["rows"] = sum(f["rows"] for f in train_files[d])
    manifest["splits"]["train"]["rows"] = sum(e["rows"] for e in manifest["splits"]["train"]["domains"])
    manifest["statistics"] = None  # of the first chunk only: not kept
    manifest["info"] = {"source": "benchmarks/stream_memory.py", "chunks": chunk, "chunk_rows": chunk_rows,
                        "seed": seed}
    atomic_write_json(os.path.join(folder, MANIFEST), manifest)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, files in os.walk(folder) for f in files)
    return {"train_rows": manifest["splits"]["train"]["rows"], "chunks": chunk, "bytes": size,
            "seconds": time.time() - start}


# -------------------------------------------------------------------- child
def child(folder: str, path: str, batch_size: int, seed: int) -> dict:
    """One epoch on `folder`, streamed or in memory: the figures as a dict."""
    import tensorflow as tf

    import common
    from mlora_tf.data import load_dataset
    from mlora_tf.runtime import configure_threads

    configure_threads()
    dataset = load_dataset(None, data_dir=folder, stream=path == "streamed")
    trainer, phase = common.joint_trainer(dataset, batch_size=batch_size, seed=seed)
    trainer._phase, trainer._phase_examples = phase, 0
    # Trace the step on a few batches (not timed).
    if path == "streamed":
        # The passes' shuffle orders (files of row numbers), made once and kept for
        # every later epoch, as the in-memory path's below: not timed.
        for d in range(dataset.n_domains):
            trainer._stream_order(d, dataset.num_rows("train", d))
        trainer._train_pass(itertools.islice(trainer._stream_batches(0, (0,))[0], 1))
    else:
        # The rows as tensors and the passes' shuffle orders, made once and kept for
        # every later epoch: not timed, so the epoch is a steady-state one.
        for d in range(dataset.n_domains):
            tensors = trainer._domain_tensors("train", d)
            trainer._buffer_order(d, int(tensors[-1].shape[0]))
        tensors = trainer._domain_tensors("train", 0)
        trainer._train_pass(tf.range(4 * batch_size, dtype=tf.int32), *tensors)
    rss_before = _rss_mib()
    start, cpu = time.time(), time.process_time()
    _, examples = trainer.train_epoch()
    seconds, cpu = time.time() - start, time.process_time() - cpu
    return {"path": path, "examples": examples, "seconds": seconds, "examples_per_second": examples / seconds,
            "cpu_seconds": cpu, "rss_before_epoch_mib": rss_before, "peak_rss_mib": _peak_rss_mib()}


def run_child(folder: str, path: str, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), f"--child={path}", f"--folder={folder}",
               f"--batch_size={args.batch_size}", f"--seed={args.seed}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="2000000,20000000,100000000", help="Training row counts, comma-separated.")
    parser.add_argument("--format", default="parquet", choices=["parquet", "tfrecord"], help="Shard file format.")
    parser.add_argument("--chunk_rows", type=int, default=1_000_000, help="Rows generated and written at a time.")
    parser.add_argument("--memory_max_rows", type=int, default=20_000_000,
                        help="Also train in memory on sizes up to this many rows.")
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workdir", default=None, help="Where the shards go (default: a temporary folder, removed).")
    parser.add_argument("--keep", action="store_true", help="Keep the shard folders.")
    parser.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    parser.add_argument("--child", default=None, choices=["streamed", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.folder, args.child, args.batch_size, args.seed)))
        return 0
    sys.path.insert(0, os.path.dirname(HERE))
    workdir = args.workdir or tempfile.mkdtemp(prefix="stream-memory-")
    print(f"host: {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        folder = os.path.join(workdir, f"rows-{rows}")
        info = generate_shards(folder, rows, args.chunk_rows, args.format, args.seed)
        print(f"{rows:,} rows: {info['train_rows']:,} train rows in {info['chunks']} chunks, "
              f"{info['bytes'] / 2**20:,.0f} MiB of {args.format}, generated in {info['seconds']:.0f}s", flush=True)
        paths = ["streamed"] + (["memory"] if rows <= args.memory_max_rows else [])
        for path in paths:
            figures = dict(run_child(folder, path, args), rows=info["train_rows"], format=args.format)
            results.append(figures)
            print(f"  {path:<9} peak RSS {figures['peak_rss_mib']:8,.0f} MiB  (before the epoch "
                  f"{figures['rss_before_epoch_mib']:,.0f})  {figures['seconds']:7.1f}s  "
                  f"{figures['examples_per_second']:9,.0f} ex/s", flush=True)
        if len(paths) == 2:
            ratio = results[-2]["examples_per_second"] / results[-1]["examples_per_second"]
            print(f"  streamed / in memory ex/s: {ratio:.2f}", flush=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}, f, indent=1)
    if not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
