"""A shard folder as `--data_dir`: `load_dataset` reads it (in memory, or as a
`StreamedDataset` with `stream=True`), and `mlora-train` trains on it."""

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


def test_mlora_train_on_a_shard_folder(shard_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mlora_tf.cli.train", f"--data_dir={shard_dir}", "--model=wdl", "--adapter=none",
         "--max_epochs=1", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(os.path.join(tmp_path, "result.json"))
