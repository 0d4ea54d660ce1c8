"""Read speed of Parquet files as the package reads them (pyarrow).

    python benchmarks/parquet_read.py --path=clicks.parquet [--columns=user,item,site,click]
    python benchmarks/parquet_read.py --rows=1000000 --workdir=/tmp/pq   # writes one first

Times `mlora_tf.data.parquet.read_parquet(path, columns)` (pyarrow, then `to_pandas`,
what the csv loader and `mlora-evaluate` call) and `pyarrow.parquet.read_table` alone;
prints seconds, rows/s and MB/s of file for each (best of `--repeats`). With `--rows`,
it first writes a click log of that many rows in pandas' default layout (SNAPPY,
dictionary pages) and, with `--plain`, a second one without dictionaries or compression.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mlora_tf.data import parquet  # noqa: E402


def write_clicks(rows: int, workdir: str, plain: bool) -> list[str]:
    import pyarrow as pa

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "user": rng.integers(0, 100_000, rows),
        "item": np.char.add("i", rng.integers(0, 50_000, rows).astype(str)),
        "site": np.array(["books", "games", "music", "video"])[rng.integers(0, 4, rows)],
        "click": (rng.random(rows) < 0.2).astype(np.int64),
        "price": np.round(rng.gamma(2.0, 15.0, rows), 2),
    })
    os.makedirs(workdir, exist_ok=True)
    paths = [os.path.join(workdir, f"clicks_{rows}.parquet")]
    frame.to_parquet(paths[0], engine="pyarrow")
    if plain:
        paths.append(os.path.join(workdir, f"clicks_{rows}_plain.parquet"))
        pq.write_table(pa.Table.from_pandas(frame), paths[1], use_dictionary=False, compression="none")
    return paths


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", help="a parquet file to read")
    parser.add_argument("--rows", type=int, help="write a click log of this many rows first")
    parser.add_argument("--plain", action="store_true", help="with --rows: also a file without dictionaries")
    parser.add_argument("--workdir", default="/tmp/mlora_parquet_bench")
    parser.add_argument("--columns", help="comma-separated columns (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.path and not args.rows:
        parser.error("give --path=FILE, or --rows=N to write one")
    paths = [args.path] if args.path else write_clicks(args.rows, args.workdir, args.plain)
    columns = args.columns.split(",") if args.columns else None
    readers = {
        "read_parquet": lambda path: parquet.read_parquet(path, columns),  # pyarrow + to_pandas
        "read_table": lambda path: pq.read_table(path, columns=columns),  # pyarrow alone
    }
    print(f"{'file':40s} {'reader':12s} {'rows':>10s} {'seconds':>8s} {'rows/s':>12s} {'MB/s':>7s}")
    for path in paths:
        size = os.path.getsize(path) / 1e6
        for name, read in readers.items():
            rows = len(read(path))
            seconds = best_time(lambda: read(path), args.repeats)
            print(f"{os.path.basename(path):40s} {name:12s} {rows:10d} {seconds:8.2f} "
                  f"{rows / seconds:12,.0f} {size / seconds:7.1f}")


if __name__ == "__main__":
    main()
