"""Parquet through pyarrow (`mlora_tf.data.parquet`), on files real writers made.

The fixtures in `tests/fixtures/parquet/` were written by pyarrow and fastparquet
(`tests/fixtures/make_parquet_fixtures.py`); `clicks_frame` says what they hold. Each
file is read to the frame it holds, as pandas with pyarrow reads it; the errors a user
meets (missing, nested or null column, empty, damaged or cut-short file) name the file.
"""

import datetime
import os

import numpy as np
import pandas as pd
import pytest

from mlora_tf.data import csv_loader
from mlora_tf.data import parquet
from mlora_tf.data.registry import load_dataset
from mlora_tf.data.interactions import read_interactions
from tests.fixtures.make_parquet_fixtures import clicks_frame, types_rows

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "parquet")
# file -> (what it exercises, the pandas index it stores)
READABLE = {
    "pyarrow_snappy.parquet": ("pandas defaults: SNAPPY, dictionary pages, v1", None),
    "pyarrow_gzip_v2.parquet": ("GZIP, data pages v2, 3 row groups, small pages", "row_id"),
    "pyarrow_plain.parquet": ("no compression, PLAIN only, INT96 timestamps", "row"),
    "pyarrow_delta_v2.parquet": ("DELTA_* and BYTE_STREAM_SPLIT encodings, v2", None),
    "pyarrow_zstd.parquet": ("ZSTD", None),
    "fastparquet.parquet": ("fastparquet's layout, 3 row groups", None),
}


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def values(series) -> list:
    """The values of a column with every null as None (NaN, NaT, None alike); lists as lists."""
    return [list(v) if isinstance(v, np.ndarray) else None if pd.isna(v) else v for v in pd.Series(series).tolist()]


@pytest.mark.parametrize("name", sorted(READABLE))
def test_reads_what_the_writer_wrote(name):
    frame = parquet.read_parquet(fixture(name))
    expected = clicks_frame()
    if name == "fastparquet.parquet":
        expected = expected.drop(columns=["day"])
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(expected) == 150
    for column in expected.columns:
        want = values(expected[column].astype(object) if column == "city" else expected[column])
        assert values(frame[column]) == want, column
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
        assert "row_id" not in parquet.file_columns(fixture(name))
    elif index == "row":  # stored as a RangeIndex in the pandas metadata
        assert frame.index.tolist() == list(range(1000, 1150))


@pytest.mark.parametrize("name", sorted(READABLE) + ["nested.parquet", "types.parquet"])
def test_same_as_pandas_with_pyarrow(name):
    ours = parquet.read_parquet(fixture(name))
    theirs = pd.read_parquet(fixture(name), engine="pyarrow")
    assert list(ours.columns) == list(theirs.columns)
    assert ours.index.equals(theirs.index)
    for column in theirs.columns:
        assert ours[column].dtype == theirs[column].dtype, column
        assert [repr(v) for v in values(ours[column])] == [repr(v) for v in values(theirs[column])], column


@pytest.mark.parametrize("name", ["types.parquet", "types_int_decimal.parquet"])
def test_rarer_types(name):
    frame = parquet.read_parquet(fixture(name))
    rows = types_rows()
    assert list(frame.columns) == list(rows)
    for column, want in rows.items():
        got = values(frame[column])
        if column == "amount":  # DECIMAL (FIXED_LEN_BYTE_ARRAY or INT32): decimal.Decimal, as pyarrow gives it
            got = [None if v is None else float(v) for v in got]
        assert got == want, column
    assert str(frame["when_utc"].dt.tz) == "UTC"
    assert frame["big"].dtype == np.uint64 and frame["tiny"].dtype == np.float64  # INT8 with a null
    assert frame["flag"].dtype == object


def test_columns_are_read_in_the_order_asked():
    frame = parquet.read_parquet(fixture("pyarrow_snappy.parquet"), ["site", "user"])
    assert list(frame.columns) == ["site", "user"]
    assert values(frame["site"]) == clicks_frame()["site"].tolist()
    with pytest.raises(ValueError, match=r"pyarrow_snappy.parquet lacks the column\(s\) \['nope'\].*'user', 'item'"):
        parquet.read_parquet(fixture("pyarrow_snappy.parquet"), ["user", "nope"])


def test_empty_file_has_the_columns_and_no_rows():
    frame = parquet.read_parquet(fixture("empty.parquet"))
    assert len(frame) == 0 and "site" in frame.columns


def test_nested_column_reads_and_is_refused_by_name_when_asked_for():
    frame = parquet.read_parquet(fixture("nested.parquet"), ["user", "site", "click"])
    assert values(frame["user"]) == clicks_frame()["user"].tolist()
    assert parquet.file_columns(fixture("nested.parquet")) == {"user": True, "site": True, "click": True, "tags": False}
    whole = parquet.read_parquet(fixture("nested.parquet"))  # all columns: the list column too
    assert [list(v) for v in whole["tags"].iloc[:4]] == [[], ["t1"], ["t2", "t2"], ["t0", "t0", "t0"]]
    with pytest.raises(parquet.ParquetError, match=r"nested.parquet: column 'tags' is nested \(list<.*not a flat column"):
        parquet.read_parquet(fixture("nested.parquet"), ["user", "tags"])


