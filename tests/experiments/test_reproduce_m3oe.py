import json
import math
import os
import subprocess
import sys
import time

from mlora_tf.training.metrics import relative_improvement
from reproduce_common import Cell, RunStore, metric_by_seed, metric_value, paired_t_test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(ROOT, "experiments", "reproduce_m3oe.py")
TINY = [
    "--dataset=synthetic", "--data_options=n_rows=3000,n_users=200,n_items=100", "--max_epochs=1", "--noplot",
    "--model_options=star_units=16,hidden_units=16,expert_units=8,tower_units=8,embedding_dim=4",
    "--models=mmoe,m3oe", "--seeds=2",
]


def _drive(out_dir, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, DRIVER, f"--out_dir={out_dir}", *args], capture_output=True, text=True, env=env, timeout=600,
    )


def _runs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_grid_writes_one_record_per_model_and_seed_renders_the_table_and_resumes(tmp_path):
    proc = _drive(tmp_path, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs_path = tmp_path / "synthetic" / "runs.jsonl"
    runs = _runs(runs_path)
    assert sorted((r["cell"]["model"], r["cell"]["seed"]) for r in runs) == [
        ("m3oe", 2022), ("m3oe", 2023), ("mmoe", 2022), ("mmoe", 2023)]
    for r in runs:
        assert r["config"]["train"]["seed"] == r["cell"]["seed"] and r["config"]["train"]["max_epochs"] == 1
        assert r["config"]["model"]["hidden_units"] == 16 and r["config"]["data"]["options"]["n_rows"] == 3000
        assert {"overall_auc", "overall_logloss", "pair_auc", "pair_logloss", "epochs", "seconds", "params_total"} <= set(r)
        assert sorted(r["pair_auc"]) == ["d0t0", "d0t1", "d1t0", "d1t1", "d2t0", "d2t1"]
        assert "history" not in r
    table = (tmp_path / "synthetic" / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| model |"))
    assert header.count("|") == 11 and "d1 t1 (age<25 / click)" in header and "overall logloss" in header
    for label, paper in (("MMoE-MDMT", "| *paper: MMoE-MDMT* | 5 | 76.07 |"), ("M3oE", "| *paper: M3oE* | 5 | 76.61 |")):
        row = next(line for line in table.splitlines() if line.startswith(f"| {label} | 2 |"))
        values = [cell.strip() for cell in row.strip("|").split("|")][2:]  # six pairs, overall AUC, overall logloss
        assert len(values) == 8 and all(float(v.split(" ± ")[0]) > 0 for v in values), row
        assert paper in table
    assert "RelaImpr of M3oE over the best baseline, MMoE-MDMT" in table
    assert "Paired t-test over seeds (two-sided, paired by seed, 2 shared seeds)" in table

    # drop one record and leave a torn line: exactly that run is done again
    kept = runs[:1] + runs[2:]
    runs_path.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"overall_auc": 0.5, "cel')
    proc = _drive(tmp_path, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 to do" in proc.stderr
    again = _runs(runs_path)
    assert len(again) == 4 and json.dumps(again[:3], sort_keys=True) == json.dumps(kept, sort_keys=True)

    # everything done: no new record, no data loaded, no training
    before = runs_path.read_text()
    start = time.time()
    proc = _drive(tmp_path, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "0 to do" in proc.stderr and "synthetic-mt: 3 domains" not in proc.stderr
    assert runs_path.read_text() == before
    assert time.time() - start < 60


def test_missing_movielens_points_to_synthetic_and_ml100k(tmp_path):
    proc = _drive(tmp_path, "--dataset=ml-1m", f"--data_dir={tmp_path}", "--noplot")
    assert proc.returncode == 2
    assert "ratings.dat" in proc.stderr
    assert "make reproduce-m3oe DATASET=synthetic" in proc.stderr
    assert "DATASET=ml-100k DATA_DIR=" in proc.stderr
    assert not (tmp_path / "ml-1m" / "runs.jsonl").exists()




# ------------------------------------------------------------- tables in-process
def _driver_module():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import reproduce_m3oe

    return reproduce_m3oe


def _record(auc: float, logloss: float = 0.5) -> dict:
    pairs = {f"d{d}t{t}": auc + 0.01 * (d - 1) for d in range(3) for t in range(2)}
    return {
        "overall_auc": auc, "overall_logloss": logloss, "pair_auc": pairs, "tasks": ["click", "like"],
        "dataset": {"domains": ["age<25", "age25-34", "age35+"]}, "epochs": 3, "seconds": 1.5, "params_total": 100,
    }


def test_relaimpr_and_t_test_against_the_best_baseline(tmp_path):
    driver = _driver_module()
    store = RunStore(str(tmp_path / "runs.jsonl"))
    seeds = [2022, 2023, 2024]
    aucs = {"mlp": [0.70, 0.71, 0.70], "mmoe": [0.74, 0.75, 0.75], "m3oe": [0.76, 0.78, 0.77], "mlora_sb": [0.75, 0.75, 0.76]}
    for model, values in aucs.items():
        for seed, auc in zip(seeds, values):
            store.add(Cell("ml-1m", "age3", model, "default", seed), _record(auc))
    store.add(Cell("ml-1m", "age3", "m3oe", "default", 2030), _record(0.5))  # another invocation's seed: not shown
    text = driver.table2_markdown(store, ["mlp", "mmoe", "m3oe", "mlora_sb"], "ml-1m", "ml-1m", seeds)
    m3oe_row = next(line for line in text.splitlines() if line.startswith("| M3oE | 3 |"))
    assert "77.00 ± 1.00" in m3oe_row
    assert next(line for line in text.splitlines() if line.startswith("| MLoRA-SB (ours) | 3 |"))
    expected = relative_improvement(0.77, sum(aucs["mmoe"]) / 3)
    assert "best baseline, MMoE-MDMT" in text and f"{100 * expected:+.2f}%" in text
    t, p = paired_t_test(aucs["mmoe"], aucs["m3oe"])
    assert f"M3oE vs the best baseline MMoE-MDMT: mean difference +2.33, t = {t:.3f}, p = {p:.3g}" in text
    assert "M3oE vs MLoRA-SB (ours)" in text
    assert "paper: +2.54% over MMoE-MDMT" in text
    assert "M2M" not in text  # rows for the invocation's models only
    assert "reference, not a target" not in text  # ml-1m is the paper's dataset


def test_ablation_table_has_every_variant_with_the_paper_averages(tmp_path):
    driver = _driver_module()
    store = RunStore(str(tmp_path / "runs.jsonl"))
    seeds = [2022, 2023]
    for seed, auc in zip(seeds, (0.77, 0.78)):
        store.add(Cell("synthetic", "age3", "m3oe", "default", seed), _record(auc))
        store.add(Cell("synthetic", "age3", "m3oe", "wo_automl", seed), _record(auc - 0.01))
    text = driver.table3_markdown(store, "synthetic", "synthetic", seeds)
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    for label, paper in (("w/o AutoML (fusion weights fixed at 0.5)", "76.37"), ("Concat modules", "76.89"),
                         ("Fully gated", "76.92"), ("w/o domain module", "76.89"), ("w/o task module", "76.85"),
                         ("w/o domain & task", "76.80"), ("Full M3oE", "77.02")):
        assert paper in rows[label], label
    assert "| -1.00 |" in rows["w/o AutoML (fusion weights fixed at 0.5)"] and "-0.65" in rows["w/o AutoML (fusion weights fixed at 0.5)"]
    assert rows["Concat modules"].startswith("| Concat modules | 0 | — |")


def test_ablation_configs_are_the_papers_variants():
    driver = _driver_module()
    names = {}
    for variant, _, _ in driver.ABLATIONS + (("default", "", {}),):
        config = driver.run_config(
            Cell("synthetic", "age3", "m3oe", variant, 2022), dataset="synthetic", data_dir=None, data_options={},
            model_options={}, train_options={}, max_epochs=1, fusion_schedule="paper",
        )
        names[variant] = config.model.variant
    assert names == {
        "wo_automl": "M3oE w/o AutoML", "concat_modules": "concat modules", "fully_gated": "fully gated",
        "wo_domain": "M3oE w/o domain", "wo_task": "M3oE w/o task", "wo_domain_task": "M3oE w/o domain & task",
        "default": "M3oE",
    }


def test_metric_helpers(tmp_path):
    record = {"overall_auc": 0.7, "pair_auc": {"d0t1": None, "d1t0": 0.6}}
    assert metric_value(record, "pair_auc.d1t0") == 0.6 and metric_value(record, "pair_auc.d0t1") is None
    assert metric_value(record, "nope.x") is None
    store = RunStore(str(tmp_path / "runs.jsonl"))
    store.add(Cell("synthetic", "age3", "m3oe", "default", 2022), record)
    store.add(Cell("synthetic", "age3", "m3oe", "default", 2023), {"overall_auc": None})
    assert metric_by_seed(store, "overall_auc", model="m3oe") == {2022: 0.7}
    assert metric_by_seed(store, "pair_auc.d1t0", model="m3oe") == {2022: 0.6}
    assert math.isclose(relative_improvement(0.7702, 0.7635), 0.0254, abs_tol=1e-3)


def test_grid_settings_are_not_options():
    driver = _driver_module()
    assert driver.driver_owned_options({"fusion": "fixed", "hidden_units": 8}, {"seed": 1, "patience": 2}) == [
        "fusion", "seed"]
    assert driver.driver_owned_options({"num_shared_experts": 1}, {"batch_size": 512}) == []


def test_a_non_default_split_gets_its_own_folder_and_a_disagreeing_split_is_refused(tmp_path):
    driver = _driver_module()
    assert driver.dataset_tag("ml-1m", "paper") == driver.dataset_tag("ml-1m", "paper", "positional") == "ml-1m"
    assert driver.dataset_tag("ml-1m", "paper", "random") == "ml-1m-split-random"
    assert driver.dataset_tag("ml-1m", "as_coded", "users_shuffled") == "ml-1m-split-users_shuffled-as-coded"
    proc = _drive(tmp_path, *TINY, "--split=random", "--data_options=split=positional")
    assert proc.returncode == 2 and "--split=random and --data_options=split=positional disagree" in proc.stderr
    assert not os.listdir(tmp_path)
