"""Generic loader: any CSV (or parquet) file of labelled interactions -> a multi-domain dataset.

```
mlora-prepare --dataset=csv --path=clicks.csv --domain_column=site --label_column=click \\
    --features=user,item[,more ids...] [--numeric_features=price,age --n_buckets=10] \\
    [--split_column=split] --out_dir=prepared/clicks
load_dataset("csv", path="clicks.csv", domain_column="site", label_column="click",
             features=["user", "item"], cache_dir=...)
```

- **File:** `.csv` (header row, `delimiter` default `,`, UTF-8) or `.parquet` /
  `.pq`, read with pyarrow (`mlora_tf.data.parquet`: every codec; a used column must be
  flat). Parquet rows are named by 1-based row number, and a null in a used column is an
  error, as an empty CSV field is.
- **Domains:** `domain_column` may hold values of any type. The distinct values are
  sorted (numerically if they are all numbers, else as text) and mapped to `0..D-1`;
  the map is `info["domain_map"]` (`mlora-prepare` prints it) and the values are the
  `domain_names`.
- **Label:** `label_column` must hold 0 or 1 (`0`, `1`, `0.0`, `1.0`, `true`, `false`);
  anything else is an error naming the line and the value.
- **Categorical features** (`features`, at least two): each column's distinct values are
  mapped to contiguous ids `0..n-1` in order of first appearance. **The first feature
  becomes `uid` and the second `pid`**, the only two id features the models take today
  (with `domain`).
- **No `features`:** the schema is inferred (`infer_features`): every column other than
  the domain, label(s) and split is a feature; integer and text columns are categorical, in
  file order (the first two are `uid` and `pid`), float columns numeric (bucketised; with
  `numeric_features` given, only those). A column with an empty or null value is left out.
  `mlora-prepare` prints the flags that give the inferred schema, to copy and edit.
- **Numeric features** (`numeric_features`): bucketised into `n_buckets` (default 10)
  quantile buckets over all rows (`pandas.qcut`, equal-count buckets; tied edges merged),
  giving ids `0..B-1`; the edges are `info["buckets"]`.
- **Extra features** (categorical features after the second, and every numeric one) are
  sparse features of the dataset, named after their column (made an identifier), with
  their own vocabulary: every model embeds them. They are also kept as the int64 arrays
  `get_extras(ds)["<split>__<column>"]`, aligned with the rows of each split.
- **Hashed features** (`hash_buckets`, `{column or feature name: N}` or
  `"user:1000000,item:200000"`): the named categorical features skip the vocabulary
  pass: each value is hashed into `N` buckets (`mlora_tf.data.hashing`: FarmHash
  Fingerprint64 of its text mod N, the same op as the export's), so the table has `N`
  rows and there is no OOV row. Numeric features and the domain column cannot be hashed.
  `info["hash_buckets"]` records `{feature: {"buckets": N, "kind": "int"|"string"}}`.
- **Split:** per domain, stratified on the label, with the §1.3 splitter (60/20/20, seed
  123; `mlora_tf.data.split`), rows in file order; or, with `split_column`, as that
  column says (values `train`, `val`, `test`; every domain must have rows in all three).
- **Files as they come:** a UTF-8 BOM, CRLF line ends, trailing whitespace and one
  trailing empty field per line (a line ending in the delimiter) are read as if absent and
  counted in one INFO log line per file.
- Errors name the file, the 1-based line and the value: a missing column (with the header
  and a wrong-delimiter hint), a repeated header name, a line with too few or too many
  fields (more than the header has, even beyond the columns used), an empty value, a
  non-numeric numeric value, a bad label or split value.
"""

from __future__ import annotations

import csv
import keyword
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from absl import logging

from mlora_tf.data import cache as cache_lib
from mlora_tf.data import hashing
from mlora_tf.data import parquet as parquet_lib
from mlora_tf.data import prepared
from mlora_tf.data import split as split_lib
from mlora_tf.data.dataset import FEATURES, LABEL, SPLITS, MultiDomainDataset
from mlora_tf.data.movielens import normalised_file

