"""A shard folder as `--data_dir`: `load_dataset` reads it (in memory, or as a
`StreamedDataset` with `stream=True`), and `mlora-train` streams it (or, with
`--stream=false`, trains on it in memory: the same run)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.helpers import tiny_dataset
from mlora_tf.data import load_dataset
from mlora_tf.data.shards import write_shards
from mlora_tf.data.streamed import StreamedDataset


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    write_shards(tiny_dataset(), folder, file_format="parquet", shard_rows=100)
    return str(folder)


def test_load_dataset_reads_a_shard_folder(shard_dir):
    ds = tiny_dataset()
    mem = load_dataset(None, data_dir=shard_dir)
    assert mem.sizes() == ds.sizes()
    for c in ds.column_names:
        np.testing.assert_array_equal(mem.splits["train"][c], ds.splits["train"][c])
    streamed = load_dataset("tiny", data_dir=shard_dir, stream=True)
    assert isinstance(streamed, StreamedDataset) and streamed.sizes() == ds.sizes()
    assert streamed.vocab_sizes == ds.vocab_sizes and streamed.domain_names == ds.domain_names
    np.testing.assert_array_equal(streamed.train_ids()["uid"], np.unique(ds.splits["train"]["uid"]))
    assert "streamed from" in streamed.summary()


def test_a_shard_folder_of_another_dataset_or_with_options_is_refused(shard_dir):
    with pytest.raises(ValueError, match="holds shards of dataset 'tiny', not 'ml-1m'"):
        load_dataset("ml-1m", data_dir=shard_dir)
    with pytest.raises(ValueError, match="loader options apply to mlora-prepare"):
        load_dataset("tiny", data_dir=shard_dir, n_rows=10)


def _train(shard_dir, output_dir, *extra):
    result = subprocess.run(
        [sys.executable, "-m", "mlora_tf.cli.train", f"--data_dir={shard_dir}", "--model=wdl", "--adapter=none",
         "--max_epochs=1", f"--output_dir={output_dir}", *extra],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(os.path.join(output_dir, "result.json"))
    return result


def test_mlora_train_on_a_shard_folder(shard_dir, tmp_path):
    # The folder streams by default; --stream=false reads it into memory: the same run.
    streamed = _train(shard_dir, tmp_path / "streamed")
    assert "streamed from" in streamed.stderr
    memory = _train(shard_dir, tmp_path / "memory", "--stream=false")
    assert "streamed from" not in memory.stderr
    records = [json.loads((tmp_path / name / "result.json").read_text()) for name in ("streamed", "memory")]
    for key in ("domain_auc", "domain_logloss", "domain_test_size", "wauc", "logloss", "val"):
        assert records[0][key] == records[1][key], key
    assert records[0]["dataset"]["sizes"] == tiny_dataset().sizes()
    vocabularies = [np.load(tmp_path / name / "vocab.npz") for name in ("streamed", "memory")]
    assert sorted(vocabularies[0].files) == sorted(vocabularies[1].files)
    for name in vocabularies[0].files:
        np.testing.assert_array_equal(vocabularies[0][name], vocabularies[1][name])


def test_mlora_train_refuses_to_stream_a_full_permutation(shard_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mlora_tf.cli.train", f"--data_dir={shard_dir}", "--model=wdl", "--adapter=none",
         "--max_epochs=1", "--shuffle=permutation", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "needs every row in memory" in result.stderr and "--stream=false" in result.stderr
