"""`experiments/fidelity_ablation.py` on tiny synthetic data: the variants it runs, what
each sets, the table, and resuming."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "experiments", "fidelity_ablation.py")


def _drive(results, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, DRIVER, "--dataset=synthetic", "--data_options=n_rows=2000,n_users=80,n_items=60",
         "--max_epochs=1", "--seeds=1", "--models=wdl", "--factors=shuffle", "--nopatience5", "--noplot",
         f"--results_dir={results}", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


def test_ablation_runs_each_variant_with_its_factors_and_resumes(tmp_path):
    proc = _drive(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "synthetic" / "runs.jsonl") as f:
        runs = [json.loads(line) for line in f if line.strip()]
    by_variant = {}
    for r in runs:
        by_variant.setdefault(r["cell"]["variant"], []).append(r)
    # original, original with our earlier shuffle, the fast loop, the fast loop with that shuffle
    assert sorted(by_variant) == ["fast", "fast+shuffle", "original", "original+shuffle"]
    assert all(len(v) == 2 for v in by_variant.values())  # Base and +MLoRA
    settings = {v: (rs[0]["config"]["train"], rs[0]["config"]["model"]) for v, rs in by_variant.items()}
    assert settings["original"][0]["loop"] == "original" and settings["original"][0]["shuffle"] == "buffer"
    assert settings["original"][0]["loss"] == "clipped" and settings["original"][1]["init_seeds"] == "original"
    assert settings["original+shuffle"][0]["shuffle"] == "permutation"
    assert settings["original+shuffle"][0]["loss"] == "clipped"  # only the one factor switched
    assert settings["fast"][0]["shuffle"] == "buffer" and settings["fast"][0]["loss"] == "logits"
    assert settings["fast+shuffle"][0]["shuffle"] == "permutation"
    table = (tmp_path / "synthetic" / "ablation.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| original+shuffle | wdl |")]
    assert len(rows) == 1 and rows[0].count("(") >= 3  # Δ and both changes against the original, with p
    again = _drive(tmp_path)
    assert again.returncode == 0 and "8 of 8 runs already done; 0 to do" in again.stderr
