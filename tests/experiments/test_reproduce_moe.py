import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "experiments", "reproduce_moe.py")
TINY = ["--dataset=synthetic", "--data_options=n_rows=2000,n_users=150,n_items=80,n_domains=2", "--max_epochs=1", "--noplot"]


def test_table1_driver_renders_every_row_and_resumes(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, DRIVER, f"--results_dir={tmp_path}", "--models=wdl,nfm", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "table1" / "synthetic"
    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["cell"]["model"], r["cell"]["adapter"]) for r in runs) == [
        ("nfm", "mlora"), ("nfm", "moe"), ("nfm", "none"), ("wdl", "mlora"), ("wdl", "moe"), ("wdl", "none")]
    moe = next(r for r in runs if r["cell"]["adapter"] == "moe")
    assert [p["name"] for p in moe["phases"]] == ["backbone", "expert_0", "expert_1", "gate"]
    table = (folder / "table1.md").read_text()
    for model in ("wdl", "nfm"):
        row = next(line for line in table.splitlines() if line.startswith(f"| synthetic | {model} |"))
        assert row.count("—") <= 3  # only p (one seed) and the two paper columns are empty
    assert "Paired t-test of MoE-MLoRA vs MLoRA across 2" in table
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "0 to do" in again.stderr
