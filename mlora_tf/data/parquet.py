"""Reads Parquet files into pandas, with or without a Parquet engine installed.

```
frame = read_parquet("clicks.parquet", columns=["user", "item", "site", "click"])
```

pandas reads Parquet only through `pyarrow` or `fastparquet`, and neither is a
dependency of this package. `read_parquet` uses pandas when one of them is installed
(`engine="auto"`) and otherwise this module's own reader (`engine="numpy"`), written from
the Parquet format specification in numpy and the standard library. The own reader
covers what writers of tabular data produce:

- **Schema:** flat files (top-level columns, `REQUIRED` or `OPTIONAL`; nulls become
  `NaN` / `None`). A nested column (list, map, struct) is refused with an error naming
  it, but only when it is one of the `columns` asked for.
- **Physical types:** BOOLEAN, INT32, INT64, INT96 (legacy timestamps), FLOAT, DOUBLE,
  BYTE_ARRAY (text when annotated `STRING` / `UTF8` / `ENUM` / `JSON`, else `bytes`) and
  FIXED_LEN_BYTE_ARRAY; `DECIMAL` becomes float64 (pyarrow gives `decimal.Decimal`
  objects), `DATE` `datetime.date`, `TIMESTAMP` `datetime64` (UTC-aware when the file
  says so), unsigned integers their unsigned numpy type, a boolean with nulls `object`.
- **Encodings:** all of the format's: PLAIN, PLAIN_DICTIONARY / RLE_DICTIONARY, RLE
  (booleans and levels), DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY
  and BYTE_STREAM_SPLIT, in data pages of version 1 and 2.
- **Compression:** none, SNAPPY (the default of pyarrow, pandas, Spark and DuckDB) and
  GZIP. ZSTD, BROTLI, LZ4 and LZO need a real engine: the error names the file, the
  column and the codec, and says `pip install pyarrow` (or rewrite the file with
  `compression="snappy"`).
- Types are as pandas with pyarrow gives them: an integer column with nulls is float64
  with `NaN`, text is pandas' string type; the pandas index stored by `to_parquet` is
  restored.

The own reader decodes in Python loops where the format is sequential (SNAPPY blocks,
BYTE_ARRAY values), so it reads some megabytes per second: enough for the files one
prepares once, but install `pyarrow` for large ones (it logs this hint above 64 MiB).
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from absl import logging

MAGIC = b"PAR1"
SUFFIXES = (".parquet", ".pq")
ENGINES = ("auto", "pandas", "numpy")
_LARGE_FILE = 64 << 20
_HAS_STR_DTYPE = int(pd.__version__.split(".")[0]) >= 3  # pandas 3 has a string dtype

# Enumerations of parquet.thrift, by value.
_TYPES = ("BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY")
_CODECS = ("UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW")
_ENCODINGS = {
    0: "PLAIN", 2: "PLAIN_DICTIONARY", 3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED",
    6: "DELTA_LENGTH_BYTE_ARRAY", 7: "DELTA_BYTE_ARRAY", 8: "RLE_DICTIONARY", 9: "BYTE_STREAM_SPLIT",
}
_REQUIRED, _OPTIONAL, _REPEATED = 0, 1, 2
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_PLAIN, _DICTIONARY_ENCODINGS = 0, (2, 8)
# Converted types (the legacy annotation) that matter here.
_UTF8, _ENUM, _DECIMAL, _DATE, _TIMESTAMP_MILLIS, _TIMESTAMP_MICROS, _JSON = 0, 4, 5, 6, 9, 10, 19
_UNSIGNED = {11: np.uint8, 12: np.uint16, 13: np.uint32, 14: np.uint64}
_PLAIN_DTYPES = {"INT32": "<i4", "INT64": "<i8", "FLOAT": "<f4", "DOUBLE": "<f8"}
_JULIAN_UNIX_EPOCH = 2440588


class ParquetError(ValueError):
    """A Parquet file this reader cannot read; the message names the file (and column)."""


def engine_available() -> bool:
    """Whether pandas can read parquet here (pyarrow or fastparquet installed)."""
    return any(importlib.util.find_spec(m) is not None for m in ("pyarrow", "fastparquet"))


def read_parquet(path: str, columns: Sequence[str] | None = None, engine: str = "auto") -> pd.DataFrame:
    """Reads a Parquet file into a DataFrame.

    Args:
        path: the `.parquet` file.
        columns: the columns to read (in this order); `None` reads them all.
        engine: `"pandas"` (`pandas.read_parquet`, needs pyarrow or fastparquet),
            `"numpy"` (this module's reader) or `"auto"` (pandas when it can, else numpy).

    Returns:
        A DataFrame with one column per `columns` entry and one row per file row.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a column not in the file (naming the file's columns), an unknown
            engine, or, for the numpy engine, a `ParquetError` naming the file, the column
            and what it cannot read.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown parquet engine {engine!r}; expected one of {ENGINES}. Received: engine={engine!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Parquet file not found: {path}. Received: path={path!r}")
    if engine == "pandas" or (engine == "auto" and engine_available()):
        frame = pd.read_parquet(path)
        if columns is None:
            return frame
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing}. Received: columns {list(frame.columns)}")
        return frame[list(columns)]
    if os.path.getsize(path) > _LARGE_FILE:
        logging.info("Reading %s with mlora_tf's own parquet reader; `pip install pyarrow` reads it faster.", path)
    return ParquetFile(path).read(columns)


class ParquetFile:
    """The footer of one Parquet file, and its columns on demand.

    Attributes:
        path: the file.
        num_rows: rows in the file.
        columns: the top-level column names, in file order.
    """

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            self._data = f.read()
        data = self._data
        if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
            raise ParquetError(
                f"{path} is not a Parquet file (it must start and end with {MAGIC!r}; "
                f"a file cut short loses its footer). Received: {len(data)} bytes"
            )
        footer_length = struct.unpack_from("<I", data, len(data) - 8)[0]
        start = len(data) - 8 - footer_length
        if footer_length == 0 or start < 4:
            raise ParquetError(f"{path}: footer length {footer_length} does not fit a file of {len(data)} bytes.")
        try:
            meta = _Compact(data, start).struct()
        except (IndexError, struct.error, ValueError) as error:
            raise ParquetError(f"{path}: unreadable footer ({error}).") from None
        self.num_rows = int(meta.get(3, 0))
        self._row_groups = meta.get(4, [])
        self._schema = self._flatten_schema(meta.get(2, []))
        self.columns = list(self._schema)
        self._pandas = {}
        for item in meta.get(5, []) or []:
            if item.get(1) == b"pandas" and item.get(2):
                try:
                    self._pandas = json.loads(item[2])
                except ValueError:
                    pass

    def _flatten_schema(self, elements: list[dict]) -> dict[str, dict]:
        """`{name: schema element}` of the top-level columns; nested ones are marked."""
        if not elements:
            raise ParquetError(f"{self.path}: the footer has no schema.")
        schema, i = {}, 1
        while i < len(elements):
            element = elements[i]
            name = element[4].decode("utf-8")
            children = element.get(5, 0)
            nested = children > 0 or element.get(3, _REQUIRED) == _REPEATED
            schema[name] = dict(element, nested=nested)
            i += _subtree_size(elements, i)
        return schema

    def read(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The file's `columns` (all by default) as a DataFrame, the pandas index restored."""
        index = self._pandas.get("index_columns", [])
        index_columns = [c for c in index if isinstance(c, str) and c in self._schema]
        if columns is None:
            columns = [c for c in self.columns if c not in index_columns]
        missing = [c for c in columns if c not in self._schema]
        if missing:
            raise ValueError(f"{self.path} lacks the column(s) {missing}. Received: columns {self.columns}")
        names = list(dict.fromkeys(columns))
        frame = pd.DataFrame({name: self.column(name) for name in names}, columns=names)
        if index_columns:
            frame.index = self._index(index_columns)
        elif len(index) == 1 and isinstance(index[0], dict) and index[0].get("kind") == "range":
            r = index[0]
            if r.get("stop", 0) - r.get("start", 0) == len(frame) * r.get("step", 1):
                frame.index = pd.RangeIndex(r["start"], r["stop"], r.get("step", 1), name=r.get("name"))
        return frame

    def _index(self, index_columns: list[str]) -> pd.Index:
        arrays = [self.column(c) for c in index_columns]
        names = [self._index_name(c) for c in index_columns]
        if len(arrays) == 1:
            return pd.Index(arrays[0], name=names[0])
        return pd.MultiIndex.from_arrays(arrays, names=names)

    def _index_name(self, field_name: str) -> str | None:
        for column in self._pandas.get("columns", []):
            if column.get("field_name") == field_name:
                return column.get("name")
        return None

    def column(self, name: str) -> pd.Series | np.ndarray:
        """One top-level column, all row groups, as a numpy array or pandas array."""
        element = self._schema[name]
        if element["nested"]:
            raise ParquetError(
                f"{self.path}: column {name!r} is nested (a list, map or struct); this reader takes flat "
                f"columns only. Install pyarrow (pip install pyarrow) or flatten the column."
            )
        parts = []
        for group in self._row_groups:
            chunk = next((c for c in group.get(1, []) if [p.decode("utf-8") for p in c[3][3]] == [name]), None)
            if chunk is None:
                raise ParquetError(f"{self.path}: a row group has no chunk for column {name!r}.")
            try:
                parts.append(self._read_chunk(name, element, chunk[3]))
            except ParquetError:
                raise
            except (IndexError, struct.error, ValueError, zlib.error) as error:
                raise ParquetError(f"{self.path}: column {name!r} is corrupt ({error}).") from None
        values = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, object)
        valid = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, bool)
        return _to_pandas(values, valid, element)

    def _read_chunk(self, name: str, element: dict, meta: dict) -> tuple[np.ndarray, np.ndarray]:
        """(values of the non-null rows, validity per row) of one column chunk."""
        physical = _TYPES[meta[1]]
        codec = _CODECS[meta[4]] if meta[4] < len(_CODECS) else str(meta[4])
        if codec not in ("UNCOMPRESSED", "SNAPPY", "GZIP"):
            raise ParquetError(
                f"{self.path}: column {name!r} is compressed with {codec}, which mlora_tf's own parquet reader "
                f"does not decode (it reads UNCOMPRESSED, SNAPPY and GZIP). Install pyarrow (pip install pyarrow), "
                f"or rewrite the file with compression='snappy'. Received: codec={codec}"
            )
        total = int(meta[5])
        offset = int(meta[9])
        if meta.get(11):
            offset = min(offset, int(meta[11]))
        max_definition = 1 if element.get(3, _REQUIRED) == _OPTIONAL else 0
        dictionary = None
        values, valid, seen = [], [], 0
        reader = _Compact(self._data, offset)
        while seen < total:
            header = reader.struct()
            kind, size = header[1], header[3]
            body = self._data[reader.pos:reader.pos + size]
            if len(body) != size:
                raise ParquetError(f"{self.path}: column {name!r} ends inside a page (file cut short?).")
            reader.pos += size
            if kind == _DICTIONARY_PAGE:
                page = _decompress(body, codec, header[2])
                dictionary = _plain(page, physical, header[7][1], element.get(2, 0))
                continue
            if kind not in (_DATA_PAGE, _DATA_PAGE_V2):
                continue  # index pages carry nothing to read
            if kind == _DATA_PAGE:
                page_header = header[5]
                page = _decompress(body, codec, header[2])
                count, encoding = page_header[1], page_header[2]
                if max_definition:
                    length = struct.unpack_from("<I", page, 0)[0]
                    defined = _rle_hybrid(page[4:4 + length], 1, count) == 1
                    page = page[4 + length:]
                else:
                    defined = np.ones(count, bool)
            else:
                page_header = header[8]
                count, encoding = page_header[1], page_header[4]
                levels_length = page_header[5] + page_header.get(6, 0)
                if page_header.get(6, 0):
                    raise ParquetError(f"{self.path}: column {name!r} has repetition levels (nested data).")
                levels, rest = body[:levels_length], body[levels_length:]
                compressed = page_header.get(7, True)
                page = _decompress(rest, codec, header[2] - levels_length) if compressed else rest
                defined = _rle_hybrid(levels, 1, count) == 1 if max_definition else np.ones(count, bool)
            n_values = int(defined.sum())
            if encoding == _PLAIN:
                page_values = _plain(page, physical, n_values, element.get(2, 0))
            elif (encoding, physical) in _DECODER_TYPES:
                page_values = _DECODERS[encoding](page, physical, n_values)
            elif encoding in _DICTIONARY_ENCODINGS:
                if dictionary is None:
                    raise ParquetError(f"{self.path}: column {name!r} uses a dictionary it does not store.")
                bit_width = page[0]
                indices = _rle_hybrid(page[1:], bit_width, n_values) if n_values else np.empty(0, np.int64)
                if indices.size and indices.max() >= len(dictionary):
                    raise ParquetError(f"{self.path}: column {name!r} has a dictionary index out of range.")
                page_values = dictionary[indices]
            else:
                raise ParquetError(
                    f"{self.path}: column {name!r} uses the {_ENCODINGS.get(encoding, encoding)} encoding, which "
                    f"mlora_tf's own parquet reader does not decode. Install pyarrow (pip install pyarrow)."
                )
            values.append(page_values)
            valid.append(defined)
            seen += count
        if not values:
            return np.empty(0, object), np.empty(0, bool)
        return np.concatenate(values), np.concatenate(valid)


def _subtree_size(elements: list[dict], i: int) -> int:
    """Schema elements in the subtree rooted at `elements[i]`, itself included."""
    size, pending = 0, 1
    while pending:
        pending += elements[i + size].get(5, 0) - 1
        size += 1
    return size


def _to_pandas(values: np.ndarray, valid: np.ndarray, element: dict):
    """Applies the column's logical type and puts its nulls back, as pandas with pyarrow would."""
    physical = _TYPES[element[1]]
    converted = element.get(6)
    logical = element.get(10, {})
    scale = element.get(7, 0)
    if converted == _DECIMAL or 5 in logical:
        scale = logical.get(5, {}).get(1, scale)
        if physical in ("FIXED_LEN_BYTE_ARRAY", "BYTE_ARRAY"):
            values = np.array([int.from_bytes(v, "big", signed=True) for v in values], dtype=np.float64)
        values = values.astype(np.float64) / 10.0**scale
    elif physical == "BYTE_ARRAY" and (converted in (_UTF8, _ENUM, _JSON) or {1, 4, 12} & set(logical)):
        values = np.array([v.decode("utf-8") for v in values], dtype=object)
        out = np.full(len(valid), None, dtype=object)
        out[valid] = values
        return pd.array(out, dtype="str") if _HAS_STR_DTYPE else out
    elif converted == _DATE or 6 in logical:
        days = values.astype("datetime64[D]")
        out = np.full(len(valid), None, dtype=object)
        out[valid] = days.astype(object)
        return out
    elif converted in (_TIMESTAMP_MILLIS, _TIMESTAMP_MICROS) or 8 in logical or physical == "INT96":
        if physical == "INT96":
            values = values.astype("datetime64[ns]")
        else:
            unit = {_TIMESTAMP_MILLIS: "ms", _TIMESTAMP_MICROS: "us"}.get(converted, "us")
            if 8 in logical:
                unit = {1: "ms", 2: "us", 3: "ns"}[next(iter(logical[8].get(2, {2: {}})))]
            values = values.astype(f"datetime64[{unit}]")
        out = np.full(len(valid), np.datetime64("NaT"), dtype=values.dtype)
        out[valid] = values
        if logical.get(8, {}).get(1):  # isAdjustedToUTC
            return pd.DatetimeIndex(out).tz_localize("UTC")
        return out
    elif converted in _UNSIGNED or (10 in logical and not logical[10].get(2, True)):
        bits = logical.get(10, {}).get(1) or {11: 8, 12: 16, 13: 32, 14: 64}[converted]
        values = values.astype(getattr(np, f"int{bits}")).view(getattr(np, f"uint{bits}"))
    elif 10 in logical or converted in range(15, 19):
        bits = logical.get(10, {}).get(1) or {15: 8, 16: 16, 17: 32, 18: 64}[converted]
        values = values.astype(getattr(np, f"int{bits}"))
    if valid.all():
        return values
    if values.dtype.kind in "iuf":  # pyarrow's rule: integers with nulls become float64
        out = np.full(len(valid), np.nan, dtype=values.dtype if values.dtype.kind == "f" else np.float64)
        out[valid] = values
        return out
    out = np.full(len(valid), None, dtype=object)
    out[valid] = values
    return out



def _plain(page: bytes, physical: str, count: int, type_length: int) -> np.ndarray:
    """`count` PLAIN-encoded values of a physical type."""
    if physical in _PLAIN_DTYPES:
        dtype = np.dtype(_PLAIN_DTYPES[physical])
        if len(page) < count * dtype.itemsize:
            raise ValueError(f"{count} {physical} values need {count * dtype.itemsize} bytes, the page has {len(page)}")
        return np.frombuffer(page, dtype=dtype, count=count).astype(dtype.newbyteorder("="))
    if physical == "BOOLEAN":
        return np.unpackbits(np.frombuffer(page, np.uint8), bitorder="little")[:count].astype(bool)
    if physical == "INT96":
        raw = np.frombuffer(page, dtype=np.dtype([("nanos", "<i8"), ("day", "<i4")]), count=count)
        return (raw["day"].astype(np.int64) - _JULIAN_UNIX_EPOCH) * 86_400_000_000_000 + raw["nanos"]
    if physical == "FIXED_LEN_BYTE_ARRAY":
        out = np.empty(count, dtype=object)
        for i in range(count):
            out[i] = bytes(page[i * type_length:(i + 1) * type_length])
        return out
    out = np.empty(count, dtype=object)  # BYTE_ARRAY: 4-byte length, then the bytes
    pos = 0
    for i in range(count):
        (length,) = struct.unpack_from("<I", page, pos)
        out[i] = bytes(page[pos + 4:pos + 4 + length])
        pos += 4 + length
    if pos > len(page):
        raise ValueError("BYTE_ARRAY values run past the end of their page")
    return out


def _rle_booleans(page: bytes, physical: str, count: int) -> np.ndarray:
    """RLE-encoded BOOLEAN values (data pages v2): a 4-byte length, then the hybrid."""
    (length,) = struct.unpack_from("<I", page, 0)
    return _rle_hybrid(page[4:4 + length], 1, count).astype(bool)


def _delta_binary_packed(page: bytes, count: int, pos: int = 0) -> tuple[np.ndarray, int]:
    """DELTA_BINARY_PACKED integers: (`count` int64 values, the position after them)."""
    block_size, pos = _varint(page, pos)
    miniblocks, pos = _varint(page, pos)
    total, pos = _varint(page, pos)
    first, pos = _varint(page, pos)
    if count > total or not miniblocks or block_size % miniblocks or (block_size // miniblocks) % 8:
        raise ValueError(f"bad DELTA_BINARY_PACKED header (block {block_size}, miniblocks {miniblocks}, {total} values)")
    per_miniblock = block_size // miniblocks
    deltas = np.empty(max(total - 1, 0), dtype=np.uint64)
    filled = 0
    while filled < len(deltas):
        min_delta, pos = _varint(page, pos)
        min_delta = np.uint64(((min_delta >> 1) ^ -(min_delta & 1)) & 0xFFFFFFFFFFFFFFFF)
        widths = page[pos:pos + miniblocks]
        pos += miniblocks
        for width in widths:
            if filled >= len(deltas):
                break
            n = min(per_miniblock, len(deltas) - filled)
            packed = _unpack_bits(page, pos, width, per_miniblock)[:n]
            deltas[filled:filled + n] = packed + min_delta  # wraps modulo 2**64, as the format intends
            pos += per_miniblock * width // 8
            filled += n
    first = ((first >> 1) ^ -(first & 1)) & 0xFFFFFFFFFFFFFFFF
    values = np.concatenate([np.array([first], np.uint64), deltas]).cumsum(dtype=np.uint64)
    return values.view(np.int64)[:count], pos


def _unpack_bits(data: bytes, pos: int, width: int, count: int) -> np.ndarray:
    """`count` little-endian bit-packed unsigned values of `width` bits, as uint64."""
    if width == 0:
        return np.zeros(count, np.uint64)
    chunk = np.frombuffer(data, np.uint8, count=count * width // 8, offset=pos)
    bits = np.unpackbits(chunk, bitorder="little").reshape(count, width).astype(np.uint64)
    return (bits << np.arange(width, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def _delta_integers(page: bytes, physical: str, count: int) -> np.ndarray:
    values = _delta_binary_packed(page, count)[0]
    return values.astype(np.int32) if physical == "INT32" else values


def _delta_length_byte_array(page: bytes, physical: str, count: int, pos: int = 0) -> np.ndarray:
    lengths, pos = _delta_binary_packed(page, count, pos)
    out = np.empty(count, dtype=object)
    for i, length in enumerate(lengths.tolist()):
        out[i] = bytes(page[pos:pos + length])
        pos += length
    if pos > len(page):
        raise ValueError("DELTA_LENGTH_BYTE_ARRAY values run past the end of their page")
    return out


def _delta_byte_array(page: bytes, physical: str, count: int) -> np.ndarray:
    prefixes, pos = _delta_binary_packed(page, count)
    suffixes = _delta_length_byte_array(page, physical, count, pos)
    out, previous = np.empty(count, dtype=object), b""
    for i, (prefix, suffix) in enumerate(zip(prefixes.tolist(), suffixes)):
        previous = out[i] = previous[:prefix] + suffix
    return out


def _byte_stream_split(page: bytes, physical: str, count: int) -> np.ndarray:
    dtype = np.dtype(_PLAIN_DTYPES[physical])
    streams = np.frombuffer(page, np.uint8, count=count * dtype.itemsize).reshape(dtype.itemsize, count)
    return np.ascontiguousarray(streams.T).view(dtype).reshape(count).astype(dtype.newbyteorder("="))


# Non-PLAIN, non-dictionary value encodings: {encoding: decoder}, and the types each takes.
_DECODERS = {3: _rle_booleans, 5: _delta_integers, 6: _delta_length_byte_array, 7: _delta_byte_array,
             9: _byte_stream_split}
_DECODER_TYPES = {(3, "BOOLEAN"), (5, "INT32"), (5, "INT64"), (6, "BYTE_ARRAY"), (7, "BYTE_ARRAY"),
                  (7, "FIXED_LEN_BYTE_ARRAY"), *((9, t) for t in _PLAIN_DTYPES)}


def _rle_hybrid(data: bytes, bit_width: int, count: int) -> np.ndarray:
    """`count` values of the RLE / bit-packed hybrid encoding (levels, dictionary indices)."""
    out = np.empty(count, dtype=np.int64)
    filled, pos = 0, 0
    value_bytes = (bit_width + 7) // 8
    while filled < count:
        header, pos = _varint(data, pos)
        if header & 1:  # bit-packed groups of 8 values
            n_bytes = (header >> 1) * bit_width
            n = min((header >> 1) * 8, count - filled)
            out[filled:filled + n] = _unpack_bits(data, pos, bit_width, (header >> 1) * 8)[:n]
            pos += n_bytes
        else:  # a run of one value
            n = min(header >> 1, count - filled)
            if n == 0:
                raise ValueError("empty RLE run")
            out[filled:filled + n] = int.from_bytes(data[pos:pos + value_bytes], "little")
            pos += value_bytes
        filled += n
    return out


def _decompress(data: bytes, codec: str, size: int) -> bytes:
    if codec == "UNCOMPRESSED":
        return data
    if codec == "GZIP":
        return zlib.decompress(data, 47)  # zlib or gzip header
    out = snappy_decompress(data)
    if len(out) != size:
        raise ValueError(f"SNAPPY page decompressed to {len(out)} bytes, its header says {size}")
    return out


def snappy_decompress(data: bytes) -> bytes:
    """Decompresses one raw SNAPPY block (the format of github.com/google/snappy).

    Raises:
        ValueError: the block is malformed (a copy before the start, a short literal,
            or a length other than the one the block announces).
    """
    expected, pos = _varint(data, 0)
    out = bytearray()
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > end:
                raise ValueError("SNAPPY literal runs past the end of the block")
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            length = (tag >> 2) + 1
            width = 2 if kind == 2 else 4
            offset = int.from_bytes(data[pos:pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise ValueError(f"SNAPPY copy of offset {offset} at output byte {len(out)}")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:  # the copy overlaps what it writes: a repeated pattern
            pattern = out[start:]
            out += (pattern * (length // offset + 1))[:length]
    if len(out) != expected:
        raise ValueError(f"SNAPPY block decompressed to {len(out)} bytes, it announces {expected}")
    return bytes(out)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


class _Compact:
    """The Thrift compact protocol, decoded into `{field id: value}` dicts."""

    def __init__(self, data: bytes, pos: int):
        self.data = data
        self.pos = pos

    def _byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def _varint(self) -> int:
        value, self.pos = _varint(self.data, self.pos)
        return value

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)

    def struct(self) -> dict:
        fields, last = {}, 0
        while True:
            header = self._byte()
            if header == 0:
                return fields
            kind, delta = header & 0x0F, header >> 4
            field = last + delta if delta else self._zigzag()
            if kind in (1, 2):
                fields[field] = kind == 1
            else:
                fields[field] = self._value(kind)
            last = field

    def _value(self, kind: int):
        if kind in (1, 2):  # a boolean inside a list
            return self._byte() == 1
        if kind == 3:
            value = self._byte()
            return value - 256 if value > 127 else value
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            (value,) = struct.unpack_from("<d", self.data, self.pos)
            self.pos += 8
            return value
        if kind == 8:
            length = self._varint()
            value = bytes(self.data[self.pos:self.pos + length])
            self.pos += length
            return value
        if kind in (9, 10):
            header = self._byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self._varint()
            return [self._value(element) for _ in range(size)]
        if kind == 11:
            size = self._varint()
            if not size:
                return {}
            types = self._byte()
            return {self._value(types >> 4): self._value(types & 0x0F) for _ in range(size)}
        if kind == 12:
            return self.struct()
        raise ValueError(f"unknown Thrift compact type {kind}")

