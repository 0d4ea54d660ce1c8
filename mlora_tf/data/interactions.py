"""Interaction files (CSV or parquet) read into numpy columns: the rows to score
(`mlora-evaluate --data`) or a new domain's rows (`mlora-add-domain`)."""

from __future__ import annotations

import os

import numpy as np

from mlora_tf.data import parquet
from mlora_tf.data.dataset import COLUMNS, LABEL

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv")
PARQUET_SUFFIXES = parquet.SUFFIXES


def read_interactions(path: str, required=COLUMNS, optional=()) -> dict:
    """Read a canonical interaction file (CSV or parquet) into numpy columns.

    Args:
        path: `.csv` (also `.tsv`, compressed `.csv.gz` ...) or `.parquet` / `.pq`.
        required: columns that must be present.
        optional: columns read when present.

    Returns:
        `{column: array}`: int64 ids, float32 `label` (0.0 / 1.0).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file and the missing column, or the column, row and
            value of the first bad entry (empty, not an integer, a label not 0/1).
    """
    import pandas as pd

    if not os.path.exists(path):
        raise FileNotFoundError(f"No data file {path}.")
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        names = list(parquet.file_columns(path))
        missing = [c for c in required if c not in names]
        if missing:
            raise ValueError(
                f"{path} lacks column(s) {missing}; expected {list(required)}. Received columns: {names}"
            )
        # Only the used columns: one of them nested is refused by name.
        frame = parquet.read_parquet(path, [c for c in (*required, *optional) if c in names])
        where, first_row = "row", 1  # parquet rows count from 1, as in the csv loader
    elif lower.endswith(CSV_SUFFIXES):
        try:
            frame = pd.read_csv(path, sep="\t" if lower.endswith(".tsv") else ",")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not a readable CSV file: {e}") from None
        where, first_row = "line", 2  # line 1 is the header
    else:
        raise ValueError(
            f"Unknown data file type {path}: expected CSV ({', '.join(CSV_SUFFIXES)}) or parquet "
            f"({', '.join(PARQUET_SUFFIXES)})."
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {missing}; expected {list(required)}. Received columns: {list(frame.columns)}"
        )
    out = {}
    for column in [c for c in (*required, *optional) if c in frame.columns]:
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if column == LABEL:
            bad = ~np.isin(values, (0.0, 1.0))
            what = "0 or 1"
        else:
            bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2.0**63)
            what = "an integer id"
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: column `{column}` must hold {what} on every row; {int(bad.sum())} do not. "
                f"Received: {raw.iloc[i]!r} on {where} {i + first_row}"
            )
        out[column] = values.astype(np.float32 if column == LABEL else np.int64)
    return out
