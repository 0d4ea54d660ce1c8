"""`mlora-evaluate`: a run, a file and an export give the trainer's numbers; calibration;
clear errors for bad files."""

import json

import numpy as np
import pandas as pd
import pytest

from mlora_tf.data.interactions import read_interactions
from mlora_tf.runs.evaluate import evaluate, format_report
from mlora_tf.export import RunFolder

COLUMNS = ["uid", "pid", "domain", "label"]


def _test_frame(run_dataset, run_dir, shuffle_seed=None):
    test = run_dataset(run_dir).splits["test"]
    frame = pd.DataFrame({c: test[c] for c in COLUMNS})
    frame["label"] = frame["label"].astype(int)
    if shuffle_seed is not None:  # domains interleaved: the scorer groups them itself
        frame = frame.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
    return frame


def _same_metrics(report, record, rel=1e-9):
    """`rel`: 1e-9 for the trainer's own rows in its own order; rows in another order are
    batched differently, and oneDNN's float32 kernels may then round a probability one
    ulp apart (seen on AVX-512 machines), which moves a logloss by ~1e-9 of itself."""
    for key in ("domain_auc", "domain_auc500", "domain_logloss"):
        for name, value in record[key].items():
            assert report[key][name] == pytest.approx(value, rel=rel, abs=1e-12), (key, name)
    assert report["domain_size"] == record["domain_test_size"]
    for key in ("wauc", "wauc500", "mean_auc", "logloss"):
        assert report[key] == pytest.approx(record[key], rel=rel), key


def test_run_on_its_test_split_gives_the_trainers_numbers(mlora_run):
    record = RunFolder.open(mlora_run).record
    report = evaluate(mlora_run)
    assert report["model_kind"] == "keras" and "test" in report["data"]
    _same_metrics(report, record)
    table = format_report(report)
    assert "WAUC" in table and "pred/obs" in table and all(f"d{i}" in table for i in range(3))


def test_csv_file_gives_the_same_metrics_and_the_calibration(mlora_run, run_dataset, tmp_path):
    record = RunFolder.open(mlora_run).record
    # In the trainer's row order: the trainer's numbers to 1e-9.
    in_order = tmp_path / "in_order.csv"
    _test_frame(run_dataset, mlora_run).to_csv(in_order, index=False)
    _same_metrics(evaluate(mlora_run, data=str(in_order)), record)
    # Shuffled, with an extra column: the same numbers up to float32 rounding.
    frame = _test_frame(run_dataset, mlora_run, shuffle_seed=3)
    frame["extra"] = "ignored"
    path = tmp_path / "test.csv"
    frame.to_csv(path, index=False)
    report = evaluate(mlora_run, data=str(path))
    _same_metrics(report, record, rel=1e-7)
    # Calibration from the model's own predictions.
    model = RunFolder.open(mlora_run).load_model()
    probs = model.predict_on_batch({c: frame[c].to_numpy() for c in ("uid", "pid", "domain")})["probability"]
    for d in range(3):
        rows = frame["domain"].to_numpy() == d
        mean_p, ctr = probs[rows].astype(np.float64).mean(), frame["label"].to_numpy()[rows].mean()
        assert report["domain_mean_prediction"][f"d{d}"] == pytest.approx(mean_p, rel=1e-5)
        assert report["domain_observed_ctr"][f"d{d}"] == pytest.approx(ctr, rel=1e-12)
        assert report["domain_calibration"][f"d{d}"] == pytest.approx(mean_p / ctr, rel=1e-5)
    assert report["observed_ctr"] == pytest.approx(frame["label"].mean())
    assert report["calibration"] == pytest.approx(probs.astype(np.float64).mean() / frame["label"].mean(), rel=1e-5)
    assert report["rows"] == len(frame)


def test_export_scores_like_the_runs_serving_graph(mlora_run, mlora_export):
    exported = evaluate(mlora_export, split="val")
    in_memory = evaluate(mlora_run, split="val", serving_lookup=True)
    assert exported["model_kind"] == "saved_model" and in_memory["model_kind"] == "serving"
    for key in ("domain_auc", "domain_logloss", "domain_mean_prediction"):
        for name in exported[key]:
            assert exported[key][name] == pytest.approx(in_memory[key][name], rel=1e-6), (key, name)


def test_bad_files_name_the_file_and_the_problem(mlora_run, run_dataset, tmp_path):
    frame = _test_frame(run_dataset, mlora_run).iloc[:50]
    cases = {
        "no_label.csv": (frame.drop(columns="label"), r"no_label\.csv lacks column\(s\) \['label'\]"),
        "text_uid.csv": (frame.assign(uid=["x7"] + list(frame["uid"].iloc[1:])), r"text_uid\.csv: column `uid` .*'x7' on line 2"),
        "label_two.csv": (frame.assign(label=[2] + list(frame["label"].iloc[1:])), r"label_two\.csv: column `label` must hold 0 or 1"),
        "empty_pid.csv": (frame.assign(pid=[None] * 3 + list(frame["pid"].iloc[3:])), r"empty_pid\.csv: column `pid`.*3 do not"),
        "domain_9.csv": (frame.assign(domain=9), r"domain_9\.csv: `domain` ids must be in \[0, 3\) \(d0, d1, d2\).*\[9\]"),
        "uid_big.csv": (frame.assign(uid=10**6), r"uid_big\.csv: `uid` ids outside .*\[0, 200\).*--serving_lookup"),
    }
    for name, (bad, message) in cases.items():
        bad.to_csv(tmp_path / name, index=False)
        with pytest.raises(ValueError, match=message):
            evaluate(mlora_run, data=str(tmp_path / name))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match=r"Unknown data file type .*x\.json"):
        read_interactions(str(tmp_path / "x.json"))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_interactions(str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match="split"):
        evaluate(mlora_run, split="dev")
    # Unseen ids are fine through the serving lookup.
    report = evaluate(mlora_run, data=str(tmp_path / "uid_big.csv"), serving_lookup=True)
    assert report["rows"] == 50


def test_parquet_file(mlora_run, run_dataset, tmp_path):
    frame = _test_frame(run_dataset, mlora_run)
    frame.to_parquet(tmp_path / "test.parquet")
    _same_metrics(evaluate(mlora_run, data=str(tmp_path / "test.parquet")), RunFolder.open(mlora_run).record)


def test_evaluate_program_prints_the_table_and_writes_json(programs):
    started, paths = programs
    proc = started["evaluate"].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WAUC" in proc.stdout and "pred/obs" in proc.stdout
    written = json.loads(open(paths["metrics"]).read())
    _same_metrics(written, RunFolder.open(written["model_dir"]).record)
    assert set(written["domain_calibration"]) == {"d0", "d1", "d2"}