DEFAULT_BUCKETS = 10
PARQUET_SUFFIXES = parquet_lib.SUFFIXES
_TRUE = {"1", "1.0", "true", "True", "TRUE"}
_FALSE = {"0", "0.0", "false", "False", "FALSE"}
OPTIONS = frozenset({
    "path", "domain_column", "label_column", "features", "numeric_features", "n_buckets",
    "split_column", "delimiter", "fractions", "hash_buckets",
})
CSV_SCHEMA = 2
"""Layout of the csv loader's prepared arrays, part of its cache key (1: extra features
only as extra arrays; 2: extra features are dataset features, several labels allowed)."""
RESERVED_NAMES: tuple[str, ...] = FEATURES + (LABEL,)
"""Names no extra feature or label column may take (`uid`, `pid`, `domain`, `label`)."""


def feature_name(column: str) -> str:
    """The dataset name of an extra feature (or of a label, with several) `column`.

    Characters other than ASCII letters, digits and `_` become `_`, a leading digit
    gets the prefix `f_` and a Python keyword a trailing `_`, so the name is a valid
    Python identifier (a Keras input and a serving-signature argument name).
    """
    name = re.sub(r"\W", "_", str(column).strip(), flags=re.ASCII)
    if not name or name[0].isdigit():
        name = "f_" + name
    if keyword.iskeyword(name):
        name += "_"
    return name


def _column_names(columns: Sequence[str], role: str, taken: dict[str, str]) -> list[str]:
    """`feature_name` of each of `columns`, checked against the reserved names and
    against the names in `taken` (name -> column, updated)."""
    names = []
    for column in columns:
        name = feature_name(column)
        if name in RESERVED_NAMES:
            raise ValueError(
                f"The {role} column {column!r} would be named {name!r}, which the dataset reserves "
                f"({', '.join(RESERVED_NAMES)}); rename the column. Received: {role} {list(columns)}"
            )
        if name in taken:
            raise ValueError(
                f"The columns {taken[name]!r} and {column!r} would both be named {name!r} (names keep "
                "letters, digits and _ only); rename one of them. "
                f"Received: {role} {list(columns)}"
            )
        taken[name] = column
        names.append(name)
    return names


def _as_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise ValueError(f"`{name}` must be a list of column names. Received: {name}={value!r}")
    return [v for v in items if v]


def split_header(header: Sequence[str]) -> list[str]:
    """The header's names, stripped; a trailing empty name (the header line ends in the
    delimiter, accepted as a trailing empty field) is dropped."""
    names = [str(h).strip() for h in header]
    if len(names) > 1 and names[-1] == "":
        names = names[:-1]
    return names


