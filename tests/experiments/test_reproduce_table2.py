import json
import os
import subprocess
import sys

import pytest

from driver_runs import ROOT, drive, driver_path, read_runs
from reproduce_common import Cell, RunStore, paired_t_test, t_test_p_value

DRIVER = driver_path("reproduce_table2")


def _drive(results, *args):
    return drive(DRIVER, results, *args)


_runs = read_runs


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


def _import_driver():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import reproduce_table2

    return reproduce_table2


def _store(tmp_path, tag, split, cells):
    """A hand-made RunStore: `cells = {model: (base waucs, mlora waucs)}` by seed."""
    store = RunStore(str(tmp_path / "runs.jsonl"))
    for model, (base, lora) in cells.items():
        for seed, (b, m) in enumerate(zip(base, lora)):
            common = {"params_backbone": 1000, "params_adapter": 50}
            store.add(Cell(tag, split, model, "none", seed), {"wauc": b, **common})
            store.add(Cell(tag, split, model, "mlora", seed), {"wauc": m, **common})
    return RunStore(str(tmp_path / "runs.jsonl"))


def test_table2_prints_the_papers_numbers_avg_and_avg_delta(tmp_path):
    driver = _import_driver()
    store = _store(tmp_path, "ml-1m-gender", "gender", {"mlp": ([0.80], [0.81]), "wdl": ([0.79], [0.80])})
    text = driver.table2_markdown(store, ["mlp", "wdl"], "ml-1m-gender", "movielens-gen")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "| 80.15 | 80.39 | +0.24 |" in rows["mlp"]  # the paper's Table 2, Movielens-gen
    assert "| 80.17 | 80.41 | +0.24 |" in rows["wdl"]
    assert rows["Avg"].startswith("| Avg | 79.50 | 80.50 | +1.00 |") and "| 80.28 | 80.46 | +0.18 |" in rows["Avg"]
    assert "Table 2, movielens-gen" in text and "Avg +0.50" in text and "mlp +1.42" in text
    assert "not available offline" not in text


def test_table2_renders_our_cells_p_values_and_shares(tmp_path):
    driver = _import_driver()
    store = _store(tmp_path, "ml-1m-gender", "gender",
                   {"wdl": ([0.70, 0.71, 0.72], [0.72, 0.72, 0.75]), "mlp": ([0.6] * 3, [0.61, 0.62, 0.6])})
    text = driver.table2_markdown(store, ["wdl", "mlp"], "ml-1m-gender", "movielens-gen")
    wdl_row = next(line for line in text.splitlines() if line.startswith("| wdl"))
    _, p = paired_t_test([0.70, 0.71, 0.72], [0.72, 0.72, 0.75])
    assert wdl_row.startswith("| wdl | 71.00 ± 1.00 | 73.00 ± 1.73 | +2.00 |")
    assert f"{p:.3g}" in wdl_row and "5.0%" in wdl_row
    assert "| 80.17 | 80.41 | +0.24 |" in wdl_row
    assert "across 2 backbones" in text


def test_table4_keys_and_computed_paper_delta(tmp_path):
    driver = _import_driver()
    store = _store(tmp_path, "taobao-theme_20", "theme_20", {"nfm": ([0.78], [0.79])})
    text = driver.table2_markdown(store, ["nfm"], "taobao-theme_20", "taobao-20")
    nfm = next(line for line in text.splitlines() if line.startswith("| nfm"))
    assert "| 78.55 | 78.84 | +0.29 |" in nfm
    avg = next(line for line in text.splitlines() if line.startswith("| Avg"))
    assert "| 78.27 | 78.62 | +0.35 |" in avg  # Table 4's printed Avg (not its row mean)
    assert "Table 4" in text and "prints no Δ" in text
    none = driver.table2_markdown(store, ["nfm"], "synthetic", None)
    assert "| — | — | — |" in next(line for line in none.splitlines() if line.startswith("| nfm"))
    assert "no column for this dataset" in none


