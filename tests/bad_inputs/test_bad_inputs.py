"""Bad-input corpus: every failure a user can meet, through the public entry points.

Each case builds a valid setup, runs it once successfully where there is something to
protect, breaks one thing, and runs the program again. It checks that:

- the message names the file, the line or the value;
- there is no bare traceback ("Traceback" never appears in stderr);
- nothing already written was damaged (every file of the earlier good run is byte for
  byte the same, and no temporary file is left behind).

`mlora-prepare` and `mlora-download` run in this process (they have their own flag
sets); the `mlora-train` cases run in one subprocess (`train_harness.py`), and the
Table-2 driver in another, because those two define the same absl flags.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mlora_tf.cli import download as download_cli
from mlora_tf.cli import prepare as prepare_cli
from mlora_tf.data import load_dataset
from tests.fixtures_amazon import write_amazon
from tests.fixtures_movielens import replace_line, write_ml1m, write_ml100k
from tests.fixtures_taobao import write_taobao

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HARNESS = os.path.join(HERE, "train_harness.py")
DRIVER = os.path.join(ROOT, "experiments", "reproduce_table2.py")


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.delenv("MLORA_TF_DATA_DIR", raising=False)


def run_cli(module, program, *args):
    module.FLAGS.unparse_flags()
    module.FLAGS([program, *args])
    try:
        return module.main([])
    finally:
        module.FLAGS.unparse_flags()


def snapshot(folder) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def assert_undamaged(before: dict, folder) -> None:
    after = snapshot(folder)
    for name, digest in before.items():
        assert after.get(name) == digest, f"{name} was changed or removed"
    leftovers = [n for n in after if n.endswith((".tmp", ".part")) or os.path.basename(n).startswith(".tmp")]
    assert not leftovers, leftovers


# --------------------------------------------------------------------------- #
# Raw-file cases through mlora-prepare.
# --------------------------------------------------------------------------- #


def _ml1m_case(mutate):
    def build(raw):
        fx = write_ml1m(raw)
        mutate(fx)
        return ["--dataset=ml-1m", f"--raw_dir={raw}"]

    return build


def _csv_rows(n=240, seed=1):
    rng = random.Random(seed)
    rows = []
    for r in range(n):
        site = "abc"[r % 3]
        split = ("train", "train", "train", "val", "test")[(r // 3) % 5]
        rows.append([f"u{rng.randint(0, 30)}", f"i{rng.randint(0, 40)}", site, str(int(rng.random() < 0.4)), split])
    return rows


def _csv_case(mutate, extra=()):
    def build(raw):
        os.makedirs(raw, exist_ok=True)
        lines = ["user,item,site,click,split"] + [",".join(r) for r in _csv_rows()]
        lines = mutate(lines)
        with open(os.path.join(raw, "clicks.csv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
        return ["--dataset=csv", f"--path={os.path.join(raw, 'clicks.csv')}", "--domain_column=site",
                "--label_column=click", "--features=user,item", *extra]

    return build


def _parquet_case(name, cut=False, extra=(), features="user,item"):
    """A parquet file a real writer made (`tests/fixtures/parquet/NAME`), perhaps cut short."""
    def build(raw):
        os.makedirs(raw, exist_ok=True)
        with open(os.path.join(ROOT, "tests", "fixtures", "parquet", name), "rb") as f:
            data = f.read()
        path = os.path.join(raw, "clicks.parquet")
        with open(path, "wb") as f:
            f.write(data[: len(data) * 2 // 3] if cut else data)
        return ["--dataset=csv", f"--path={path}", "--domain_column=site", "--label_column=click",
                f"--features={features}", *extra]

    return build


def _set(lines, index, value):
    lines[index] = value
    return lines


def _empty_ratings(fx):
    open(fx.files["ratings.dat"], "w").close()


def _drop_val_of_b(lines):
    return [l if not (l.split(",")[2] == "b" and l.endswith(",val")) else l[: -len("val")] + "test"
            for l in lines]


RAW_CASES = {
    # name: (builder, expected message regex)
    "empty file": (_ml1m_case(_empty_ratings), r"ratings\.dat is empty"),
    "wrong delimiter (ratings)": (
        _ml1m_case(lambda fx: replace_line(fx.files["ratings.dat"], 2, "1,1193,5,978300760")),
        r"Malformed line 2 of .*ratings\.dat: expected 4 fields separated by '::'.*'1,1193,5,978300760'"),
    "wrong delimiter (csv)": (
        _csv_case(lambda L: [l.replace(",", ";") for l in L]),
        r"clicks\.csv lacks the column.*wrong delimiter\? \(--delimiter=';'\)"),
    "too few fields": (
        _ml1m_case(lambda fx: replace_line(fx.files["ratings.dat"], 5, "3::1193::5")),
        r"Malformed line 5 of .*ratings\.dat: expected 4 fields.*found 3"),
    "too few fields (csv)": (
        _csv_case(lambda L: _set(L, 7, "u1,i2,a")),
        r"Malformed line 8 of .*clicks\.csv: 3 field\(s\) where the header has 5"),
    "non-numeric id": (
        _ml1m_case(lambda fx: replace_line(fx.files["ratings.dat"], 4, "x7::1193::5::978300760")),
        r"Malformed line 4 of .*ratings\.dat: field UserID must be .*Received: 'x7'"),
    "rating out of range": (
        _ml1m_case(lambda fx: replace_line(fx.files["ratings.dat"], 6, "2::1193::7::978300760")),
        r"Malformed line 6 of .*ratings\.dat: field Rating must be an integer rating in 1\.\.5\. Received: '7'"),
    "label not 0/1": (
        _csv_case(lambda L: _set(L, 3, ",".join(L[3].split(",")[:3] + ["2", "train"]))),
        r"Malformed line 4 of .*clicks\.csv: column click must be 0 or 1\. Received: '2'"),
    "duplicated header": (
        _csv_case(lambda L: _set(L, 0, "user,item,site,click,site")),
        r"Line 1 of .*clicks\.csv repeats column name\(s\) \['site'\]"),
    "domain with no rows in one split": (
        _csv_case(_drop_val_of_b, extra=("--split_column=split",)),
        r"clicks\.csv: domain 'b' has no rows in split 'val' \(column split\)"),
    "empty csv": (_csv_case(lambda L: []), r"clicks\.csv is empty"),
    "parquet cut short": (
        _parquet_case("pyarrow_snappy.parquet", cut=True),
        r"clicks\.parquet is not a Parquet file.*cut short"),
    "parquet nested column as a feature": (
        _parquet_case("nested.parquet", features="user,tags"),
        r"clicks\.parquet: column 'tags' is nested .*not a flat column"),
    "parquet with no rows": (
        _parquet_case("empty.parquet"),
        r"clicks\.parquet holds no rows"),
    "parquet null in a used column": (
        _parquet_case("pyarrow_snappy.parquet", extra=("--numeric_features=age",)),
        r"Row \d+ of .*clicks\.parquet: column age is null"),
    "damaged gzip (amazon)": (
        lambda raw: _amazon_truncated(raw),
        r"Could not read .*Office_Products_5\.json\.gz after line \d+.*truncated"),
    "a field after the last column (csv)": (
        _csv_case(lambda L: _set(L, 5, L[5] + ",x")),
        r"Malformed line 6 of .*clicks\.csv: 6 fields where the header has 5\. Received: '.*,x'"),
    "every line one field too many (csv)": (
        _csv_case(lambda L: [L[0]] + [l + ",7" for l in L[1:]]),
        r"Malformed line 2 of .*clicks\.csv: 6 fields where the header has 5"),
    "two trailing empty fields (u.data)": (
        lambda raw: _ml100k_line(raw, 6, "1\t6\t4\t881250949\t\t"),
        r"Malformed line 6 of .*u\.data: expected 4 fields.*found 5"),
    "a field too many (taobao click log)": (
        lambda raw: _taobao_line(raw, 4, lambda line: line + ",9"),
        r"Malformed line 4 of .*theme_click_log\.csv: 8 fields where the header has 7"),
}


def _ml100k_line(raw, lineno, line):
    write_ml100k(raw)
    replace_line(os.path.join(raw, "u.data"), lineno, line)
    return ["--dataset=ml-100k", f"--raw_dir={raw}"]


def _taobao_line(raw, lineno, change):
    write_taobao(raw)
    path = os.path.join(raw, "theme_click_log.csv")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines[lineno - 1] = change(lines[lineno - 1])
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return ["--dataset=taobao", f"--raw_dir={raw}"]


def _amazon_truncated(raw):
    write_amazon(raw)
    path = os.path.join(raw, "Office_Products_5.json.gz")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return ["--dataset=amazon", f"--raw_dir={raw}"]


@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_bad_raw_input_through_mlora_prepare(case, tmp_path, capsys, monkeypatch):
    builder, message = RAW_CASES[case]
    out = tmp_path / "out"
    # An earlier good preparation in OUT_DIR that the failing run must leave alone.
    good = write_ml1m(tmp_path / "good")
    assert run_cli(prepare_cli, "mlora-prepare", "--dataset=ml-1m", f"--raw_dir={good.folder}",
                   f"--out_dir={out}") == 0
    before = snapshot(out)
    capsys.readouterr()
    args = builder(str(tmp_path / "raw"))
    assert run_cli(prepare_cli, "mlora-prepare", *args, f"--out_dir={out}") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("mlora-prepare: error: ")  # after any progress lines
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert_undamaged(before, out)
    # The earlier preparation still loads.
    assert load_dataset("ml-1m", data_dir=out).info["cache_status"] == "prepared"


def _wild_text(text: str, sep: str, trailing_field: bool = True) -> bytes:
    """A file as found in the wild: a UTF-8 BOM, CRLF line ends, a trailing separator on
    every third line and trailing spaces on every fifth."""
    out = []
    for i, line in enumerate(text.splitlines()):
        if trailing_field and i % 3 == 1:
            line += sep
        if i % 5 == 2:
            line += "  "
        out.append(line)
    return b"\xef\xbb\xbf" + "\r\n".join(out).encode("utf-8") + b"\r\n"


def _make_wild(paths, sep, trailing_field=True):
    for path in paths:
        if path.endswith(".gz"):
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as f:
                data = _wild_text(f.read(), sep, trailing_field)
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            with open(path, encoding="utf-8") as f:
                data = _wild_text(f.read(), sep, trailing_field)
            with open(path, "wb") as f:
                f.write(data)


def _wild_movielens(raw, wild):
    fx = write_ml100k(raw, orphan_ratings=4)
    if wild:
        _make_wild([fx.files["u.data"]], "\t")
        _make_wild([fx.files["u.user"]], "|")
    return ["--dataset=ml-100k", f"--raw_dir={raw}"], ["u.data", "u.user"]


def _wild_ml1m(raw, wild):
    fx = write_ml1m(raw, orphan_ratings=4)
    if wild:
        _make_wild([fx.files["ratings.dat"], fx.files["users.dat"]], "::")
    return ["--dataset=ml-1m", f"--raw_dir={raw}"], ["ratings.dat", "users.dat"]


def _wild_csv(raw, wild):
    build = _csv_case(lambda L: L)
    args = build(raw)
    if wild:
        _make_wild([os.path.join(raw, "clicks.csv")], ",")
    return args, ["clicks.csv"]


def _wild_taobao(raw, wild):
    write_taobao(raw)
    names = ["theme_click_log.csv", "user_embedding.csv", "item_embedding.csv"]
    if wild:
        _make_wild([os.path.join(raw, n) for n in names], ",")
    return ["--dataset=taobao", f"--raw_dir={raw}"], names


def _wild_amazon(raw, wild):
    write_amazon(raw)
    names = ["Office_Products_5.json.gz"]
    if wild:
        _make_wild([os.path.join(raw, n) for n in names], "", trailing_field=False)
    return ["--dataset=amazon", f"--raw_dir={raw}"], names


WILD_CASES = {"ml-100k": _wild_movielens, "ml-1m": _wild_ml1m, "csv": _wild_csv, "taobao": _wild_taobao,
              "amazon": _wild_amazon}


@pytest.mark.parametrize("name", sorted(WILD_CASES))
def test_files_as_they_come_are_accepted_and_counted(name, tmp_path, capsys, caplog):
    """A UTF-8 BOM, CRLF line ends, trailing whitespace and a trailing empty field: the
    same prepared dataset as the clean files, and one log line per file saying so."""
    datasets = {}
    for kind in ("clean", "wild"):
        args, files = WILD_CASES[name](str(tmp_path / kind), wild=kind == "wild")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="absl"):
            assert run_cli(prepare_cli, "mlora-prepare", *args, f"--out_dir={tmp_path / ('out-' + kind)}") == 0
        accepted = [r.getMessage() for r in caplog.records if "accepted" in r.getMessage()]
        if kind == "clean":
            assert not accepted, accepted
        else:
            for file in files:
                lines = [m for m in accepted if m.startswith(os.path.join(str(tmp_path / kind), file) + ":")]
                assert len(lines) == 1, (file, accepted)
                assert "UTF-8 byte-order mark" in lines[0] and "CRLF line end" in lines[0], lines[0]
                assert "trailing whitespace" in lines[0], lines[0]
                if name != "amazon":
                    assert "trailing empty field" in lines[0], lines[0]
        datasets[kind] = load_dataset(name, data_dir=tmp_path / ("out-" + kind))
    assert "Traceback" not in capsys.readouterr().err
    clean, wild = datasets["clean"], datasets["wild"]
    assert clean.vocab_sizes == wild.vocab_sizes
    for split in ("train", "val", "test"):
        for column in clean.splits[split]:
            np.testing.assert_array_equal(clean.splits[split][column], wild.splits[split][column])


def test_unknown_user_ids_in_ratings_are_dropped_and_named(tmp_path, capsys, caplog):
    write_ml1m(tmp_path / "raw", orphan_ratings=5)
    with caplog.at_level(logging.WARNING):
        assert run_cli(prepare_cli, "mlora-prepare", "--dataset=ml-1m", f"--raw_dir={tmp_path / 'raw'}",
                       f"--out_dir={tmp_path / 'out'}") == 0
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "dropped 5 ratings of 3 users missing from" in warning and "users.dat" in warning
    assert "e.g. UserID [" in warning
    assert load_dataset("ml-1m", data_dir=tmp_path / "out").info["dropped_orphan_ratings"] == 5
    assert "Traceback" not in capsys.readouterr().err


def test_cache_file_truncated_mid_write_is_detected_and_rebuilt(tmp_path, caplog, capsys):
    write_ml1m(tmp_path / "raw")
    args = ("--dataset=ml-1m", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={tmp_path / 'out'}")
    assert run_cli(prepare_cli, "mlora-prepare", *args) == 0
    manifest = json.loads((tmp_path / "out" / "prepared.json").read_text())
    cache_file = tmp_path / "out" / manifest["cache_file"]
    good = cache_file.read_bytes()
    first = load_dataset("ml-1m", data_dir=tmp_path / "out")
    cache_file.write_bytes(good[: len(good) * 2 // 3])
    with caplog.at_level(logging.WARNING):
        assert run_cli(prepare_cli, "mlora-prepare", *args) == 0
    assert any("Ignoring unreadable cache file" in r.getMessage() and str(cache_file) in r.getMessage()
               for r in caplog.records)
    again = load_dataset("ml-1m", data_dir=tmp_path / "out")
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(again.splits[s]["pid"], first.splits[s]["pid"])
    assert cache_file.read_bytes() == good
    assert "Traceback" not in capsys.readouterr().err


def test_disk_full_while_writing_the_prepared_manifest(tmp_path, monkeypatch, capsys):
    import mlora_tf.io as mlora_io

    write_ml1m(tmp_path / "raw")
    args = ("--dataset=ml-1m", f"--raw_dir={tmp_path / 'raw'}", f"--out_dir={tmp_path / 'out'}")
    assert run_cli(prepare_cli, "mlora-prepare", *args) == 0
    before = snapshot(tmp_path / "out")
    capsys.readouterr()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mlora_io.os, "fsync", full)
    assert run_cli(prepare_cli, "mlora-prepare", *args) == 2
    err = capsys.readouterr().err
    assert "mlora-prepare: error:" in err and "prepared.json" in err and "No space left on device" in err
    assert "Traceback" not in err
    monkeypatch.undo()
    assert_undamaged(before, tmp_path / "out")


# --------------------------------------------------------------------------- #
# mlora-download: a zip whose entry escapes the folder.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("entry", [("../evil", "file"), ("ml-1m/../../evil", "file"), ("ml-1m/ratings.dat", "symlink")])
def test_zip_entry_escaping_the_folder(tmp_path, capsys, entry):
    name, kind = entry
    path = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
        info = zipfile.ZipInfo(name)
        info.external_attr = ((stat.S_IFLNK if kind == "symlink" else stat.S_IFREG) | 0o644) << 16
        zf.writestr(info, "/etc/passwd" if kind == "symlink" else "pwned")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    data = tmp_path / "a" / "data"
    (data / "other").mkdir(parents=True)
    (data / "other" / "keep.txt").write_text("mine")
    before = snapshot(data)
    assert run_cli(download_cli, "mlora-download", "--dataset=ml-1m", f"--data_dir={data}",
                   f"--url={path.as_uri()}", f"--sha256={digest}") == 2
    err = capsys.readouterr().err
    assert f"entry {name!r}" in err and "Nothing was extracted" in err and "Traceback" not in err
    assert_undamaged(before, data)
    assert sorted(snapshot(data)) == ["other/keep.txt"]
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()


# --------------------------------------------------------------------------- #
# mlora-train cases (one subprocess).
# --------------------------------------------------------------------------- #


def _one_class_csv(path):
    """Domain 'b': its test rows are all negatives; 'a' and 'c' are mixed everywhere."""
    rng = random.Random(3)
    lines = ["user,item,site,click,split"]
    for r in range(600):
        site = "abc"[r % 3]
        split = ("train", "train", "train", "val", "test")[(r // 3) % 5]
        click = int(rng.random() < 0.4)
        if site == "b" and split == "test":
            click = 0
        lines.append(f"u{rng.randint(0, 50)},i{rng.randint(0, 70)},{site},{click},{split}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def train_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    _one_class_csv(tmp / "clicks.csv")
    prepared = tmp / "prepared"
    rc = run_cli(prepare_cli, "mlora-prepare", "--dataset=csv", f"--path={tmp / 'clicks.csv'}",
                 "--domain_column=site", "--label_column=click", "--features=user,item",
                 "--split_column=split", f"--out_dir={prepared}")
    assert rc == 0
    (tmp / "bad_config.json").write_text(json.dumps({"model": {"name": "wdl_lora", "lora_redcue": 16}}))
    full = tmp / "full"
    full.mkdir()
    previous = b'{"wauc": 0.7, "note": "the previous result"}\n'
    (full / "result.json").write_bytes(previous)
    small = ["--model=mlp", "--adapter=mlora", "--hidden_units=8", "--max_epochs=1", "--batch_size=256"]
    cases = {
        "unknown config key": {"argv": ["mlora-train", f"--config={tmp / 'bad_config.json'}",
                                        "--dataset=synthetic"]},
        "prepared folder of another dataset": {"argv": ["mlora-train", "--dataset=ml-1m",
                                                        f"--data_dir={prepared}", *small]},
        "one-class test domain": {"argv": ["mlora-train", "--dataset=csv", f"--data_dir={prepared}",
                                           f"--output_dir={tmp / 'run'}", *small]},
        "disk full": {"argv": ["mlora-train", "--dataset=csv", f"--data_dir={prepared}",
                               f"--output_dir={full}", *small], "enospc": True},
    }
    (tmp / "cases.json").write_text(json.dumps(list(cases.values())))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLORA_TF_CACHE=str(tmp / "cache"))
    proc = subprocess.run([sys.executable, HARNESS, str(tmp / "cases.json"), str(tmp / "results.json")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = dict(zip(cases, json.loads((tmp / "results.json").read_text())))
    return tmp, results, previous


def test_config_with_an_unknown_key(train_results):
    tmp, results, _ = train_results
    r = results["unknown config key"]
    assert r["rc"] == 2 and not r["traceback"] and "Traceback" not in r["stderr"]
    assert "mlora-train: error:" in r["stderr"] and "bad_config.json" in r["stderr"]
    assert "'lora_redcue'" in r["stderr"] and "Did you mean 'lora_reduce'" in r["stderr"]


def test_prepared_folder_of_another_dataset(train_results):
    _, results, _ = train_results
    r = results["prepared folder of another dataset"]
    assert r["rc"] == 2 and "Traceback" not in r["stderr"]
    assert "prepared.json holds dataset 'csv', not 'ml-1m'" in r["stderr"]


def test_domain_whose_test_split_has_one_class(train_results):
    tmp, results, _ = train_results
    r = results["one-class test domain"]
    assert r["rc"] == 0 and "Traceback" not in r["stderr"], r["stderr"][-2000:]
    assert "AUC undefined (one class) for domains ['b']: left out of the mean" in r["stderr"]
    record = json.loads((tmp / "run" / "result.json").read_text())
    auc, size = record["domain_auc"], record["domain_test_size"]
    assert auc["b"] is None and auc["a"] is not None and auc["c"] is not None
    expected = (auc["a"] * size["a"] + auc["c"] * size["c"]) / (size["a"] + size["c"])
    assert record["wauc"] == pytest.approx(expected, abs=1e-12)
    assert "undefined" in r["stdout"]  # the printed per-domain table


def test_disk_full_while_writing_results_keeps_the_previous_file(train_results):
    tmp, results, previous = train_results
    r = results["disk full"]
    assert r["rc"] != 0
    assert "No space left on device" in r["stderr"]
    assert (tmp / "full" / "result.json").read_bytes() == previous
    assert not [n for n in os.listdir(tmp / "full") if n.endswith(".tmp")]


def test_disk_full_while_writing_results_is_one_clear_line(train_results):
    tmp, results, _ = train_results
    r = results["disk full"]
    assert r["rc"] == 2 and not r["traceback"] and "Traceback" not in r["stderr"]
    # the first write that fails names its file (the phase checkpoint comes before result.json)
    assert "mlora-train: error:" in r["stderr"] and "could not write" in r["stderr"]
    assert str(tmp / "full") in r["stderr"]


# --------------------------------------------------------------------------- #
# The Table-2 driver and a results file with a torn last line.
# --------------------------------------------------------------------------- #


def test_results_file_with_a_torn_last_line(tmp_path):
    folder = tmp_path / "synthetic"
    folder.mkdir()
    common = {"params_backbone": 1000, "params_adapter": 50, "domain_auc": {}, "epochs": 1}
    cell = {"dataset": "synthetic", "split": "gender", "model": "mlp", "seed": 2024, "lora_reduce": None,
            "experts_per_domain": None, "as_shipped": False}
    good = [json.dumps({"wauc": w, **common, "cell": dict(cell, adapter=a)}, sort_keys=True)
            for a, w in (("none", 0.70), ("mlora", 0.72))]
    runs = folder / "runs.jsonl"
    runs.write_text("\n".join(good) + "\n" + '{"wauc": 0.71, "cell": {"dataset": "synth')
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, DRIVER, f"--results_dir={tmp_path}", "--dataset=synthetic", "--models=mlp",
         "--data_options=n_rows=600,n_users=50,n_items=40", "--max_epochs=1", "--noplot"],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "runs.jsonl line 3 is torn or invalid: dropped" in proc.stderr
    assert runs.read_text() == "\n".join(good) + "\n"  # earlier records intact, torn line gone
    table = (folder / "table2.md").read_text()
    assert "| mlp |" in table