def _scan_fields(path: str, delimiter: str, n_fields: int, start_line: int = 2) -> ValueError | None:
    """The error for the first data line whose field count differs from the header's."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if line < start_line:
                continue
            if len(row) == n_fields + 1 and row[-1].strip() == "":
                continue  # a trailing empty field, accepted
            if len(row) != n_fields:
                return ValueError(
                    f"Malformed line {line} of {path}: {len(row)} field(s) where the header has "
                    f"{n_fields}. Received: {delimiter.join(row)!r}"
                )
    return None


def read_table(path: str, columns: Sequence[str], delimiter: str) -> pd.DataFrame:
    """Reads `columns` of a CSV / parquet file as text, validating the header and shape.

    Returns:
        A DataFrame of strings, one row per data line (row r is line r + 2 of a CSV).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Data file not found: {path}. Received: path={path!r}")
    if path.lower().endswith(PARQUET_SUFFIXES):
        frame = parquet_lib.read_parquet(path, columns).reset_index(drop=True)
        if len(frame) == 0:
            raise ValueError(f"{path} holds no rows. Received: columns {list(frame.columns)}")
        null = frame.isna().to_numpy()
        if null.any():
            row, col = np.argwhere(null)[0]
            raise ValueError(f"Row {row + 1} of {path}: column {frame.columns[col]} is null. Received: null")
        return frame.astype(str)
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; expected a header line naming {list(columns)}. Received: an empty file")
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            header = next(csv.reader(f, delimiter=delimiter), [])
        except (UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"Could not read the header line of {path}: {error}. Received: {path}") from None
    header = split_header(header)
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ValueError(f"Line 1 of {path} repeats column name(s) {repeated}. Received: header {header}")
    missing = [c for c in columns if c not in header]
    if missing:
        hint = ""
        if len(header) == 1:
            for other in (";", "\t", "|", ","):
                if other != delimiter and other in header[0]:
                    hint = f" The header holds {other!r}: wrong delimiter? (--delimiter={other!r})"
                    break
        raise ValueError(
            f"{path} lacks the column(s) {missing}; line 1 has {header}.{hint} Received: {header}"
        )
    try:
        with normalised_file(path, delimiter, max_fields=len(header)) as (f, _):
            frame = pd.read_csv(
                f, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8",
                usecols=list(columns), skip_blank_lines=False, skipinitialspace=True,
            )
    except pd.errors.ParserError as error:
        found = _scan_fields(path, delimiter, len(header))
        raise (found or ValueError(f"Could not parse {path}: {error}. Received: {path}")) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}. Received: {path}") from None
    if len(frame) == 0:
        raise ValueError(f"{path} holds a header but no data lines. Received: header {header}")
    frame = frame.fillna("")  # fields missing from a short line
    empty = np.zeros(len(frame), dtype=bool)
    for column in columns:
        empty |= (frame[column].str.strip() == "").to_numpy()
    if empty.any():
        row = int(np.argmax(empty))
        found = _scan_fields(path, delimiter, len(header), start_line=row + 2)
        if found is not None:
            raise found
        column = next(c for c in columns if frame[c].iloc[row].strip() == "")
        raise ValueError(f"Malformed line {row + 2} of {path}: column {column} is empty. Received: ''")
    return frame


def _bad(path: str, row: int, column: str, expected: str, value: object, parquet: bool) -> ValueError:
    where = f"row {row + 1}" if parquet else f"line {row + 2}"
    return ValueError(f"Malformed {where} of {path}: column {column} must be {expected}. Received: {value!r}")


def _domain_ids(values: pd.Series) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """Sorted distinct values -> 0..D-1 (numeric sort if every value is a number)."""
    uniques = pd.unique(values.to_numpy())
    numeric = pd.to_numeric(pd.Series(uniques), errors="coerce")
    if numeric.notna().all():
        order = np.argsort(numeric.to_numpy(), kind="stable")
    else:
        order = np.argsort(uniques.astype(str), kind="stable")
    names = [str(v) for v in uniques[order]]
    mapping = {name: i for i, name in enumerate(names)}
    ids = pd.Series(values).map(mapping).to_numpy(dtype=np.int64)
    return ids, names, mapping


def _split_rows(domain: np.ndarray, label: np.ndarray, n_domains: int, names: list[str], seed: int,
                fractions: Sequence[float], where: str) -> dict[str, np.ndarray]:
    """§1.3 per domain in file order; returns split -> row indices grouped by domain."""
    order = np.argsort(domain, kind="stable")
    bounds = np.searchsorted(domain[order], np.arange(n_domains + 1))
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for d in range(n_domains):
        rows = order[bounds[d]:bounds[d + 1]]
        positions = split_lib.split_indices(
            label[rows], seed=seed, fractions=fractions, domain_label=f"{d} ('{names[d]}') of {where}"
        )[:3]
        for split, pos in zip(SPLITS, positions):
            parts[split].append(rows[pos])
    return {s: np.concatenate(parts[s]) for s in SPLITS}


def _column_split(values: pd.Series, domain: np.ndarray, names: list[str], path: str, column: str,
                  parquet: bool) -> dict[str, np.ndarray]:
    text = values.str.strip().str.lower()
    bad = ~text.isin(SPLITS).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise _bad(path, row, column, "one of train, val, test", values.iloc[row], parquet)
    out = {}
    for split in SPLITS:
        rows = np.flatnonzero((text == split).to_numpy())
        rows = rows[np.argsort(domain[rows], kind="stable")]
        present = np.bincount(domain[rows], minlength=len(names))
        if (present == 0).any():
            d = int(np.argmin(present))
            raise ValueError(
                f"{path}: domain {names[d]!r} has no rows in split '{split}' (column {column}); every "
                f"domain needs train, val and test rows. Received: {column} values for {names[d]!r}: "
                f"{sorted(set(text[domain == d]))}"
            )
        out[split] = rows
    return out


