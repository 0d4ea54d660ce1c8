"""`mlora-prepare`: raw files -> a prepared folder that `load_dataset` / `mlora-train` read."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from mlora_tf.cli import prepare as prepare_cli
from mlora_tf.config import DataConfig, RunConfig
from mlora_tf.data import load_dataset, prepared
from mlora_tf.runs.train import load_run_dataset
from tests.fixtures_amazon import write_amazon
from tests.fixtures_movielens import write_ml1m


pytestmark = pytest.mark.usefixtures("isolated_default_cache")


def run_prepare(*args: str) -> int:
    """Runs `mlora-prepare` in this process (its own flag set) and returns the exit code."""
    prepare_cli.FLAGS.unparse_flags()
    prepare_cli.FLAGS(["mlora-prepare", *args])
    try:
        return prepare_cli.main([])
    finally:
        prepare_cli.FLAGS.unparse_flags()


def _same(a, b):
    for s in ("train", "val", "test"):
        for c in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(a.splits[s][c], b.splits[s][c])


def test_prepare_movielens_then_train_reads_the_out_dir(tmp_path, capsys):
    write_ml1m(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_prepare("--dataset=ml-1m", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={out}") == 0
    printed = capsys.readouterr().out
    assert "600,125" in printed and "200,042" in printed and "6,041" in printed  # Table 1 column
    assert "got" in printed and "expected" in printed
    manifest = json.loads((out / "prepared.json").read_text())
    assert manifest["dataset"] == "ml-1m" and manifest["domain_split"] == "gender"
    assert manifest["statistics"]["domains"] == 2 and manifest["expected"]["train"] == 600125
    assert (out / manifest["cache_file"]).is_file()

    # 1. data_dir = the prepared folder, no raw files needed.
    direct = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=False)
    os.rename(tmp_path / "raw", tmp_path / "raw-moved")
    ds = load_dataset("ml-1m", data_dir=out)
    assert ds.info["cache_status"] == "prepared"
    _same(ds, direct)
    # The drivers' path: RunConfig.data.data_dir (what mlora-train --data_dir sets).
    run_ds = load_run_dataset(RunConfig(data=DataConfig(dataset="ml-1m", data_dir=str(out))))
    _same(run_ds, direct)
    # 2. raw files + cache_dir = the prepared folder: an ordinary cache hit.
    os.rename(tmp_path / "raw-moved", tmp_path / "raw")
    hit = load_dataset("ml-1m", data_dir=tmp_path / "raw", cache_dir=out)
    assert hit.info["cache_status"] == "hit"


def test_prepared_folder_refuses_other_settings(tmp_path):
    write_ml1m(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_prepare("--dataset=ml-1m", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={out}") == 0
    with pytest.raises(ValueError, match="holds dataset 'ml-1m', not 'ml-100k'"):
        load_dataset("ml-100k", data_dir=out)
    with pytest.raises(ValueError, match="domain_split='gender'.*Received: domain_split='age'"):
        load_dataset("ml-1m", data_dir=out, domain_split="age")
    with pytest.raises(ValueError, match="seed=123. Received: seed=5"):
        load_dataset("ml-1m", data_dir=out, seed=5)
    with pytest.raises(ValueError, match="fractions"):
        load_dataset("ml-1m", data_dir=out, fractions=(0.8, 0.1, 0.1))


def test_damaged_prepared_file_is_rebuilt_from_the_recorded_raw_folder(tmp_path):
    write_ml1m(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_prepare("--dataset=ml-1m", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={out}") == 0
    cache_file = out / json.loads((out / "prepared.json").read_text())["cache_file"]
    good = load_dataset("ml-1m", data_dir=out)
    data = cache_file.read_bytes()
    cache_file.write_bytes(data[: len(data) // 2])  # torn mid-write
    rebuilt = load_dataset("ml-1m", data_dir=out)
    _same(rebuilt, good)
    assert load_dataset("ml-1m", data_dir=out).info["cache_status"] == "prepared"  # repaired
    cache_file.write_bytes(data[:100])
    os.rename(tmp_path / "raw", tmp_path / "gone")
    with pytest.raises(ValueError, match="missing or damaged.*run mlora-prepare again"):
        load_dataset("ml-1m", data_dir=out)


def test_prepare_amazon_prints_table1_and_progress(tmp_path, capsys):
    write_amazon(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_prepare("--dataset=amazon", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={out}") == 0
    captured = capsys.readouterr()
    assert "445,789" in captured.out and "9,968,333" in captured.out and "58.9/19.9/21.2" in captured.out
    assert "negatives 0 Musical_Instruments [" in captured.err and "100%" in captured.err
    ds = load_dataset("amazon", data_dir=out)
    assert ds.n_domains == 6 and ds.info["rho"] == [0.22, 0.23, 0.32, 0.23, 0.47, 0.21]


def test_prepare_errors_are_one_line(tmp_path, capsys):
    assert run_prepare("--dataset=ml-1m", f"--raw_dir={tmp_path / 'nope'}", f"--out_dir={tmp_path / 'o'}") == 2
    assert "mlora-prepare: error: Raw folder not found" in capsys.readouterr().err
    assert run_prepare("--dataset=amazon", "--domains=10", f"--raw_dir={tmp_path}", f"--out_dir={tmp_path}") == 2
    assert "--domains and --time_split apply to --dataset=taobao only" in capsys.readouterr().err
    assert run_prepare("--dataset=nosuch", f"--raw_dir={tmp_path}", f"--out_dir={tmp_path / 'o'}") == 2
    assert "Unknown dataset" in capsys.readouterr().err
    assert run_prepare("--dataset=synthetic", f"--out_dir={tmp_path / 'o'}") == 2
    assert "nothing to prepare" in capsys.readouterr().err


def test_text_progress_bar():
    stream = io.StringIO()
    bar = prepare_cli.TextProgress(stream=stream, width=10)
    for i in range(0, 101):
        bar("negatives", i, 100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # not a terminal: one line per 10 %
    assert lines[-1].startswith("negatives [##########] 100% 100/100")


def test_default_progress_logs_every_tenth(caplog):
    import logging

    from absl import logging as absl_logging

    old = absl_logging.get_verbosity()  # other tests' programs may have lowered it
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        with caplog.at_level(logging.INFO):
            for i in range(0, 51):
                prepared.progress("step", i, 50)
    finally:
        absl_logging.set_verbosity(old)
    assert sum("step:" in r.getMessage() for r in caplog.records) == 10


def test_prepare_taobao_domains_and_time_split(tmp_path, capsys):
    from mlora_tf.data import taobao
    from tests.fixtures_taobao import write_taobao

    write_taobao(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_prepare("--dataset=taobao", "--domains=10", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={out}") == 0
    printed = capsys.readouterr().out
    assert "23,778" in printed and "92,137" in printed and "53.2/21.7/25.1" in printed
    ds = load_dataset("taobao", data_dir=out, domain_split="theme_10")
    assert ds.info["cache_status"] == "prepared" and ds.n_domains == 10
    direct = taobao.load_taobao(data_dir=tmp_path / "raw", cache_dir=False)
    _same(ds, direct)
    np.testing.assert_array_equal(taobao.pretrained_embeddings(ds)["uid"], taobao.pretrained_embeddings(direct)["uid"])
    out_t = tmp_path / "out-time"
    assert run_prepare("--dataset=taobao", "--domains=5", "--time_split", f"--raw_dir={tmp_path / 'raw'}",
                       f"--out_dir={out_t}") == 0
    ds_t = load_dataset("taobao", data_dir=out_t)  # no split given: whatever was prepared
    assert ds_t.name == "taobao/theme_5_time" and "train__reach_time" in prepared.get_extras(ds_t)
