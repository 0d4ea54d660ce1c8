"""The package's own Parquet reader (`mlora_tf.data.parquet`), on files real writers made.

The fixtures in `tests/fixtures/parquet/` were written by pyarrow and fastparquet
(`tests/fixtures/make_parquet_fixtures.py`); `clicks_frame` says what they hold. These
tests run without pyarrow: CI has none, so they are what makes parquet work there.
"""

import datetime
import os

import numpy as np
import pandas as pd
import pytest

from mlora_tf.data import csv_loader
from mlora_tf.data import parquet
from mlora_tf.data.registry import load_dataset
from mlora_tf.evaluate import read_interactions
from tests.fixtures.make_parquet_fixtures import clicks_frame, types_rows

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "parquet")
# file -> (what it exercises, the pandas index it stores)
READABLE = {
    "pyarrow_snappy.parquet": ("pandas defaults: SNAPPY, dictionary pages, v1", None),
    "pyarrow_gzip_v2.parquet": ("GZIP, data pages v2, 3 row groups, small pages", "row_id"),
    "pyarrow_plain.parquet": ("no compression, PLAIN only, INT96 timestamps", "row"),
    "pyarrow_delta_v2.parquet": ("DELTA_* and BYTE_STREAM_SPLIT encodings, v2", None),
    "fastparquet.parquet": ("fastparquet's layout, 3 row groups", None),
}


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def values(series) -> list:
    """The values of a column with every null as None (NaN, NaT, None alike)."""
    return [None if pd.isna(v) else v for v in pd.Series(series).tolist()]


@pytest.mark.parametrize("name", sorted(READABLE))
def test_reads_what_the_writer_wrote(name):
    frame = parquet.read_parquet(fixture(name), engine="numpy")
    expected = clicks_frame()
    if name == "fastparquet.parquet":
        expected = expected.drop(columns=["day"])
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(expected) == 150
    for column in expected.columns:
        want = values(expected[column].astype(object) if column == "city" else expected[column])
        assert values(frame[column]) == want, column
    # Types as pandas with pyarrow gives them.
    assert frame["user"].dtype == np.int64 and frame["balance"].dtype == np.int64
    assert frame["rank"].dtype == np.int16 and frame["count"].dtype == np.uint16
    assert frame["score"].dtype == np.float32 and frame["member"].dtype == bool
    assert frame["age"].dtype == np.float64 and frame["age"].isna().sum() == expected["age"].isna().sum() > 0
    assert frame["note"].isna().sum() == 30
    assert pd.api.types.is_datetime64_any_dtype(frame["seen"])
    if "day" in frame:
        assert isinstance(frame["day"].iloc[0], datetime.date)
    index = READABLE[name][1]
    assert frame.index.name == index
    if index == "row_id":  # stored as a column, restored as the index
        assert frame.index.tolist() == [f"r{i}" for i in range(150)]
    elif index == "row":  # stored as a RangeIndex in the pandas metadata
        assert frame.index.tolist() == list(range(1000, 1150))


@pytest.mark.parametrize("name", sorted(READABLE))
def test_same_as_pandas_with_pyarrow(name):
    pytest.importorskip("pyarrow", reason="the comparison needs pyarrow (not a dependency)")
    ours = parquet.read_parquet(fixture(name), engine="numpy")
    theirs = parquet.read_parquet(fixture(name), engine="pandas")
    assert list(ours.columns) == list(theirs.columns)
    assert ours.index.equals(theirs.index)
    for column in theirs.columns:
        assert values(ours[column]) == values(theirs[column].astype(object)), column


@pytest.mark.parametrize("name", ["types.parquet", "types_int_decimal.parquet"])
def test_rarer_types(name):
    frame = parquet.read_parquet(fixture(name), engine="numpy")
    rows = types_rows()
    assert list(frame.columns) == list(rows)
    for column, want in rows.items():
        assert values(frame[column]) == want, column
    assert frame["amount"].dtype == np.float64  # DECIMAL (FIXED_LEN_BYTE_ARRAY or INT32) as float
    assert str(frame["when_utc"].dt.tz) == "UTC"
    assert frame["big"].dtype == np.uint64 and frame["tiny"].dtype == np.float64  # INT8 with a null
    assert frame["flag"].dtype == object


def test_columns_are_read_in_the_order_asked():
    frame = parquet.read_parquet(fixture("pyarrow_snappy.parquet"), ["site", "user"], engine="numpy")
    assert list(frame.columns) == ["site", "user"]
    assert values(frame["site"]) == clicks_frame()["site"].tolist()
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['nope'\].*'user', 'item'"):
        parquet.read_parquet(fixture("pyarrow_snappy.parquet"), ["user", "nope"], engine="numpy")


def test_empty_file_has_the_columns_and_no_rows():
    frame = parquet.read_parquet(fixture("empty.parquet"), engine="numpy")
    assert len(frame) == 0 and "site" in frame.columns