def _parse_label(frame: pd.DataFrame, column: str, path: str, parquet: bool) -> np.ndarray:
    """A 0/1 column as float32 `(rows,)`; the first other value is an error naming the
    file, the line, the column and the value."""
    text = frame[column].str.strip()
    positive = text.isin(_TRUE).to_numpy()
    negative = text.isin(_FALSE).to_numpy()
    bad = ~(positive | negative)
    if bad.any():
        row = int(np.argmax(bad))
        raise _bad(path, row, column, "0 or 1", frame[column].iloc[row], parquet)
    return positive.astype(np.float32)


_INT_TEXT = re.compile(r"[+-]?\d+")


def _read_all_columns(path: str, delimiter: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every column of a CSV / parquet file as text, and the columns left out of schema
    inference with the reason (empty or null values, nested parquet columns)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Data file not found: {path}. Received: path={path!r}")
    skipped: dict[str, str] = {}
    if path.lower().endswith(PARQUET_SUFFIXES):
        flat = parquet_lib.file_columns(path)
        frame = parquet_lib.read_parquet(path).reset_index(drop=True)
        for column in frame.columns[frame.isna().any().to_numpy()]:
            skipped[str(column)] = "has null values"
        for column in flat:
            if not flat[column]:
                skipped[str(column)] = "is nested (not a flat column)"
        return frame.astype(str), skipped
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; expected a header line. Received: an empty file")
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            header = split_header(next(csv.reader(f, delimiter=delimiter), []))
        except (UnicodeDecodeError, csv.Error) as error:
            raise ValueError(f"Could not read the header line of {path}: {error}. Received: {path}") from None
    try:
        with normalised_file(path, delimiter, max_fields=len(header), log=False) as (f, _):
            frame = pd.read_csv(f, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8",
                                skip_blank_lines=True, skipinitialspace=True, header=0, names=header)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        found = _scan_fields(path, delimiter, len(header))
        raise (found or ValueError(f"Could not parse {path}: {error}. Received: {path}")) from None
    frame = frame.fillna("")
    for column in frame.columns:
        if (frame[column].str.strip() == "").any():
            skipped[str(column)] = "has empty values"
    return frame, skipped


def infer_features(
    path: str | os.PathLike,
    *,
    domain_column: str,
    label_column: Sequence[str] | str,
    split_column: str | None = None,
    numeric_features: Sequence[str] | str | None = None,
    delimiter: str = ",",
    data_dir: str | os.PathLike | None = None,
) -> dict:
    """The schema of a file given without `features`: every column that is not the
    domain, a label, the split or a given numeric feature.

    Integer and text columns are categorical, in file order (the first two become `uid`
    and `pid`); float columns are numeric (bucketised), unless `numeric_features` is
    given (then only those are). A column with an empty or null value is left out, with
    its reason.

    Returns:
        `{"features": [...], "numeric_features": [...], "skipped": {column: reason}}`.

    Raises:
        ValueError: fewer than two categorical columns are left.
    """
    path = os.fspath(path)
    if data_dir is not None and not os.path.isabs(path):
        path = os.path.join(os.fspath(data_dir), path)
    path = os.path.abspath(path)
    frame, skipped = _read_all_columns(path, delimiter)
    labels = _as_list(label_column, "label_column")
    numeric_given = _as_list(numeric_features, "numeric_features")
    roles = {domain_column, *labels, *numeric_given, *([split_column] if split_column else [])}
    missing = sorted(c for c in roles if c not in frame.columns)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; its columns are {list(frame.columns)}. "
                         f"Received: {missing}")
    features, numeric = [], []
    for column in frame.columns:
        if column in roles:
            continue
        if column in skipped:
            continue
        text = frame[column].str.strip()
        if text.str.fullmatch(_INT_TEXT).all():
            features.append(column)
            continue
        values = pd.to_numeric(text, errors="coerce")
        if values.notna().all() and np.isfinite(values.to_numpy(dtype=np.float64)).all():
            if numeric_given:
                skipped[column] = "is numeric (not in the given numeric_features)"
            else:
                numeric.append(column)
        else:
            features.append(column)
    if len(features) < 2:
        raise ValueError(
            f"Could not infer the features of {path}: it needs at least two categorical (text or integer) "
            f"columns besides the domain, label and split columns, the first two becoming uid and pid. "
            f"Received: categorical {features}, numeric {numeric}, left out {skipped or 'none'}; give "
            "--features=UID_COLUMN,PID_COLUMN[,...]"
        )
    return {"features": features, "numeric_features": numeric_given or numeric,
            "skipped": {c: r for c, r in skipped.items() if c not in roles}}


