"""Running a reproduction driver as a program in the tests: on tiny synthetic data, with
its results folder, and reading back its `runs.jsonl`."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--dataset=synthetic", "--data_options=n_rows=3000,n_users=200,n_items=100", "--max_epochs=1", "--noplot"]


def driver_path(name: str) -> str:
    """`experiments/<name>.py`."""
    return os.path.join(ROOT, "experiments", f"{name}.py")


def drive(driver: str, results, *args):
    """`driver` (a path) on `TINY` data writing into `results`; the finished process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, driver, f"--results_dir={results}", *TINY, *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


def read_runs(path) -> list[dict]:
    """The records of a `runs.jsonl`."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
