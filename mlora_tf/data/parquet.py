"""Reads Parquet files with pyarrow, with errors that name the file and the column.

```
frame = read_parquet("clicks.parquet", columns=["user", "item", "site", "click"])
```

`pyarrow` (a dependency of the package) reads every codec (SNAPPY, GZIP, ZSTD, BROTLI,
LZ4), encoding and page version, and nested columns. This module only adds what the
loaders need: the file's own columns (not a pandas index stored as a column), a missing
or nested (list, map, struct) asked-for column refused by name, and pyarrow's errors on
a damaged or cut-short file turned into a `ParquetError` that names the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SUFFIXES = (".parquet", ".pq")


class ParquetError(ValueError):
    """A Parquet file that cannot be read; the message names the file (and column)."""


def _open(path: str) -> pq.ParquetFile:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Parquet file not found: {path}. Received: path={path!r}")
    try:
        return pq.ParquetFile(path)
    except MemoryError:
        raise
    except (pa.ArrowException, OSError) as error:
        raise ParquetError(
            f"{path} is not a Parquet file, or it is cut short or damaged: {error} "
            f"Received: {os.path.getsize(path)} bytes"
        ) from None


def file_columns(path: str) -> dict[str, bool]:
    """The file's columns, in file order, each with whether it is flat (not a list, map
    or struct). A pandas index stored as a column is left out."""
    return _columns(_open(path).schema_arrow)


def _columns(schema: pa.Schema) -> dict[str, bool]:
    index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    return {f.name: not pa.types.is_nested(f.type) for f in schema if f.name not in index}


def read_parquet(path: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Reads `columns` (in this order; `None`: all) of a Parquet file into a DataFrame,
    with the pandas index `DataFrame.to_parquet` stored, as pandas with pyarrow does.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a column not in the file (naming the file's columns).
        ParquetError: not a Parquet file, cut short or damaged (naming the file), or an
            asked-for column that is nested (naming the file, the column and its type).
    """
    file = _open(path)
    flat = _columns(file.schema_arrow)
    if columns is not None:
        columns = list(columns)
        missing = [c for c in columns if c not in flat]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing}. Received: columns {list(flat)}")
        for column in columns:
            if not flat[column]:
                kind = file.schema_arrow.field(column).type
                raise ParquetError(
                    f"{path}: column {column!r} is nested ({kind}), not a flat column of one value per row; "
                    f"use a flat column, or flatten it first. Received: columns {columns}"
                )
    try:
        frame = file.read(columns=columns, use_pandas_metadata=True).to_pandas()
    except MemoryError:
        raise
    except (pa.ArrowException, OSError) as error:
        raise ParquetError(f"Could not read {path} (cut short or damaged?): {error} Received: columns {columns}") from None
    return frame if columns is None else frame[columns]
