import json
import os
import subprocess
import sys

import pytest

from mlora_tf.reproduce import Cell, RunStore, paired_t_test, t_test_p_value

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "experiments", "reproduce_table2.py")
TINY = ["--dataset=synthetic", "--data_options=n_rows=3000,n_users=200,n_items=100", "--max_epochs=1", "--noplot"]


def _drive(results, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, DRIVER, f"--results_dir={results}", *TINY, *args],
        capture_output=True, text=True, env=env, timeout=600,
    )


def _runs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_grid_resumes_and_redoes_exactly_the_missing_run(tmp_path):
    proc = _drive(tmp_path, "--models=mlp,wdl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs_path = tmp_path / "synthetic" / "runs.jsonl"
    runs = _runs(runs_path)
    assert len(runs) == 4
    assert {(r["cell"]["model"], r["cell"]["adapter"]) for r in runs} == {
        ("mlp", "none"), ("mlp", "mlora"), ("wdl", "none"), ("wdl", "mlora")}
    for r in runs:
        assert {"wauc", "domain_auc", "logloss", "epochs", "seconds", "params_backbone", "params_adapter", "config"} <= set(r)
    # delete one record, leave a torn line behind: exactly one run happens again
    kept = runs[:1] + runs[2:]
    runs_path.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"wauc": 0.5, "cel')
    proc = _drive(tmp_path, "--models=mlp,wdl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 to do" in proc.stderr
    again = _runs(runs_path)
    assert len(again) == 4
    assert json.dumps(again[:3], sort_keys=True) == json.dumps(kept, sort_keys=True)
    table = (tmp_path / "synthetic" / "table2.md").read_text()
    assert "| mlp |" in table and "| wdl |" in table and "Paired t-test" in table


def test_missing_movielens_points_to_synthetic(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, DRIVER, "--dataset=ml-1m", f"--data_dir={tmp_path}", f"--results_dir={tmp_path}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "DATASET=synthetic" in proc.stderr and "ratings.dat" in proc.stderr


def test_table_renders_paper_numbers_and_p_values(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import paper_numbers
    import reproduce_table2

    monkeypatch.setitem(paper_numbers.PAPER_TABLE2, "movielens-gen", {"wdl": {"base": 70.00, "mlora": 71.25}})
    monkeypatch.setattr(reproduce_table2, "PAPER_TABLE2", paper_numbers.PAPER_TABLE2)
    store = RunStore(str(tmp_path / "runs.jsonl"))
    for model, (base, lora) in {"wdl": ([0.70, 0.71, 0.72], [0.72, 0.72, 0.75]), "mlp": ([0.6] * 3, [0.61, 0.62, 0.6])}.items():
        for seed, (b, m) in enumerate(zip(base, lora)):
            common = {"params_backbone": 1000, "params_adapter": 50}
            store.add(Cell("ml-1m-gender", "gender", model, "none", seed), {"wauc": b, **common})
            store.add(Cell("ml-1m-gender", "gender", model, "mlora", seed), {"wauc": m, **common})
    text = reproduce_table2.table2_markdown(RunStore(str(tmp_path / "runs.jsonl")), ["wdl", "mlp"], "ml-1m-gender", "movielens-gen")
    wdl_row = next(line for line in text.splitlines() if line.startswith("| wdl"))
    _, p = paired_t_test([0.70, 0.71, 0.72], [0.72, 0.72, 0.75])
    assert "70.00" in wdl_row and "71.25" in wdl_row and "+1.25" in wdl_row
    assert f"{p:.3g}" in wdl_row and "5.0%" in wdl_row
    assert "71.00 ± 1.00" in wdl_row
    assert "across 2 backbones" in text


def test_t_test_p_values():
    assert t_test_p_value(2.0, 10) == pytest.approx(0.0733880, abs=1e-6)
    assert t_test_p_value(1.0, 1) == pytest.approx(0.5, abs=1e-9)
    t, p = paired_t_test([1.0, 2.0, 3.0, 4.0], [1.5, 2.4, 3.7, 4.2])
    assert t == pytest.approx(4.323460, abs=1e-5) and p == pytest.approx(0.0228073, abs=1e-5)
