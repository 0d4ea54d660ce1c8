"""Programs check their flags and input paths before they work, and hide TensorFlow's
start-up chatter unless `--tf_log` is given."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest

from mlora_tf.cli import tf_log
from tests.fixtures_movielens import write_ml1m
from tests.test_data_prepare import run_prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TensorFlow's C++ start-up lines (absl format) and the messages the issue names.
CHATTER = re.compile(r"^[IW]\d{4} |oneDNN custom operations|cpu_feature_guard|This TensorFlow binary is optimized"
                     r"|cudart_stub|All log messages before absl::InitializeLog", re.M)


pytestmark = pytest.mark.usefixtures("isolated_default_cache")


def program(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m mlora_tf.cli.MODULE ARGS` as a user runs it (no TF_CPP_MIN_LOG_LEVEL set)."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(env or {})
    environ["PYTHONPATH"] = ROOT + os.pathsep + environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", f"mlora_tf.cli.{module}", *args], capture_output=True,
                          text=True, timeout=300, env=environ, cwd=ROOT)


# --------------------------------------------------------------------------- #
# mlora-prepare (in this process: it has its own flag set).
# --------------------------------------------------------------------------- #


def test_prepare_names_a_missing_path_first(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert run_prepare(f"--path={missing}") == 2
    err = capsys.readouterr().err
    assert err.startswith("mlora-prepare: error: Data file not found") and str(missing) in err
    out = tmp_path / "out"
    assert run_prepare("--dataset=csv", f"--path={missing}", "--domain_column=site", "--label_column=click",
                       f"--out_dir={out}") == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "features" not in err
    assert not out.exists()  # nothing was done


def test_prepare_checks_every_flag_before_working(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("user,item,site,click\nu,i,a,1\n")
    out = tmp_path / "out"
    cases = [
        (["--dataset=csv", f"--path={tmp_path / 'c.csv'}", "--label_column=click", f"--out_dir={out}"],
         "needs --domain_column"),
        (["--dataset=csv", f"--path={tmp_path / 'c.csv'}", "--domain_column=site", "--label_column=click"],
         "--out_dir is required"),
        (["--dataset=csv", f"--path={tmp_path / 'c.csv'}", "--domain_column=site", "--label_column=click",
          "--n_buckets=1", f"--out_dir={out}"], "--n_buckets must be >= 2"),
        (["--dataset=ml-1m", f"--out_dir={out}"], "--raw_dir is required"),
    ]
    for args, message in cases:
        assert run_prepare(*args) == 2, args
        assert message in capsys.readouterr().err, args
    assert not out.exists()


def _typed_csv(path, n=240, seed=3):
    rng = random.Random(seed)
    lines = ["user,item,site,click,price,device"]
    for r in range(n):
        lines.append(f"u{rng.randint(0, 30)},{rng.randint(1, 50)},{'abc'[r % 3]},{int(rng.random() < 0.4)},"
                     f"{rng.uniform(0, 9):.3f},{rng.choice(['ios', 'web'])}")
    path.write_text("\n".join(lines) + "\n")


def test_prepare_csv_without_features_prints_the_inferred_flags(tmp_path, capsys):
    _typed_csv(tmp_path / "clicks.csv")
    assert run_prepare("--dataset=csv", f"--path={tmp_path / 'clicks.csv'}", "--domain_column=site",
                       "--label_column=click", f"--out_dir={tmp_path / 'out'}") == 0
    printed = capsys.readouterr().out
    assert "No --features: inferred from" in printed
    assert "--features=user,item,device --numeric_features=price" in printed
    assert "Model features: uid <- user" in printed and "price" in printed


# --------------------------------------------------------------------------- #
# The TensorFlow programs (subprocesses: they share absl's global flags).
# --------------------------------------------------------------------------- #


def test_train_unknown_model_fails_before_loading_data(tmp_path):
    write_ml1m(tmp_path / "raw")
    cache = tmp_path / "cache"
    result = program("train", "--model=foo", "--dataset=ml-1m", f"--data_dir={tmp_path / 'raw'}",
                     f"--cache_dir={cache}", f"--output_dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr
    assert "mlora-train: error: Unknown model 'foo'" in result.stderr
    assert not cache.exists() and not (tmp_path / "run").exists()  # no data loaded, nothing written
    assert not CHATTER.search(result.stderr), result.stderr  # TensorFlow's start-up lines hidden
    assert "Traceback" not in result.stderr


def test_train_missing_data_dir_is_named(tmp_path):
    result = program("train", f"--data_dir={tmp_path / 'nope'}", "--dataset=ml-1m")
    assert result.returncode == 2
    assert f"--data_dir: {tmp_path / 'nope'} not found" in result.stderr


def test_evaluate_export_add_domain_check_their_paths_first(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = program("evaluate", f"--run_dir={run_dir}", f"--data={tmp_path / 'nope.csv'}")
    assert result.returncode == 2 and f"--data: {tmp_path / 'nope.csv'} not found" in result.stderr
    result = program("export", f"--run_dir={tmp_path / 'norun'}", f"--export_dir={tmp_path / 'e'}")
    assert result.returncode == 2 and f"--run_dir: {tmp_path / 'norun'} not found" in result.stderr
    assert not (tmp_path / "e").exists()
    result = program("add_domain", f"--run_dir={run_dir}", f"--domain_data={tmp_path / 'new.csv'}",
                     f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2 and f"--domain_data: {tmp_path / 'new.csv'} not found" in result.stderr
    for text in (result.stderr,):
        assert not CHATTER.search(text) and "Traceback" not in text


def test_tf_log_brings_tensorflow_lines_back():
    quiet = program("train", "--list_models")
    loud = program("train", "--list_models", "--tf_log")
    assert quiet.returncode == 0 and loud.returncode == 0
    assert quiet.stdout == loud.stdout
    assert not CHATTER.search(quiet.stderr), quiet.stderr
    # What TensorFlow prints at start-up differs between machines; where it prints
    # anything, --tf_log shows it.
    assert len(loud.stderr) >= len(quiet.stderr)


def test_running_program_and_the_flag_on_the_command_line():
    assert tf_log.running_program(["/venv/bin/mlora-train"], []) == "mlora-train"
    assert tf_log.running_program(["-m"], ["python", "-m", "mlora_tf.cli.prepare", "--x"]) == "mlora_tf.cli.prepare"
    assert tf_log.running_program(["/x/mlora_tf/cli/train.py"], []) == "mlora_tf.cli.train"
    assert tf_log.running_program(["/venv/bin/pytest"], ["python", "-m", "pytest"]) is None
    assert tf_log.wants_tf_log(["p", "--tf_log"]) and tf_log.wants_tf_log(["p", "--tf_log=true"])
    assert not tf_log.wants_tf_log(["p"]) and not tf_log.wants_tf_log(["p", "--tf_log", "--notf_log"])
    assert not tf_log.wants_tf_log(["p", "--tf_log=false"]) and not tf_log.wants_tf_log(["p", "--", "--tf_log"])
    # TensorFlow is imported here already (and this is no program): nothing to do.
    assert tf_log.quiet_tensorflow_start(["/venv/bin/mlora-train"]) is False
