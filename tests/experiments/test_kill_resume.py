"""A killed reproduction loses nothing: SIGKILL `reproduce_table2.py` at seeded random
moments, restart it each time, and compare the final table with an uninterrupted run's."""

import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "experiments", "reproduce_table2.py")
ARGS = ["--dataset=synthetic", "--data_options=n_rows=2000,n_users=150,n_items=80", "--max_epochs=2", "--noplot",
        "--models=mlp"]


def _cmd(results):
    return [sys.executable, DRIVER, f"--results_dir={results}", *ARGS]


def test_sigkill_at_random_moments_then_resume_gives_the_same_table(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    clean = subprocess.run(_cmd(tmp_path / "clean"), capture_output=True, text=True, env=env, timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    rng = random.Random(7)
    killed = tmp_path / "killed"
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(3.0, 10.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(_cmd(killed), capture_output=True, text=True, env=env, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert kills >= 1
    table = lambda folder: (folder / "synthetic" / "table2.md").read_text()  # noqa: E731
    assert table(killed) == table(tmp_path / "clean")
    lines = (killed / "synthetic" / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2
