"""`experiments/reproduce_multidomain.py`: the grid's models come from the registry,
it resumes, its table holds what its runs measured, bad flags are refused before work."""

import json
import os
import sys

import pytest

from driver_runs import ROOT, drive, driver_path, read_runs
from reproduce_common import Cell, RunStore, fmt_p, fmt_pct, mean_std, paired_t_test

DRIVER = driver_path("reproduce_multidomain")


def _drive(results, *args):
    return drive(DRIVER, results, *args)


_runs = read_runs


def _driver():
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import reproduce_multidomain

    return reproduce_multidomain


def test_default_models_are_the_registry_multi_domain_group():
    from mlora_tf.models import list_backbones

    expected = sorted(s.name for s in list_backbones() if s.group == "multi-domain")
    models = _driver().default_models()
    assert sorted(models) == expected
    assert {"star", "epnet", "ppnet", "pepnet"} <= set(models)
    assert "mlp" not in models and "wdl" not in models


def test_grid_resumes_and_the_table_holds_its_runs(tmp_path):
    proc = _drive(tmp_path, "--models=star,epnet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs_path = tmp_path / "synthetic" / "runs.jsonl"
    runs = _runs(runs_path)
    assert {(r["cell"]["model"], r["cell"]["adapter"]) for r in runs} == {
        ("star", "none"), ("star", "mlora"), ("epnet", "none"), ("epnet", "mlora")}
    for r in runs:
        assert 0.0 <= r["pooled_auc"] <= 1.0
        assert {"wauc", "domain_auc", "seconds", "epochs", "params_adapter", "params_backbone"} <= set(r)
        assert r["config"]["model"]["name"] == r["cell"]["model"]
        assert r["config"]["model"]["adapter"] == r["cell"]["adapter"]
    # one record removed: exactly that run is done again, the others are kept as they were
    kept = runs[1:]
    runs_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    proc = _drive(tmp_path, "--models=star,epnet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 to do" in proc.stderr
    again = _runs(runs_path)
    assert len(again) == 4 and json.dumps(again[:3], sort_keys=True) == json.dumps(kept, sort_keys=True)
    table = (tmp_path / "synthetic" / "multidomain.md").read_text()
    by_cell = {(r["cell"]["model"], r["cell"]["adapter"]): r for r in again}
    star = next(line for line in table.splitlines() if line.startswith("| star |"))
    cells = [c.strip() for c in star.strip("|").split("|")]
    assert cells[1] == f"{100 * by_cell[('star', 'none')]['wauc']:.2f}"
    assert cells[2] == f"{100 * by_cell[('star', 'mlora')]['wauc']:.2f}"
    assert cells[5] == f"{100 * by_cell[('star', 'none')]['pooled_auc']:.2f}"
    share = by_cell[("star", "mlora")]["params_adapter"] / by_cell[("star", "none")]["params_backbone"]
    assert cells[7] == f"{100 * share:.1f}%"
    assert "| epnet | +MLoRA |" in table  # the per-domain table


def test_table_statistics(tmp_path):
    driver = _driver()
    store = RunStore(str(tmp_path / "runs.jsonl"))
    base, lora = [0.70, 0.72, 0.71], [0.72, 0.73, 0.74]
    for seed, (b, m) in enumerate(zip(base, lora)):
        common = {"params_backbone": 1000, "params_adapter": 50, "seconds": 10.0, "epochs": 5,
                  "domain_auc": {"a": b, "b": None}}
        store.add(Cell("t", "s", "star", "none", seed), {"wauc": b, "pooled_auc": b - 0.01, **common})
        store.add(Cell("t", "s", "star", "mlora", seed), {"wauc": m, "pooled_auc": m - 0.01, **common})
    text = driver.multidomain_markdown(store, ["star", "pepnet"], "t", ["a", "b"])
    row = next(line for line in text.splitlines() if line.startswith("| star |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    _, p = paired_t_test(base, lora)
    assert cells[3] == f"{100 * (sum(lora) - sum(base)) / 3:+.2f}"
    assert cells[4] == fmt_p(p) != "—"
    assert cells[1] == fmt_pct(*mean_std(base)) and cells[2] == fmt_pct(*mean_std(lora))
    assert cells[5] == fmt_pct(*mean_std([b - 0.01 for b in base]))
    assert cells[6] == fmt_pct(*mean_std([m - 0.01 for m in lora]))
    assert cells[7] == "5.0%" and cells[8] == "2.0" and cells[9] == "2.0"
    assert "| pepnet |" not in text  # no runs, no row
    domain_row = next(line for line in text.splitlines() if line.startswith("| star | Base |"))
    assert domain_row.split("|")[-2].strip() == "—"  # an undefined domain AUC


def test_swr_protocol_sets_the_benchmarks_sizes():
    driver = _driver()
    model, train = driver.run_settings("scenario_wise_rec")
    assert model == {"user_dim": 16, "item_dim": 16, "domain_dim": 16} and train == {"batch_size": 4096}
    assert driver.run_settings("mlora") == ({}, {})
    assert driver.dataset_tag("ml-1m", "gender", "scenario_wise_rec") == "ml-1m-swr"
    assert driver.dataset_tag("synthetic", "gender", "mlora", "original") == "synthetic-original-loop"


@pytest.mark.parametrize("args, message", [
    (["--models=star,foo"], "foo"),
    (["--protocol=scenario_wise_rec"], "defined on MovieLens"),
])
def test_bad_flags_are_refused_before_any_run(tmp_path, args, message):
    proc = _drive(tmp_path, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "synthetic" / "runs.jsonl").exists()