def test_nested_column_is_refused_by_name_and_flat_ones_read():
    frame = parquet.read_parquet(fixture("nested.parquet"), ["user", "site", "click"], engine="numpy")
    assert values(frame["user"]) == clicks_frame()["user"].tolist()
    with pytest.raises(parquet.ParquetError, match=r"nested.parquet: column 'tags' is nested.*pip install pyarrow"):
        parquet.read_parquet(fixture("nested.parquet"), engine="numpy")


def test_unsupported_codec_names_file_column_and_codec():
    with pytest.raises(parquet.ParquetError, match=r"pyarrow_zstd.parquet: column 'user' is compressed with ZSTD.*"
                                                   r"pip install pyarrow.*compression='snappy'"):
        parquet.read_parquet(fixture("pyarrow_zstd.parquet"), engine="numpy")


def test_not_parquet_or_cut_short_is_named(tmp_path):
    (tmp_path / "junk.parquet").write_bytes(b"PAR1")
    with pytest.raises(parquet.ParquetError, match=r"junk.parquet is not a Parquet file"):
        parquet.read_parquet(str(tmp_path / "junk.parquet"), engine="numpy")
    data = open(fixture("pyarrow_snappy.parquet"), "rb").read()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(parquet.ParquetError, match=r"cut.parquet is not a Parquet file.*cut short"):
        parquet.read_parquet(str(tmp_path / "cut.parquet"), engine="numpy")
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        parquet.read_parquet(str(tmp_path / "nope.parquet"), engine="numpy")
    with pytest.raises(ValueError, match="Unknown parquet engine 'fast'"):
        parquet.read_parquet(fixture("empty.parquet"), engine="fast")


def test_snappy_blocks_of_the_format_description():
    # Literal "abc", then a 1-byte-offset copy of 9 bytes at offset 3 (it overlaps what it writes).
    block = bytes([12, 2 << 2]) + b"abc" + bytes([((9 - 4) << 2) | 1, 3])
    assert parquet.snappy_decompress(block) == b"abcabcabcabc"
    # A 2-byte-offset copy, a run of the last byte (offset 1), and a literal of 70 bytes (length in 1 extra byte).
    text = bytes(range(65, 65 + 70))
    block = bytes([70 + 5 + 10]) + bytes([60 << 2, 69]) + text + bytes([(5 - 1) << 2 | 2, 70, 0]) + bytes([(10 - 1) << 2 | 2, 1, 0])
    assert parquet.snappy_decompress(block) == text + text[:5] + text[4:5] * 10
    with pytest.raises(ValueError, match="copy of offset 4"):
        parquet.snappy_decompress(bytes([7, 2 << 2]) + b"abc" + bytes([(4 - 4) << 2 | 1, 4]))
    with pytest.raises(ValueError, match="announces 9"):
        parquet.snappy_decompress(bytes([9, 2 << 2]) + b"abc")


def test_delta_binary_packed_example_of_the_format_description():
    # Values 1..5: block 128 with 4 miniblocks, 5 values, first 1; min delta 1, every bit width 0.
    page = bytes([128, 1, 4, 5, 2, 2, 0, 0, 0, 0])
    assert parquet._delta_binary_packed(page, 5)[0].tolist() == [1, 2, 3, 4, 5]


def test_csv_loader_reads_parquet_without_an_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "engine_available", lambda: False)
    frame = clicks_frame()
    frame.to_csv(tmp_path / "clicks.csv", index=False)
    options = dict(domain_column="site", label_column="click", features=["user", "item", "city"],
                   numeric_features=["price"])
    from_parquet = load_dataset("csv", path=fixture("pyarrow_snappy.parquet"), cache_dir=str(tmp_path / "a"), **options)
    from_csv = load_dataset("csv", path=str(tmp_path / "clicks.csv"), cache_dir=str(tmp_path / "b"), **options)
    assert list(from_parquet.domain_names) == list(from_csv.domain_names) == ["books", "games", "music"]
    assert tuple(from_parquet.features) == tuple(from_csv.features) == ("uid", "pid", "domain", "city", "price")
    for split in ("train", "val", "test"):
        a, b = from_parquet.splits[split], from_csv.splits[split]
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split}/{key}")


def test_csv_loader_names_the_null_row(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "engine_available", lambda: False)
    first_null = int(np.flatnonzero(clicks_frame()["age"].isna())[0])
    with pytest.raises(ValueError, match=rf"Row {first_null + 1} of .*pyarrow_snappy.parquet: column age is null"):
        load_dataset("csv", path=fixture("pyarrow_snappy.parquet"), cache_dir=str(tmp_path), domain_column="site",
                     label_column="click", features=["user", "item"], numeric_features=["age"])
    with pytest.raises(ValueError, match=r"empty.parquet holds no rows"):
        csv_loader.read_table(fixture("empty.parquet"), ["user", "site"], ",")


def test_evaluate_reads_parquet_without_an_engine(monkeypatch):
    monkeypatch.setattr(parquet, "engine_available", lambda: False)
    expected = clicks_frame()
    columns = read_interactions(fixture("pyarrow_gzip_v2.parquet"), required=("user", "rank"), optional=("balance",))
    for name in ("user", "rank", "balance"):
        np.testing.assert_array_equal(columns[name], expected[name].to_numpy(np.int64))