def test_table3_per_domain_beside_the_paper(tmp_path):
    driver = _import_driver()
    store = RunStore(str(tmp_path / "runs.jsonl"))
    domains = [f"theme_{k}" for k in (7, 3, 11)]  # our domain-id order, not sorted by name
    for adapter, aucs in (("none", (0.70, 0.60, 0.65)), ("mlora", (0.71, 0.62, 0.66))):
        store.add(Cell("taobao-theme_10", "theme_10", "mlp", adapter, 0),
                  {"wauc": 0.73, "domain_auc": dict(zip(domains, aucs)), "params_backbone": 1, "params_adapter": 0})
    text = driver.table3_markdown(RunStore(str(tmp_path / "runs.jsonl")), "taobao-theme_10", domains)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["MLP (ours)"].startswith("| MLP (ours) | 70.00 | 60.00 | 65.00 | 73.00 |")
    assert rows["MLP+MLoRA (ours)"].startswith("| MLP+MLoRA (ours) | 71.00 | 62.00 | 66.00 |")
    assert rows["MLP (paper)"] == "| MLP (paper) | 69.09 | 58.23 | 68.17 | 72.92 |"
    assert rows["DeepFM+MLoRA (paper)"].endswith("| 75.66 |") and rows["FiBiNET (ours)"].count("—") == 4
    assert "0 theme_7, 1 theme_3, 2 theme_11" in text


def test_widths_and_alpha_tables(tmp_path):
    driver = _import_driver()
    store = RunStore(str(tmp_path / "runs.jsonl"))
    store.add(Cell("amazon-gender", "gender", "mlp", "mlora", 0, hidden_units=(512, 256, 128)), {"wauc": 0.755})
    store.add(Cell("amazon-gender", "gender", "mlp", "mlora", 0, lora_reduce=32.0), {"wauc": 0.70})
    store.add(Cell("amazon-gender", "gender", "mlp", "mlora", 0, lora_reduce=64.0), {"wauc": 0.71})
    store = RunStore(str(tmp_path / "runs.jsonl"))  # reloaded: the widths come back as a JSON list
    assert Cell(**store.select(lora_reduce=None)[0]["cell"]).hidden_units == (512, 256, 128)
    text = driver.widths_markdown(store, "amazon-gender", "amazon-6")
    assert "| 512-256-128 | 75.50 | 75.82 |" in text and "| 2048-1024-512 | — | 76.93 |" in text
    assert "for orientation only" not in text
    assert "for orientation only" in driver.widths_markdown(store, "synthetic", None)
    alpha = driver.alpha_markdown(store, ["mlp", "deepfm"], "amazon-gender")
    mlp = next(line for line in alpha.splitlines() if line.startswith("| mlp"))
    assert mlp.endswith("| 64 | — | 128 |")  # ours best α, the paper's plot (—), the text's optimum
    assert "paper: plot only (optima: MLP α=128, DeepFM 64, FiBiNET 32)" in alpha


def test_cell_key_without_widths_is_unchanged():
    cell = Cell("d", "gender", "mlp", "mlora", 1)
    assert "hidden_units" not in cell.key
    assert Cell("d", "gender", "mlp", "mlora", 1, hidden_units=[256, 128, 64]).key != cell.key


def test_table_renders_paper_numbers_and_p_values(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import reproduce_table2

    store = RunStore(str(tmp_path / "runs.jsonl"))
    for model, (base, lora) in {"wdl": ([0.70, 0.71, 0.72], [0.72, 0.72, 0.75]), "mlp": ([0.6] * 3, [0.61, 0.62, 0.6])}.items():
        for seed, (b, m) in enumerate(zip(base, lora)):
            common = {"params_backbone": 1000, "params_adapter": 50}
            store.add(Cell("ml-1m-gender", "gender", model, "none", seed), {"wauc": b, **common})
            store.add(Cell("ml-1m-gender", "gender", model, "mlora", seed), {"wauc": m, **common})
    text = reproduce_table2.table2_markdown(RunStore(str(tmp_path / "runs.jsonl")), ["wdl", "mlp"], "ml-1m-gender", "movielens-gen")
    wdl_row = next(line for line in text.splitlines() if line.startswith("| wdl"))
    _, p = paired_t_test([0.70, 0.71, 0.72], [0.72, 0.72, 0.75])
    assert "| 80.17 | 80.41 | +0.24 |" in wdl_row  # the paper's Table 2 (Movielens-gen) as printed
    assert f"{p:.3g}" in wdl_row and "5.0%" in wdl_row
    assert "71.00 ± 1.00" in wdl_row
    assert "across 2 backbones" in text


def test_t_test_p_values():
    assert t_test_p_value(2.0, 10) == pytest.approx(0.0733880, abs=1e-6)
    assert t_test_p_value(1.0, 1) == pytest.approx(0.5, abs=1e-9)
    t, p = paired_t_test([1.0, 2.0, 3.0, 4.0], [1.5, 2.4, 3.7, 4.2])
    assert t == pytest.approx(4.323460, abs=1e-5) and p == pytest.approx(0.0228073, abs=1e-5)