def test_not_parquet_cut_short_or_damaged_is_named(tmp_path):
    (tmp_path / "junk.parquet").write_bytes(b"PAR1")
    with pytest.raises(parquet.ParquetError, match=r"junk.parquet is not a Parquet file"):
        parquet.read_parquet(str(tmp_path / "junk.parquet"))
    data = open(fixture("pyarrow_snappy.parquet"), "rb").read()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(parquet.ParquetError, match=r"cut.parquet is not a Parquet file, or it is cut short"):
        parquet.read_parquet(str(tmp_path / "cut.parquet"))
    damaged = bytearray(data)
    damaged[2000:6000] = b"\xff" * 4000  # data pages overwritten, footer intact: pyarrow's OSError
    (tmp_path / "damaged.parquet").write_bytes(bytes(damaged))
    with pytest.raises(parquet.ParquetError, match=r"Could not read .*damaged.parquet \(cut short or damaged\?\)"):
        parquet.read_parquet(str(tmp_path / "damaged.parquet"))
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        parquet.read_parquet(str(tmp_path / "nope.parquet"))


def test_csv_loader_reads_parquet_as_the_same_csv(tmp_path):
    frame = clicks_frame()
    frame.to_csv(tmp_path / "clicks.csv", index=False)
    options = dict(domain_column="site", label_column="click", features=["user", "item", "city"],
                   numeric_features=["price"])
    from_parquet = load_dataset("csv", path=fixture("pyarrow_zstd.parquet"), cache_dir=str(tmp_path / "a"), **options)
    from_csv = load_dataset("csv", path=str(tmp_path / "clicks.csv"), cache_dir=str(tmp_path / "b"), **options)
    assert list(from_parquet.domain_names) == list(from_csv.domain_names) == ["books", "games", "music"]
    assert tuple(from_parquet.features) == tuple(from_csv.features) == ("uid", "pid", "domain", "city", "price")
    for split in ("train", "val", "test"):
        a, b = from_parquet.splits[split], from_csv.splits[split]
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split}/{key}")


def test_csv_loader_names_the_null_row_the_empty_file_and_the_nested_column(tmp_path):
    first_null = int(np.flatnonzero(clicks_frame()["age"].isna())[0])
    with pytest.raises(ValueError, match=rf"Row {first_null + 1} of .*pyarrow_snappy.parquet: column age is null"):
        load_dataset("csv", path=fixture("pyarrow_snappy.parquet"), cache_dir=str(tmp_path), domain_column="site",
                     label_column="click", features=["user", "item"], numeric_features=["age"])
    with pytest.raises(ValueError, match=r"empty.parquet holds no rows"):
        csv_loader.read_table(fixture("empty.parquet"), ["user", "site"], ",")
    with pytest.raises(parquet.ParquetError, match=r"nested.parquet: column 'tags' is nested"):
        load_dataset("csv", path=fixture("nested.parquet"), cache_dir=str(tmp_path), domain_column="site",
                     label_column="click", features=["user", "tags"])


def test_inferred_schema_leaves_the_nested_column_out(tmp_path):
    with pytest.raises(ValueError, match=r"categorical \['user'\].*left out \{'tags': 'is nested \(not a flat column\)'\}"):
        csv_loader.infer_features(fixture("nested.parquet"), domain_column="site", label_column="click")
    frame = pd.read_parquet(fixture("nested.parquet")).assign(item=clicks_frame()["item"])
    frame.to_parquet(tmp_path / "more.parquet")
    schema = csv_loader.infer_features(tmp_path / "more.parquet", domain_column="site", label_column="click")
    assert schema["features"] == ["user", "item"]
    assert schema["skipped"] == {"tags": "is nested (not a flat column)"}


def test_evaluate_reads_parquet(tmp_path):
    expected = clicks_frame()
    columns = read_interactions(fixture("pyarrow_gzip_v2.parquet"), required=("user", "rank"), optional=("balance",))
    for name in ("user", "rank", "balance"):
        np.testing.assert_array_equal(columns[name], expected[name].to_numpy(np.int64))
    with pytest.raises(ValueError, match=r"pyarrow_zstd.parquet: column `age` must hold an integer id.*on row \d+"):
        read_interactions(fixture("pyarrow_zstd.parquet"), required=("user", "age"))
    with pytest.raises(ValueError, match=r"nested.parquet lacks column\(s\) \['pid'\].*'tags'"):
        read_interactions(fixture("nested.parquet"), required=("user", "pid"))