def feature_flags(schema: dict) -> str:
    """The `mlora-prepare` flags that give `schema` (from `infer_features`), shell-quoted."""
    import shlex

    parts = [f"--features={','.join(schema['features'])}"]
    if schema["numeric_features"]:
        parts.append(f"--numeric_features={','.join(schema['numeric_features'])}")
    return " ".join(shlex.quote(p) for p in parts)


def _hashed_columns(hash_buckets, features: list[str], numeric: list[str], extra_names: list[str],
                    domain_column: str) -> dict[str, int]:
    """`hash_buckets` by column name, checked: every name a categorical feature (its
    column or its dataset name), never the domain column or a numeric feature."""
    buckets = hashing.parse_hash_buckets(hash_buckets, "hash_buckets")
    if not buckets:
        return {}
    by_name = {"uid": features[0], "pid": features[1], **dict(zip(extra_names, features[2:]))}
    shown = hashing._show(buckets)
    out: dict[str, int] = {}
    for name, n in buckets.items():
        if name in (domain_column, hashing.DOMAIN):
            raise ValueError(f"hash_buckets cannot hash the domain column {domain_column!r}: domains route rows to "
                             f"their adapters and keep their vocabulary. Received: hash_buckets={shown}")
        if name in numeric:
            raise ValueError(f"hash_buckets names the numeric feature {name!r}, which is bucketised by quantiles; "
                             f"only categorical features ({', '.join(features)}) can be hashed. "
                             f"Received: hash_buckets={shown}")
        column = name if name in features else by_name.get(name)
        if column is None:
            raise ValueError(f"hash_buckets names an unknown feature {name!r}; the categorical features are "
                             f"{', '.join(features)} (uid = {features[0]!r}, pid = {features[1]!r}). "
                             f"Received: hash_buckets={shown}")
        if column in out:
            raise ValueError(f"hash_buckets names the column {column!r} twice. Received: hash_buckets={shown}")
        out[column] = n
    return out


