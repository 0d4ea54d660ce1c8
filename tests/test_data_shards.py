"""Shards on disk (`mlora_tf.data.shards`, `mlora-prepare --format=tfrecord|parquet`):
exact round trips, per-domain streams, reproducible shuffles, damaged files named."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.cli import prepare as prepare_cli
from mlora_tf.data import load_dataset, prepared, shards
from mlora_tf.data.cache import hash_file
from mlora_tf.data.dataset import SPLITS, MultiDomainDataset
from mlora_tf.data.synthetic_mt import load_synthetic_multitask

FORMATS = ("tfrecord", "parquet")


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", n_rows=1500, n_users=200, n_items=100)


@pytest.fixture(scope="module")
def multitask():
    # Three features beyond uid/pid/domain, a dense feature and two labels.
    return load_synthetic_multitask(n_rows=600, n_users=80, n_items=40)


def assert_same_dataset(got, want):
    """Rows in the same order and dtypes, schema, vocabularies, domain names, info."""
    assert got.name == want.name
    assert got.n_domains == want.n_domains
    assert got.vocab_sizes == want.vocab_sizes
    assert got.domain_names == want.domain_names
    assert (got.features, got.dense_features, got.labels) == (want.features, want.dense_features, want.labels)
    assert got.sizes() == want.sizes()
    for split in SPLITS:
        assert set(got.splits[split]) == set(want.splits[split])
        for column, values in want.splits[split].items():
            assert got.splits[split][column].dtype == values.dtype, (split, column)
            np.testing.assert_array_equal(got.splits[split][column], values, err_msg=f"{split}/{column}")


def _jsonish(value):
    return json.loads(json.dumps(value, default=list))


def rows_of(dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    batches = list(dataset.as_numpy_iterator())
    return {c: np.concatenate([b[c] for b in batches]) for c in batches[0]}


def full_buffer_order(n: int, seed: int) -> np.ndarray:
    """The order in which an n-row `tf.data` shuffle buffer with `seed` emits rows 0..n-1."""
    rows = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=False)
    return np.fromiter(rows.as_numpy_iterator(), np.int64, count=n)


# --------------------------------------------------------------------------- #
# Writing and reading back.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("file_format", FORMATS)
def test_round_trip_is_exact(tmp_path, synthetic, multitask, file_format):
    for name, dataset, shard_rows in (("st", synthetic, 97), ("mt", multitask, 50)):
        folder = tmp_path / name
        shards.write_shards(dataset, folder, file_format=file_format, shard_rows=shard_rows)
        back = shards.open_shards(folder).to_memory()
        assert_same_dataset(back, dataset)
        assert back.info == _jsonish(dataset.info)
        assert shards.load_shards(folder).sizes() == dataset.sizes()


@pytest.mark.parametrize("file_format", FORMATS)
def test_layout_and_manifest(tmp_path, synthetic, file_format):
    folder = tmp_path / "shards"
    path = shards.write_shards(synthetic, folder, file_format=file_format, shard_rows=100, dataset_name="synthetic")
    assert path == str(folder / "manifest.json")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "mlora_tf.shards" and manifest["format_version"] == 1
    assert manifest["file_format"] == file_format and manifest["shard_rows"] == 100
    assert manifest["dataset"] == "synthetic" and manifest["name"] == synthetic.name
    assert manifest["vocab_sizes"] == synthetic.vocab_sizes
    assert manifest["domain_names"] == synthetic.domain_names
    assert manifest["schema"]["columns"] == [
        {"name": "uid", "dtype": "int64", "role": "feature"},
        {"name": "pid", "dtype": "int64", "role": "feature"},
        {"name": "domain", "dtype": "int64", "role": "feature"},
        {"name": "label", "dtype": "float32", "role": "label"},
    ]
    assert manifest["statistics"] == _jsonish(prepared.dataset_statistics(synthetic))
    listed = set()
    for split in SPLITS:
        entry = manifest["splits"][split]
        assert entry["rows"] == synthetic.num_rows(split)
        for d, domain in enumerate(entry["domains"]):
            assert domain["domain"] == d and domain["name"] == synthetic.domain_names[d]
            assert domain["rows"] == synthetic.num_rows(split, d)
            assert domain["rows"] == sum(f["rows"] for f in domain["files"])
            for part, f in enumerate(domain["files"]):
                assert f["path"] == f"{split}/domain-{d:03d}/part-{part:05d}.{file_format}"
                assert 0 < f["rows"] <= 100
                assert f["bytes"] == os.path.getsize(folder / f["path"])
                assert f["sha256"] == hash_file(folder / f["path"])
                listed.add(f["path"])
    on_disk = {os.path.relpath(os.path.join(r, n), folder).replace(os.sep, "/")
               for r, _, names in os.walk(folder) for n in names}
    assert on_disk == listed | {"manifest.json"}  # no extras, no temp files

    reader = shards.open_shards(folder)
    assert reader.sizes() == synthetic.sizes()
    assert reader.num_rows("train") == synthetic.num_rows("train")
    assert reader.num_rows("test", 2) == synthetic.num_rows("test", 2)
    assert [f.relpath for f in reader.files("val", 1)] == [
        f["path"] for f in manifest["splits"]["val"]["domains"][1]["files"]]
    with pytest.raises(ValueError, match=r"Domain id must be an integer in \[0, 3\). Received: domain=3"):
        reader.num_rows("train", 3)
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        reader.files("dev")


def test_examples_are_plain_tf_train_examples(tmp_path, multitask):
    shards.write_shards(multitask, tmp_path, file_format="tfrecord", shard_rows=1000)
    reader = shards.open_shards(tmp_path)
    record = next(iter(tf.data.TFRecordDataset(reader.files("train", 0)[0].path))).numpy()
    row = {c: v[0] for c, v in multitask.domain_slice("train", 0).items()}
    want = tf.train.Example(features=tf.train.Features(feature={
        c: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row[c])])) if c in multitask.features
        else tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[c])]))
        for c in multitask.column_names
    }))
    assert tf.train.Example.FromString(record) == want


def test_extras_and_rewrite_into_the_same_folder(tmp_path):
    csv = tmp_path / "clicks.csv"
    write_clicks_csv(csv, extra_column=True)
    dataset = load_dataset("csv", path=str(csv), domain_column="site", label_column="click",
                           features=["user", "item", "device"], cache_dir=False)
    extras = prepared.get_extras(dataset)
    assert extras  # the csv loader keeps its extra columns as extra arrays
    folder = tmp_path / "shards"
    shards.write_shards(dataset, folder, file_format="parquet", shard_rows=20)
    many = {os.path.join(r, n) for r, _, names in os.walk(folder) for n in names}
    reader = shards.open_shards(folder)
    assert set(reader.extras()) == set(extras)
    back = reader.to_memory()
    assert_same_dataset(back, dataset)
    got = prepared.get_extras(back)
    for name, values in extras.items():
        np.testing.assert_array_equal(got[name], values)

    # Written again with bigger files: the old part files are gone, nothing else left.
    shards.write_shards(dataset, folder, file_format="tfrecord", shard_rows=1000)
    now = {os.path.join(r, n) for r, _, names in os.walk(folder) for n in names}
    assert len(now) < len(many) and not any(p.endswith(".parquet") or p.endswith(".tmp") for p in now)
    assert_same_dataset(shards.open_shards(folder).to_memory(), dataset)


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_domain_without_rows_has_no_files_and_streams_empty(tmp_path, file_format):
    def columns(uid, domain):
        return {"uid": np.array(uid), "pid": np.array(uid) % 3, "domain": np.array(domain),
                "label": np.array(uid) % 2}

    dataset = MultiDomainDataset(
        name="tiny", n_domains=2, vocab_sizes={"uid": 9, "pid": 3, "domain": 2}, domain_names=["a", "b"],
        splits={"train": columns([1, 2, 3, 4], [0, 1, 0, 1]), "val": columns([5, 6], [0, 0]),
                "test": columns([], [])},
        info={"note": "hand-made"},
    )
    shards.write_shards(dataset, tmp_path, file_format=file_format, shard_rows=1)
    reader = shards.open_shards(tmp_path)
    assert reader.files("val", 1) == [] and reader.files("test") == [] and reader.sizes() == dataset.sizes()
    assert not (tmp_path / "test").exists()
    assert list(reader.dataset_for("val", 1, batch_size=4)) == []
    assert sum(len(b["uid"]) for b in reader.mixed_dataset("val", 4, mix="sample")) == 2
    assert_same_dataset(reader.to_memory(), dataset)


def test_write_refuses_bad_arguments(tmp_path, synthetic):
    with pytest.raises(ValueError, match=r"`file_format` must be one of \['tfrecord', 'parquet'\]. Received: "
                                         r"file_format='orc'"):
        shards.write_shards(synthetic, tmp_path, file_format="orc")
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="`shard_rows` must be a positive integer"):
            shards.write_shards(synthetic, tmp_path, shard_rows=bad)
    assert not os.listdir(tmp_path)


def test_a_failed_write_leaves_no_dataset(tmp_path, synthetic, monkeypatch):
    folder = tmp_path / "shards"
    shards.write_shards(synthetic, folder, file_format="parquet", shard_rows=200)
    calls = []
    real = shards._WRITERS["parquet"]

    def failing(path, columns, dtypes):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, columns, dtypes)

    monkeypatch.setitem(shards._WRITERS, "parquet", failing)
    with pytest.raises(OSError, match="could not write .*train/domain-000/part-00002.parquet: No space left"):
        shards.write_shards(synthetic, folder, file_format="parquet", shard_rows=100)
    names = [n for _, _, files in os.walk(folder) for n in files]
    assert "manifest.json" not in names and not [n for n in names if n.endswith(".tmp")]
    with pytest.raises(FileNotFoundError, match="has no manifest.json: not a shard folder"):
        shards.open_shards(folder)
    assert not shards.is_shard_dir(folder)


# --------------------------------------------------------------------------- #
# Streaming.
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("file_format", FORMATS)
def test_per_domain_streams_hold_that_domain_in_order(tmp_path, synthetic, file_format):
    shards.write_shards(synthetic, tmp_path, file_format=file_format, shard_rows=60)
    reader = shards.open_shards(tmp_path)
    for split in ("train", "test"):
        for d in range(synthetic.n_domains):
            stream = reader.dataset_for(split, d, batch_size=32)
            assert stream.element_spec == reader.element_spec()
            batches = list(stream.as_numpy_iterator())
            assert [len(b["uid"]) for b in batches[:-1]] == [32] * (len(batches) - 1)
            got = {c: np.concatenate([b[c] for b in batches]) for c in batches[0]}
            assert set(got["domain"]) == {d}
            want = synthetic.domain_slice(split, d)
            assert len(got["uid"]) == reader.num_rows(split, d) == len(want["uid"])
            for column, values in want.items():
                assert got[column].dtype == values.dtype
                np.testing.assert_array_equal(got[column], values)
    # Single rows without a batch size; drop_remainder keeps full batches only.
    row = next(iter(reader.dataset_for("val", 1)))
    assert row["uid"].shape == () and row["label"].dtype == tf.float32
    n = reader.num_rows("train", 0)
    assert sum(len(b["uid"]) for b in reader.dataset_for("train", 0, 50, drop_remainder=True)) == (n // 50) * 50


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_full_size_buffer_gives_the_in_memory_permutation(tmp_path, synthetic, file_format):
    shards.write_shards(synthetic, tmp_path, file_format=file_format, shard_rows=70)
    reader = shards.open_shards(tmp_path)
    d, seed = 1, 11
    n = reader.num_rows("train", d)
    first = rows_of(reader.dataset_for("train", d, batch_size=64, shuffle_buffer=n, seed=seed))
    again = rows_of(shards.open_shards(tmp_path).dataset_for("train", d, batch_size=64, shuffle_buffer=n, seed=seed))
    other = rows_of(reader.dataset_for("train", d, batch_size=64, shuffle_buffer=n, seed=seed + 1))
    want = synthetic.domain_slice("train", d)
    order = full_buffer_order(n, seed)
    for column, values in want.items():
        np.testing.assert_array_equal(first[column], values[order])
        np.testing.assert_array_equal(again[column], first[column])
    assert not np.array_equal(other["uid"], first["uid"])
    np.testing.assert_array_equal(np.sort(other["uid"]), np.sort(want["uid"]))

    # Mixed, in order: the same over the concatenation of the domains (as the trainer's).
    domains = [2, 0]
    total = sum(reader.num_rows("train", k) for k in domains)
    mixed = rows_of(reader.mixed_dataset("train", 100, shuffle_buffer=total, seed=seed, domains=domains))
    concat = {c: np.concatenate([synthetic.domain_slice("train", k)[c] for k in domains]) for c in want}
    order = full_buffer_order(total, seed)
    for column, values in concat.items():
        np.testing.assert_array_equal(mixed[column], values[order])


@pytest.mark.parametrize("file_format", FORMATS)
def test_sampled_mixed_batches_mix_domains_and_cover_every_row(tmp_path, synthetic, file_format):
    shards.write_shards(synthetic, tmp_path, file_format=file_format, shard_rows=80)
    reader = shards.open_shards(tmp_path)
    stream = reader.mixed_dataset("train", 64, shuffle_buffer=30, seed=3, mix="sample")
    batches = list(stream.as_numpy_iterator())
    got = {c: np.concatenate([b[c] for b in batches]) for c in batches[0]}
    train = synthetic.splits["train"]
    key = lambda cols: sorted(zip(cols["uid"].tolist(), cols["pid"].tolist(), cols["domain"].tolist()))  # noqa: E731
    assert key(got) == key(train)  # every row once
    # A small buffer, still mixed batches (blocks of 16 rows of one domain).
    mixed = [len(set(b["domain"])) > 1 for b in batches[:-1]]
    assert sum(mixed) >= 0.75 * len(mixed)
    assert set(np.concatenate([b["domain"] for b in batches[:3]])) == set(range(synthetic.n_domains))
    again = rows_of(reader.mixed_dataset("train", 64, shuffle_buffer=30, seed=3, mix="sample"))
    np.testing.assert_array_equal(again["uid"], got["uid"])
    with pytest.raises(ValueError, match=r"`mix` must be one of \['in_order', 'sample'\]"):
        reader.mixed_dataset("train", mix="random")
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1. Received: batch_size=0"):
        reader.dataset_for("train", 0, batch_size=0)


def test_each_input_pipeline_reads_its_own_files(tmp_path, synthetic):
    shards.write_shards(synthetic, tmp_path, file_format="tfrecord", shard_rows=50)
    reader = shards.open_shards(tmp_path)
    parts = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        parts.append(rows_of(reader.dataset_for("train", 0, 40, input_context=context)))
        files = reader.files("train", 0)[pipeline::2]
        assert len(parts[-1]["uid"]) == sum(f.rows for f in files)
    both = np.concatenate([p["uid"] for p in parts])
    np.testing.assert_array_equal(np.sort(both), np.sort(synthetic.domain_slice("train", 0)["uid"]))


# --------------------------------------------------------------------------- #
# Damaged folders: errors that name the file.
# --------------------------------------------------------------------------- #


def _flip_a_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))


@pytest.mark.parametrize("file_format", FORMATS)
def test_checksum_mismatch_names_the_file(tmp_path, synthetic, file_format):
    shards.write_shards(synthetic, tmp_path, file_format=file_format, shard_rows=100)
    damaged = shards.open_shards(tmp_path).files("train", 0)[1]
    _flip_a_byte(damaged.path)
    pattern = f"Shard file {damaged.path} is damaged: its sha256"
    with pytest.raises(shards.ShardError, match=pattern):
        shards.open_shards(tmp_path, verify="full")
    reader = shards.open_shards(tmp_path)  # lazy: the size is right, the stream finds it
    with pytest.raises(tf.errors.OpError, match=pattern):
        list(reader.dataset_for("train", 0, batch_size=64))
    list(reader.dataset_for("train", 1, batch_size=64))  # another domain's files are fine
    with pytest.raises(shards.ShardError, match=pattern):
        reader.to_memory()


@pytest.mark.parametrize("file_format", FORMATS)
def test_missing_and_cut_short_files_are_named_on_open(tmp_path, synthetic, file_format):
    shards.write_shards(synthetic, tmp_path, file_format=file_format, shard_rows=100)
    files = shards.open_shards(tmp_path).files("val", 0)
    with open(files[0].path, "r+b") as f:
        f.truncate(files[0].bytes - 7)
    with pytest.raises(shards.ShardError, match=f"Shard file {files[0].path} is cut short: "
                                                f"{files[0].bytes - 7} bytes, the manifest records {files[0].bytes}"):
        shards.open_shards(tmp_path)
    os.unlink(files[0].path)
    with pytest.raises(FileNotFoundError, match=f"Shard file missing: {files[0].path}"):
        shards.open_shards(tmp_path)


def test_manifests_of_another_version_or_kind_are_refused(tmp_path, synthetic):
    shards.write_shards(synthetic, tmp_path, file_format="parquet", shard_rows=500)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(dict(manifest, format_version=2)))
    with pytest.raises(shards.ShardError, match=f"{path} is of shard format version 2; this version of mlora_tf "
                                                "reads version 1"):
        shards.open_shards(tmp_path)
    assert shards.is_shard_dir(tmp_path)
    path.write_text(json.dumps({"dataset": "ml-1m", "cache_file": "x.npz"}))
    with pytest.raises(shards.ShardError, match=f"{path} is not a shard manifest"):
        shards.open_shards(tmp_path)
    path.write_text("{")
    with pytest.raises(shards.ShardError, match=f"{path}: not valid JSON"):
        shards.open_shards(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist: not a shard folder"):
        shards.open_shards(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="`verify` must be one of"):
        shards.open_shards(tmp_path, verify="sometimes")


# --------------------------------------------------------------------------- #
# mlora-prepare --format=tfrecord|parquet --shard_rows=N
# --------------------------------------------------------------------------- #


def write_clicks_csv(path, extra_column: bool = False):
    """The rows of a small synthetic dataset as a csv file: user, item, site, click."""
    data = load_dataset("synthetic", n_rows=400, n_users=60, n_items=30, seed=5)
    lines = ["user,item,site,click" + (",device" if extra_column else "")]
    for split in SPLITS:
        c = data.splits[split]
        for i in range(len(c["uid"])):
            line = f"u{c['uid'][i]},i{c['pid'][i]},s{c['domain'][i]},{int(c['label'][i])}"
            lines.append(line + (f",{'abc'[i % 3]}" if extra_column else ""))
    path.write_text("\n".join(lines) + "\n")


def run_prepare(*args: str) -> int:
    """Runs `mlora-prepare` in this process (its own flag set) and returns the exit code."""
    prepare_cli.FLAGS.unparse_flags()
    prepare_cli.FLAGS(["mlora-prepare", *args])
    try:
        return prepare_cli.main([])
    finally:
        prepare_cli.FLAGS.unparse_flags()


CSV_FLAGS = ("--dataset=csv", "--domain_column=site", "--label_column=click", "--features=user,item")


@pytest.mark.usefixtures("isolated_default_cache")
@pytest.mark.parametrize("file_format", FORMATS)
def test_prepare_writes_shards(tmp_path, capsys, file_format):
    csv = tmp_path / "clicks.csv"
    write_clicks_csv(csv)
    out = tmp_path / "out"
    assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--format={file_format}", "--shard_rows=25",
                       f"--out_dir={out}") == 0
    printed = capsys.readouterr().out
    assert f"shards: {out / 'manifest.json'}" in printed and f"{file_format} files of at most 25 rows" in printed
    assert not (out / "prepared.json").exists() and not list(out.glob("*.npz"))  # shards instead
    assert not os.path.exists(os.environ["MLORA_TF_CACHE"])  # nor a copy in the default cache
    reader = shards.open_shards(out, verify="full")
    manifest = reader.manifest
    assert manifest["file_format"] == file_format and manifest["dataset"] == "csv"
    assert manifest["request"]["options"]["path"] == str(csv)
    assert all(f.rows <= 25 for s in SPLITS for f in reader.files(s))
    direct = load_dataset("csv", path=str(csv), domain_column="site", label_column="click",
                          features=["user", "item"], cache_dir=False)
    assert_same_dataset(reader.to_memory(), direct)
    assert reader.to_memory().info["domain_map"] == direct.info["domain_map"]


@pytest.mark.usefixtures("isolated_default_cache")
def test_prepare_checks_format_flags_before_working(tmp_path, capsys):
    csv = tmp_path / "clicks.csv"
    write_clicks_csv(csv)
    out = tmp_path / "out"
    cases = [
        (["--format=orc"], "--format must be one of npz, tfrecord, parquet. Received: --format=orc"),
        (["--format=parquet", "--shard_rows=0"], "--shard_rows must be a positive integer. Received: --shard_rows=0"),
        (["--format=tfrecord", "--shard_rows=-3"], "--shard_rows must be a positive integer"),
        (["--shard_rows=10"], "--shard_rows applies to --format=tfrecord|parquet only"),
    ]
    for extra, message in cases:
        assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--out_dir={out}", *extra) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not out.exists()  # nothing was done

    # A folder of the other kind is not overwritten.
    assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--out_dir={out}") == 0
    assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--out_dir={out}", "--format=parquet") == 2
    assert "already holds an npz prepared folder" in capsys.readouterr().err
    shard_out = tmp_path / "shard_out"
    assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--out_dir={shard_out}", "--format=parquet") == 0
    assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--out_dir={shard_out}") == 2
    assert "already holds shards (manifest.json)" in capsys.readouterr().err
    assert run_prepare(*CSV_FLAGS, f"--path={csv}", f"--out_dir={shard_out}", "--format=tfrecord") == 0  # same kind
    assert shards.open_shards(shard_out).file_format == "tfrecord"