def load_csv(
    *,
    path: str | os.PathLike | None = None,
    domain_column: str | None = None,
    label_column: Sequence[str] | str | None = None,
    features: Sequence[str] | str | None = None,
    numeric_features: Sequence[str] | str | None = None,
    n_buckets: int = DEFAULT_BUCKETS,
    split_column: str | None = None,
    delimiter: str = ",",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = split_lib.DEFAULT_FRACTIONS,
    hash_buckets: Mapping[str, int] | str | None = None,
) -> MultiDomainDataset:
    """Loads a labelled interaction file; see the module docstring.

    Args:
        path: the `.csv` / `.parquet` file; relative paths are taken from `data_dir`.
        domain_column: column defining the domains.
        label_column: the 0/1 label column, or several (a list, or comma-separated:
            `"click,like"`) for a multi-task dataset.
        features: categorical id columns (>= 2); the first two are `uid` and `pid`,
            the others sparse features of their own. None: inferred from the file
            (`infer_features`: every other column; integer and text columns
            categorical, float columns numeric), and logged as the flags that give it.
        numeric_features: numeric columns to bucketise (each a sparse feature).
        n_buckets: quantile buckets per numeric column (>= 2).
        split_column: optional column with `train` / `val` / `test`.
        delimiter: CSV field delimiter (one character).
        data_dir: base folder of a relative `path`.
        cache_dir: cache folder; None -> default; False -> no caching.
        seed: split seed.
        fractions: `(train, val, test)` of the per-domain split.
        hash_buckets: `{feature: N}` (a categorical column's name, or its dataset name
            `uid` / `pid` / an extra feature's) or `"feature:N,..."`: those features are
            hashed into `N` buckets instead of through a vocabulary.

    Returns:
        A `MultiDomainDataset` with `features = ("uid", "pid", "domain", *extras)` and
        `labels = ("label",)` (one label column) or the label columns' names.
    """
    features = _as_list(features, "features")
    numeric = _as_list(numeric_features, "numeric_features")
    label_columns = _as_list(label_column, "label_column")
    if not path:
        raise ValueError("The csv loader needs `path` (--path=FILE.csv). Received: path=None")
    path = os.fspath(path)
    if data_dir is not None and not os.path.isabs(path):
        path = os.path.join(os.fspath(data_dir), path)
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Data file not found: {path}. Received: path={path!r}")
    for name, value in (("domain_column", domain_column), ("label_column", label_columns)):
        if not value:
            raise ValueError(f"The csv loader needs `{name}` (--{name}=COLUMN). Received: {name}={value!r}")
    if not features:
        schema = infer_features(path, domain_column=domain_column, label_column=label_columns,
                                split_column=split_column, numeric_features=numeric, delimiter=delimiter)
        features, numeric = schema["features"], schema["numeric_features"]
        logging.info("csv %s: no features given; inferred %s%s", path, feature_flags(schema),
                     f" (left out: {schema['skipped']})" if schema["skipped"] else "")
    if len(features) < 2:
        raise ValueError(
            "The csv loader needs at least two categorical `features`: the first becomes uid, the "
            f"second pid. Received: features={features}"
        )
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, (int, np.integer)) or n_buckets < 2:
        raise ValueError(f"`n_buckets` must be an integer >= 2. Received: n_buckets={n_buckets!r}")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"`delimiter` must be one character. Received: delimiter={delimiter!r}")
    used = [domain_column] + label_columns + features + numeric + ([split_column] if split_column else [])
    repeated = sorted({c for c in used if used.count(c) > 1})
    if repeated:
        raise ValueError(f"A column may have one role only. Received: {repeated} used twice")
    extra_columns = features[2:] + numeric
    taken: dict[str, str] = {}
    extra_names = _column_names(extra_columns, "feature", taken)
    if len(label_columns) > 1:
        label_names = tuple(_column_names(label_columns, "label", taken))
    else:
        label_names = (LABEL,)
    fractions = split_lib.check_fractions(fractions)
    seed = split_lib.check_seed(seed)
    hashed = _hashed_columns(hash_buckets, features, numeric, extra_names, domain_column)
    settings = {
        "domain_column": domain_column,
        "label_column": label_columns[0] if len(label_columns) == 1 else label_columns,
        "features": features, "numeric_features": numeric, "n_buckets": int(n_buckets),
        "split_column": split_column, "delimiter": delimiter,
    }
    if hashed:  # only then: the cache key of an unhashed load stays what it was
        settings["hash_buckets"] = dict(hashed)
    file_hash = cache_lib.hash_file(path)
    key = cache_lib.make_cache_key(
        loader="csv",
        raw_file_hashes={os.path.basename(path): file_hash},
        domain_split=domain_column,
        fractions=fractions,
        seed=seed,
        extra=dict(settings, csv_schema=CSV_SCHEMA),
    )
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", domain_column)[:40]
    parquet = path.lower().endswith(PARQUET_SUFFIXES)

    def build() -> tuple[MultiDomainDataset, dict[str, np.ndarray]]:
        frame = read_table(path, used, delimiter)
        n = len(frame)
        labels = {name: _parse_label(frame, column, path, parquet) for name, column in zip(label_names, label_columns)}
        first_label = labels[label_names[0]]
        domain, names, mapping = _domain_ids(frame[domain_column].str.strip())
        ids: dict[str, np.ndarray] = {}
        vocab: dict[str, int] = {}
        hash_kinds: dict[str, str] = {}
        for column in features:
            if column in hashed:  # no vocabulary pass: each value's bucket
                ids[column], hash_kinds[column] = hashing.hash_text(frame[column].str.strip(), hashed[column])
                vocab[column] = hashed[column]
                continue
            codes, uniques = pd.factorize(frame[column].str.strip(), sort=False)
            ids[column] = codes.astype(np.int64)
            vocab[column] = len(uniques)
        buckets: dict[str, list[float]] = {}
        for column in numeric:
            values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
            bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
            if bad.any():
                row = int(np.argmax(bad))
                raise _bad(path, row, column, "a number", frame[column].iloc[row], parquet)
            codes, edges = pd.qcut(values, q=int(n_buckets), labels=False, retbins=True, duplicates="drop")
            ids[column] = np.asarray(codes, dtype=np.int64)
            vocab[column] = len(edges) - 1
            buckets[column] = [float(e) for e in edges]
        if split_column:
            rows = _column_split(frame[split_column], domain, names, path, split_column, parquet)
        else:
            rows = _split_rows(domain, first_label, len(names), names, seed, fractions, path)
        uid_col, pid_col = features[0], features[1]
        sources = {"uid": uid_col, "pid": pid_col, **dict(zip(extra_names, extra_columns))}
        splits = {}
        for s, r in rows.items():
            columns = {name: ids[column][r] for name, column in sources.items()}
            columns["domain"] = domain[r]
            columns.update({name: values[r] for name, values in labels.items()})
            splits[s] = columns
        # The extra arrays of schema 1, kept for `get_extras` users: the same arrays.
        extras = {f"{s}__{c}": splits[s][name] for s in rows for name, c in zip(extra_names, extra_columns)}
        info = {
            "loader": "csv",
            "path": path,
            "data_dir": os.path.dirname(path),
            "rows": int(n),
            "positives": int(first_label.sum()),
            "label_columns": dict(zip(label_names, label_columns)),
            "label_positives": {name: int(values.sum()) for name, values in labels.items()},
            "domain_column": domain_column,
            "domain_map": mapping,
            "feature_map": sources,
            "extra_features": extra_columns,
            "extra_vocab_sizes": {c: vocab[c] for c in extra_columns},
            "buckets": buckets,
            "raw_files": {os.path.basename(path): {"sha256": file_hash,
                                                   "bytes": os.path.getsize(path)}},
            "split": {"method": f"column {split_column}" if split_column else
                      f"per-domain stratified train_test_split on {label_columns[0]}, file order",
                      "fractions": list(fractions), "seed": seed},
            "settings": settings,
            **({"hash_buckets": {name: hashing.HashedFeature(hashed[c], hash_kinds[c]).to_dict()
                                 for name, c in sources.items() if c in hashed},
                "hash_function": hashing.HASH_FUNCTION} if hashed else {}),
            "schema_version": cache_lib.SCHEMA_VERSION,
            "csv_schema": CSV_SCHEMA,
            "notes": [f"uid = column {uid_col!r}, pid = column {pid_col!r}"] + (
                [f"extra features {extra_columns} are stored as the sparse features "
                 f"{', '.join(extra_names)}: every model embeds them"] if extra_columns else []) + (
                [f"labels {', '.join(label_names)} (columns {label_columns}): a multi-task dataset "
                 f"(mlora-train --task_set={','.join(label_names)} --model=m3oe ...)"]
                if len(label_names) > 1 else []),
        }
        logging.info("csv %s: %d rows, %d domains, uid=%s (%d), pid=%s (%d), extra features %s, labels %s",
                     path, n, len(names), uid_col, vocab[uid_col], pid_col, vocab[pid_col],
                     {name: vocab[c] for name, c in zip(extra_names, extra_columns)}, list(label_names))
        dataset = MultiDomainDataset(
            name=f"csv/{os.path.basename(path)}",
            n_domains=len(names),
            vocab_sizes={"uid": vocab[uid_col], "pid": vocab[pid_col], "domain": len(names),
                         **{name: vocab[c] for name, c in zip(extra_names, extra_columns)}},
            domain_names=names,
            splits=splits,
            info=info,
            features=FEATURES + tuple(extra_names),
            labels=label_names,
        )
        return dataset, extras

    return prepared.get_or_build_with_extras(
        build,
        cache_dir=cache_lib.resolve_cache_dir(cache_dir),
        loader="csv",
        domain_split=tag,
        key=key,
    )
