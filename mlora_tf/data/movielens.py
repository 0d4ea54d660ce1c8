"""MovieLens-1M and MovieLens-100K loaders.

Both produce the canonical table `uid, pid, domain, label` exactly as the
original MLoRA preprocessing (datasets.md §2.3), then the per-domain split of
`mlora_tf.data.split`:

- **Label:** `1.0` iff the rating is 5, else `0.0`.
- **Ids:** raw UserID / MovieID, no remapping. `vocab_sizes["uid"]` = max
  UserID + 1 (users file and kept ratings), `vocab_sizes["pid"]` = max MovieID
  + 1 over the kept ratings; id 0 and the MovieID gaps are simply never used.
- **Join:** an inner join of ratings with users, so ratings of a user missing
  from the users file are dropped; their number is logged (warning) and stored
  in `info["dropped_orphan_ratings"]`.
- **Row order:** ratings file order inside each domain (the original shuffled
  first without a seed; see `mlora_tf.data.split`).

Domain splits (`domain_split=`):

| split | ML-1M | ML-100K | names |
|---|---|---|---|
| `gender` | F -> 0, M -> 1 | same | `["F", "M"]` |
| `age` | codes 1, 18, 25, 35, 45, 50, 56 -> 0..6 | raw age binned to the same 7 brackets | `"Under 18"`, ... `"56+"` |
| `occupation` | codes 0..20 as they are | names in `u.occupation` order -> 0..20 | the README / `u.occupation` names |

The ML-1M age map deliberately differs from the original, which maps
1 -> 0, 18 -> 2, ..., 56 -> 7: it skips id 1, so its trainer counts 7 domains but
meets domain id 7 and crashes. Here the 7 codes are contiguous, 0..6.

Raw formats (no header; read as Latin-1 bytes). Files as they come are accepted: a
UTF-8 byte-order mark, CRLF line ends, trailing whitespace and one trailing empty field
per line (`u.data` lines ending in a tab) are read as if absent and counted in one INFO
log line per file; anything else malformed is an error naming the file, the line and
the value.

- ML-1M `users.dat`: `UserID::Gender::Age::Occupation::Zip-code`;
  `ratings.dat`: `UserID::MovieID::Rating::Timestamp`.
- ML-100K `u.user`: `user id|age|gender|occupation|zip code`;
  `u.data`: `user id<TAB>item id<TAB>rating<TAB>timestamp`;
  optional `u.occupation`: one occupation name per line.

Parsing is vectorised (pandas C parser on the single-character delimiter, the
empty columns between `::` checked and dropped); only when validation fails is
the file scanned line by line to report the first bad line.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from absl import logging

from mlora_tf.data import cache as cache_lib
from mlora_tf.data import split as split_lib
from mlora_tf.data.dataset import InteractionTable, MultiDomainDataset

DATA_DIR_ENV_VAR = "MLORA_TF_DATA_DIR"
DEFAULT_DATA_DIR = "datasets"

ML1M_AGE_CODES: tuple[int, ...] = (1, 18, 25, 35, 45, 50, 56)
AGE_NAMES: tuple[str, ...] = (
    "Under 18",
    "18-24",
    "25-34",
    "35-44",
    "45-49",
    "50-55",
    "56+",
)
# Lower bounds of brackets 1..6 (bracket 0 is everything below 18).
AGE_BRACKET_LOWER_BOUNDS: tuple[int, ...] = (18, 25, 35, 45, 50, 56)
ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other/not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
ML100K_OCCUPATIONS: tuple[str, ...] = (
    "administrator",
    "artist",
    "doctor",
    "educator",
    "engineer",
    "entertainment",
    "executive",
    "healthcare",
    "homemaker",
    "lawyer",
    "librarian",
    "marketing",
    "none",
    "other",
    "programmer",
    "retired",
    "salesman",
    "scientist",
    "student",
    "technician",
    "writer",
)
GENDER_NAMES: tuple[str, ...] = ("F", "M")
MAX_ID = 2**31 - 1

_INT_RE = re.compile(r"[+-]?\d+")


class MovieLensFilesNotFoundError(FileNotFoundError):
    """The raw MovieLens files are not where the loader looks for them."""


# --------------------------------------------------------------------------- #
# Generic delimited-file parsing with line-accurate errors.
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Field:
    """One column of a raw file.

    Attributes:
        name: column name as the dataset README spells it.
        kind: `"int"` or `"str"`.
        expected: what a valid value is, for error messages.
        choices: the allowed values, if restricted to a set.
        low: smallest allowed integer, if any.
        high: largest allowed integer, if any.
        keep: whether the parsed column is returned.
    """

    name: str
    kind: str
    expected: str
    choices: frozenset | None = None
    low: int | None = None
    high: int | None = None
    keep: bool = True

    def valid_mask(self, values: np.ndarray) -> np.ndarray:
        """Vectorised check: boolean mask of the valid entries of `values`."""
        mask = np.ones(len(values), dtype=bool)
        if self.choices is not None:
            mask &= np.isin(values, list(self.choices))
        if self.low is not None:
            mask &= values >= self.low
        if self.high is not None:
            mask &= values <= self.high
        return mask

    def is_valid(self, text: str) -> bool:
        """Scalar check of one raw field (used to locate a bad line)."""
        value: object = text
        if self.kind == "int":
            stripped = text.strip()
            if not _INT_RE.fullmatch(stripped):
                return False
            value = int(stripped)
        elif text == "":
            return False
        if self.choices is not None and value not in self.choices:
            return False
        if self.low is not None and value < self.low:  # type: ignore[operator]
            return False
        if self.high is not None and value > self.high:  # type: ignore[operator]
            return False
        return True


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A headerless delimited raw file: separator and fields."""

    filename: str
    sep: str
    fields: tuple[Field, ...]
    example: str


def _id_field(name: str) -> Field:
    return Field(name, "int", f"a non-negative integer up to {MAX_ID}", low=0, high=MAX_ID)


_GENDER = Field("Gender", "str", "'F' or 'M'", choices=frozenset(GENDER_NAMES))
_TIMESTAMP = Field("Timestamp", "int", "an integer (Unix seconds)", keep=False)
_RATING = Field("Rating", "int", "an integer rating in 1..5", low=1, high=5)
_ZIP = Field("Zip-code", "str", "a zip code", keep=False)

ML1M_USERS = FileFormat(
    "users.dat",
    "::",
    (
        _id_field("UserID"),
        _GENDER,
        Field(
            "Age",
            "int",
            f"an ML-1M age code in {list(ML1M_AGE_CODES)}",
            choices=frozenset(ML1M_AGE_CODES),
        ),
        Field("Occupation", "int", "an ML-1M occupation code in 0..20", low=0, high=20),
        _ZIP,
    ),
    "1::F::1::10::48067",
)
ML1M_RATINGS = FileFormat(
    "ratings.dat",
    "::",
    (_id_field("UserID"), _id_field("MovieID"), _RATING, _TIMESTAMP),
    "1::1193::5::978300760",
)
ML100K_RATINGS = FileFormat(
    "u.data",
    "\t",
    (_id_field("UserID"), _id_field("MovieID"), _RATING, _TIMESTAMP),
    "196\t242\t3\t881250949",
)


def ml100k_users_format(occupations: Sequence[str]) -> FileFormat:
    """`u.user` format; occupations must be one of `occupations`."""
    return FileFormat(
        "u.user",
        "|",
        (
            _id_field("UserID"),
            Field("Age", "int", "an integer age in years in 0..200", low=0, high=200),
            _GENDER,
            Field(
                "Occupation",
                "str",
                f"one of the {len(occupations)} occupations of u.occupation",
                choices=frozenset(occupations),
            ),
            _ZIP,
        ),
        "1|24|M|technician|85711",
    )


# --------------------------------------------------------------------------- #
# Files as they come: BOM, CRLF, trailing whitespace, a trailing empty field.
# --------------------------------------------------------------------------- #

UTF8_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass
class TextFixes:
    """What a loader accepted in a raw file and read as if it were absent.

    Attributes:
        path: the file.
        bom: it starts with a UTF-8 byte-order mark.
        crlf: lines ending in CR LF (Windows line ends).
        trailing_field: lines ending in one empty field (a trailing separator).
        trailing_space: lines ending in spaces or tabs (outside a field's value).
    """

    path: str
    bom: bool = False
    crlf: int = 0
    trailing_field: int = 0
    trailing_space: int = 0

    def describe(self) -> list[str]:
        """One phrase per kind of thing accepted (empty if nothing)."""
        parts = []
        if self.bom:
            parts.append("a UTF-8 byte-order mark")
        for count, what in ((self.crlf, "CRLF line end"), (self.trailing_field, "trailing empty field"),
                            (self.trailing_space, "trailing whitespace")):
            if count:
                parts.append(f"{count:,} line(s) with {'a ' if what != 'trailing whitespace' else ''}{what}")
        return parts

    def log(self) -> None:
        """One INFO line naming the file and every kind of thing accepted, if any."""
        parts = self.describe()
        if parts:
            logging.info("%s: accepted %s (read as if absent).", self.path, ", ".join(parts))


def count_bom_and_crlf(path: str, fixes: TextFixes, chunk_bytes: int = 1 << 24) -> TextFixes:
    """Fills `fixes.bom` and `fixes.crlf` by reading `path` in chunks (for loaders whose
    parser copes with both on its own)."""
    with open(path, "rb") as f:
        previous = b""
        first = True
        while True:
            chunk = f.read(chunk_bytes)
            if not chunk:
                break
            if first:
                fixes.bom = chunk.startswith(UTF8_BOM)
                first = False
            fixes.crlf += chunk.count(b"\r\n") + (previous == b"\r" and chunk[:1] == b"\n")
            previous = chunk[-1:]
    return fixes


def normalise_text(data: bytes, sep: str, path: str, at_start: bool = True,
                   at_end: bool = True) -> tuple[bytes, TextFixes]:
    """`data` without a UTF-8 BOM, CRs of CRLF line ends, trailing whitespace and one
    trailing empty field per line, and what was removed.

    Only characters inside lines go, so the line numbers stay the file's. Whitespace is
    spaces and tabs (only spaces when `sep` is a tab: a trailing tab is an empty field).
    `at_start` / `at_end`: `data` begins / ends the file (a BOM, a last CR).
    """
    fixes = TextFixes(path)
    if at_start and data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
        fixes.bom = True
    fixes.crlf = data.count(b"\r\n")
    if fixes.crlf:
        data = data.replace(b"\r\n", b"\n")
    if at_end and data.endswith(b"\r"):
        data = data[:-1]
        fixes.crlf += 1
    sep_bytes = sep.encode("latin-1")
    ends = (b" ", b"\t", sep_bytes)
    if not any(end + b"\n" in data or data.endswith(end) for end in ends):
        return data, fixes  # the usual case: nothing trails (a fast C search)
    space = b"[ ]" if "\t" in sep else b"[ \t]"
    sep_re = re.escape(sep_bytes)
    pattern = re.compile(rb"(?:%s+(?:%s%s*)?|%s%s*)$" % (space, sep_re, space, sep_re, space), re.M)

    def strip(match: re.Match) -> bytes:
        text = match.group(0)
        if sep_bytes in text:
            fixes.trailing_field += 1
            text = text.replace(sep_bytes, b"", 1)
        if text:
            fixes.trailing_space += 1
        return b""

    data = pattern.sub(strip, data)
    return data, fixes


class _NormalisedReader(io.RawIOBase):
    """A file read through `normalise_text`, whole lines at a time, in `chunk_bytes`
    pieces: pandas parses it in bounded memory however large the file is.

    With `max_fields` (the header's field count), a line with more fields is an error
    naming the line and its text (pandas, given `usecols`, would silently drop the
    extra fields, or shift every column when all lines have one).
    """

    def __init__(self, path: str, sep: str, max_fields: int | None = None, chunk_bytes: int = 1 << 24):
        super().__init__()
        self.name = path
        self._max_fields = max_fields
        self._lines = 0
        self.fixes = TextFixes(path)
        self._file = open(path, "rb")
        self._sep = sep
        self._chunk_bytes = chunk_bytes
        self._rest = b""
        self._buffer = memoryview(b"")
        self._first = True
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not len(self._buffer) and not self._eof:
            chunk = self._file.read(self._chunk_bytes)
            if chunk:
                data = self._rest + chunk
                cut = data.rfind(b"\n") + 1
                data, self._rest = data[:cut], data[cut:]
                if not data:
                    continue
            else:
                self._eof = True
                data, self._rest = self._rest, b""
            out, fixes = normalise_text(data, self._sep, self.name, at_start=self._first, at_end=self._eof)
            self._first = False
            if self._max_fields is not None:
                self._check_fields(out)
            self.fixes.bom |= fixes.bom
            self.fixes.crlf += fixes.crlf
            self.fixes.trailing_field += fixes.trailing_field
            self.fixes.trailing_space += fixes.trailing_space
            self._buffer = memoryview(out)

    def _check_fields(self, data: bytes) -> None:
        if not data:
            return
        values = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(values == 10)
        complete = data.endswith(b"\n")
        starts = np.concatenate([[0], newlines[:-1] + 1 if complete else newlines + 1]).astype(np.int64)
        counts = np.add.reduceat(values == ord(self._sep), starts, dtype=np.int64) + 1
        for i in np.flatnonzero(counts > self._max_fields):
            end = newlines[i] if i < len(newlines) else len(data)
            line = data[starts[i]:end].decode("utf-8", errors="replace")
            if '"' in line:
                continue  # quoting: pandas checks it
            raise ValueError(
                f"Malformed line {self._lines + i + 1} of {self.name}: {int(counts[i])} fields where the "
                f"header has {self._max_fields}. Received: {line!r}"
            )
        self._lines += len(starts)

    def readinto(self, b) -> int:
        self._fill()
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


@contextlib.contextmanager
def normalised_file(path: str, sep: str, max_fields: int | None = None, log: bool = True):
    """`(binary file, TextFixes)`: `path` read through `normalise_text` (whole lines, in
    bounded memory), for a parser such as `pandas.read_csv`; with `max_fields`, a line
    with more fields is an error. The counts are complete, and logged in one INFO line,
    once the block ends without an error (unless `log` is false: a second read)."""
    raw = _NormalisedReader(os.fspath(path), sep, max_fields)
    with io.BufferedReader(raw, buffer_size=1 << 20) as f:
        yield f, raw.fixes
    if log:
        raw.fixes.log()


def _malformed(path: str, lineno: int, line: str, problem: str, received: object,
               fmt: FileFormat) -> ValueError:
    return ValueError(
        f"Malformed line {lineno} of {path}: {problem}. Received: {received!r} "
        f"(line {lineno}: {line!r}; expected lines like {fmt.example!r})"
    )


def _scan_for_error(path: str, fmt: FileFormat, start_row: int = 0,
                    text: str | None = None) -> ValueError | None:
    """Line-by-line scan; the error for the first bad line, or None.

    `text` is the file's content after `normalise_text` (read from `path` when None):
    the same lines, so the line numbers are the file's. The first `start_row` non-empty
    lines (data rows known to be valid) are only counted, not checked.
    """
    if text is None:
        with open(path, "rb") as f:
            text = normalise_text(f.read(), fmt.sep, path)[0].decode("latin-1")
    n_fields = len(fmt.fields)
    row = -1
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip() == "":  # pandas skips these too
            continue
        row += 1
        if row < start_row:
            continue
        parts = line.split(fmt.sep)
        if len(parts) != n_fields:
            names = fmt.sep.join(field.name for field in fmt.fields)
            return _malformed(
                path, lineno, line,
                f"expected {n_fields} fields separated by {fmt.sep!r} "
                f"({names}), found {len(parts)}",
                line, fmt,
            )
        for field, part in zip(fmt.fields, parts):
            if not field.is_valid(part):
                return _malformed(
                    path, lineno, line,
                    f"field {field.name} must be {field.expected}", part, fmt,
                )
    return None


def _empty_file_error(path: str, fmt: FileFormat) -> ValueError:
    return ValueError(
        f"{path} is empty: it holds no data lines. Expected lines like "
        f"{fmt.example!r}. Received: an empty file"
    )


def parse_raw_file(path: str, fmt: FileFormat) -> dict[str, np.ndarray]:
    """Parses a headerless delimited MovieLens file and validates every value.

    Args:
        path: the file.
        fmt: its format.

    Returns:
        Field name -> numpy array (int64 or object strings), for kept fields,
        in file order. Empty lines are skipped. A UTF-8 BOM, CRLF line ends,
        trailing whitespace and one trailing empty field per line are accepted
        (`normalise_text`) and counted in one INFO log line.

    Raises:
        ValueError: for an empty file, or for the first malformed line (naming
            the file, the 1-based line number and the offending value).
    """
    path = os.fspath(path)
    if os.path.getsize(path) == 0:
        raise _empty_file_error(path, fmt)
    char = fmt.sep[0]
    doubled = len(fmt.sep) == 2
    if len(fmt.sep) > 2 or (doubled and fmt.sep[1] != char):
        raise ValueError(f"Unsupported separator. Received: sep={fmt.sep!r}")
    n_fields = len(fmt.fields)
    n_columns = 2 * n_fields - 1 if doubled else n_fields
    step = 2 if doubled else 1
    str_columns = {
        i * step: str for i, field in enumerate(fmt.fields) if field.kind == "str"
    }
    with open(path, "rb") as f:
        data, fixes = normalise_text(f.read(), fmt.sep, path)

    def fail(reason: str, bad: np.ndarray | None = None, start: int = 0) -> ValueError:
        # `bad`: mask of the rows known to be bad; the scan starts at the first.
        if bad is not None and bad.any():
            start = int(np.argmax(bad))
        text = data.decode("latin-1")
        error = _scan_for_error(path, fmt, start_row=start, text=text)
        if error is None and start:
            error = _scan_for_error(path, fmt, text=text)
        if error is not None:
            return error
        return ValueError(f"Could not parse {path}: {reason}. Received: the file above")

    try:
        with warnings.catch_warnings():
            # Mixed-type columns are reported below, with their line number.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = pd.read_csv(
                io.BytesIO(data),
                sep=char,
                header=None,
                engine="c",
                quoting=csv.QUOTE_NONE,
                keep_default_na=False,
                na_values=[""],
                dtype=str_columns,
                encoding="latin-1",
                skip_blank_lines=True,
            )
    except pd.errors.EmptyDataError:
        raise _empty_file_error(path, fmt) from None
    except pd.errors.ParserError as error:
        match = re.search(r"line (\d+)", str(error))
        raise fail(str(error), start=max(int(match.group(1)) - 2, 0) if match else 0) from None
    if len(frame) == 0:
        raise _empty_file_error(path, fmt)
    if frame.shape[1] != n_columns:
        raise fail(f"found {frame.shape[1]} columns, expected {n_columns}")
    if doubled:
        for column in range(1, n_columns, 2):
            filled = frame[column].notna().to_numpy()
            if filled.any():
                raise fail(f"a field separator is not {fmt.sep!r}", filled)
    out: dict[str, np.ndarray] = {}
    for i, field in enumerate(fmt.fields):
        column = frame[i * step]
        if field.kind == "int":
            if not pd.api.types.is_integer_dtype(column.dtype):
                numeric = pd.to_numeric(column, errors="coerce")
                bad = (numeric.isna() | (numeric != numeric.round())).to_numpy()
                raise fail(f"field {field.name} is not all integers", bad)
            values = column.to_numpy(dtype=np.int64)
        else:
            missing = column.isna().to_numpy()
            if missing.any():
                raise fail(f"field {field.name} has empty values", missing)
            values = column.to_numpy(dtype=object)
        valid = field.valid_mask(values)
        if not valid.all():
            raise fail(f"field {field.name} has invalid values", ~valid)
        if field.keep:
            out[field.name] = values
    fixes.log()
    return out


def read_occupation_list(path: str) -> list[str]:
    """Reads ML-100K `u.occupation`: one name per line, unique, non-empty."""
    if os.path.getsize(path) == 0:
        raise ValueError(
            f"{path} is empty; expected one occupation name per line "
            "(e.g. 'administrator'). Received: an empty file"
        )
    names: list[str] = []
    with open(path, encoding="latin-1", newline="") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(UTF8_BOM.decode("latin-1")):
                raw = raw[len(UTF8_BOM):]
            name = raw.strip()
            if not name:
                continue
            if name in names:
                raise ValueError(
                    f"Malformed line {lineno} of {path}: duplicate occupation name. "
                    f"Received: {name!r}"
                )
            names.append(name)
    if not names:
        raise ValueError(
            f"{path} holds no occupation names. Received: only blank lines"
        )
    return names


# --------------------------------------------------------------------------- #
# Users and their domain ids.
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Users:
    """Parsed users file: one entry per user, in file order.

    Attributes:
        uid: int64 user ids.
        gender: object array of "F" / "M".
        age: int64 ML-1M age codes or ML-100K ages in years.
        occupation: int64 occupation ids (ML-1M code, ML-100K list index).
        occupation_names: names of occupation ids.
        path: the users file.
    """

    uid: np.ndarray
    gender: np.ndarray
    age: np.ndarray
    occupation: np.ndarray
    occupation_names: list[str]
    path: str


DomainMapper = Callable[["MovieLensVariant", Users], tuple[np.ndarray, list[str]]]


def _gender_domains(variant: MovieLensVariant, users: Users) -> tuple[np.ndarray, list[str]]:
    ids = np.where(users.gender == "M", 1, 0).astype(np.int64)
    return ids, list(GENDER_NAMES)


def _age_domains(variant: MovieLensVariant, users: Users) -> tuple[np.ndarray, list[str]]:
    if variant.age_is_code:
        ids = np.searchsorted(np.array(ML1M_AGE_CODES), users.age).astype(np.int64)
    else:
        ids = np.digitize(users.age, AGE_BRACKET_LOWER_BOUNDS).astype(np.int64)
    return ids, list(AGE_NAMES)


def _occupation_domains(
    variant: MovieLensVariant, users: Users
) -> tuple[np.ndarray, list[str]]:
    return users.occupation.astype(np.int64), list(users.occupation_names)


DOMAIN_SPLITS: dict[str, DomainMapper] = {
    "gender": _gender_domains,
    "age": _age_domains,
    "occupation": _occupation_domains,
}


def _check_unique_users(uid: np.ndarray, path: str, fmt: FileFormat) -> None:
    values, counts = np.unique(uid, return_counts=True)
    if np.all(counts == 1):
        return
    duplicate = int(values[np.argmax(counts > 1)])
    lines = []
    with open(path, encoding="latin-1", newline="") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(UTF8_BOM.decode("latin-1")):
                raw = raw[len(UTF8_BOM):]
            head = raw.split(fmt.sep, 1)[0].strip()
            if _INT_RE.fullmatch(head) and int(head) == duplicate:
                lines.append(lineno)
    raise ValueError(
        f"Malformed users file {path}: UserID {duplicate} appears on more than "
        f"one line (lines {lines}). Received: UserID={duplicate}"
    )


def read_ml1m_users(paths: dict[str, str]) -> Users:
    """Parses ML-1M `users.dat`."""
    path = paths["users.dat"]
    columns = parse_raw_file(path, ML1M_USERS)
    _check_unique_users(columns["UserID"], path, ML1M_USERS)
    return Users(
        uid=columns["UserID"],
        gender=columns["Gender"],
        age=columns["Age"],
        occupation=columns["Occupation"],
        occupation_names=list(ML1M_OCCUPATIONS),
        path=path,
    )


def read_ml100k_users(paths: dict[str, str]) -> Users:
    """Parses ML-100K `u.user` (occupation names from `u.occupation` if present)."""
    occupation_path = paths.get("u.occupation")
    if occupation_path is not None:
        occupations = read_occupation_list(occupation_path)
    else:
        occupations = list(ML100K_OCCUPATIONS)
    path = paths["u.user"]
    fmt = ml100k_users_format(occupations)
    columns = parse_raw_file(path, fmt)
    _check_unique_users(columns["UserID"], path, fmt)
    index = {name: i for i, name in enumerate(occupations)}
    return Users(
        uid=columns["UserID"],
        gender=columns["Gender"],
        age=columns["Age"],
        occupation=np.array([index[o] for o in columns["Occupation"]], dtype=np.int64),
        occupation_names=occupations,
        path=path,
    )


# --------------------------------------------------------------------------- #
# Variants and the loader.
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class MovieLensVariant:
    """Where a MovieLens release lives and how its files are read."""

    name: str
    title: str
    zip_name: str
    url: str
    folder_names: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...]
    users_file: str
    ratings_format: FileFormat
    read_users: Callable[[dict[str, str]], Users]
    age_is_code: bool


ML1M = MovieLensVariant(
    name="ml-1m",
    title="MovieLens-1M",
    zip_name="ml-1m.zip",
    url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    folder_names=("ml-1m", "ml_1m"),
    required=("users.dat", "ratings.dat"),
    optional=(),
    users_file="users.dat",
    ratings_format=ML1M_RATINGS,
    read_users=lambda paths: read_ml1m_users(paths),
    age_is_code=True,
)
ML100K = MovieLensVariant(
    name="ml-100k",
    title="MovieLens-100K",
    zip_name="ml-100k.zip",
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    folder_names=("ml-100k", "ml_100k"),
    required=("u.user", "u.data"),
    optional=("u.occupation",),
    users_file="u.user",
    ratings_format=ML100K_RATINGS,
    read_users=lambda paths: read_ml100k_users(paths),
    age_is_code=False,
)
VARIANTS: dict[str, MovieLensVariant] = {v.name: v for v in (ML1M, ML100K)}


def default_data_dir() -> str:
    """`$MLORA_TF_DATA_DIR` if set, else `./datasets`."""
    return os.path.expanduser(os.environ.get(DATA_DIR_ENV_VAR, DEFAULT_DATA_DIR))


def resolve_files(variant: MovieLensVariant, data_dir: str | os.PathLike | None) -> dict[str, str]:
    """Finds the raw files: in `data_dir` itself or in `data_dir/<release>/`.

    Returns:
        File name -> path for every required file and each optional file found.

    Raises:
        MovieLensFilesNotFoundError: naming every expected file and folder.
    """
    root = os.fspath(data_dir) if data_dir is not None else default_data_dir()
    candidates = [root] + [os.path.join(root, f) for f in variant.folder_names]
    notes = []
    for folder in candidates:
        present = [f for f in variant.required if os.path.isfile(os.path.join(folder, f))]
        if len(present) == len(variant.required):
            paths = {f: os.path.join(folder, f) for f in variant.required}
            for f in variant.optional:
                if os.path.isfile(os.path.join(folder, f)):
                    paths[f] = os.path.join(folder, f)
            return paths
        if present:
            missing = [f for f in variant.required if f not in present]
            notes.append(f"{folder} has {present} but lacks {missing}")
    files = " and ".join(variant.required)
    folders = ", ".join(f"{root}/{f}/" for f in variant.folder_names)
    optional = (
        f" ({', '.join(variant.optional)} is optional)" if variant.optional else ""
    )
    detail = ("; ".join(notes) + ". ") if notes else ""
    raise MovieLensFilesNotFoundError(
        f"{variant.title} raw files not found. Put {files}{optional} from "
        f"{variant.zip_name} ({variant.url}) in {root}/ (or {folders}). {detail}"
        f"Received: data_dir={root!r}"
    )


def _check_domain_split(domain_split: str) -> DomainMapper:
    mapper = DOMAIN_SPLITS.get(domain_split)
    if mapper is None:
        raise ValueError(
            f"Unknown MovieLens domain split; valid ones are {sorted(DOMAIN_SPLITS)}. "
            f"Received: domain_split={domain_split!r}"
        )
    return mapper


def build_table(
    variant: MovieLensVariant, paths: dict[str, str], domain_split: str
) -> InteractionTable:
    """Parses the raw files into the canonical `uid, pid, domain, label` table."""
    mapper = _check_domain_split(domain_split)
    users = variant.read_users(paths)
    ratings_path = paths[variant.ratings_format.filename]
    ratings = parse_raw_file(ratings_path, variant.ratings_format)
    user_domain, names = mapper(variant, users)

    max_user = int(users.uid.max())
    lookup = np.full(max_user + 1, -1, dtype=np.int64)
    lookup[users.uid] = user_domain
    r_uid = ratings["UserID"]
    in_range = r_uid <= max_user
    domain = np.full(len(r_uid), -1, dtype=np.int64)
    domain[in_range] = lookup[r_uid[in_range]]
    keep = domain >= 0
    n_dropped = int(len(keep) - keep.sum())
    if n_dropped:
        orphans = np.unique(r_uid[~keep])
        logging.warning(
            "%s: dropped %d ratings of %d users missing from %s (inner join, as "
            "the original), e.g. UserID %s.",
            variant.title, n_dropped, len(orphans), users.path, orphans[:5].tolist(),
        )
    if not keep.any():
        raise ValueError(
            f"No rating of {ratings_path} belongs to a user of {users.path}. "
            f"Received: {len(keep)} ratings, all of unknown users"
        )
    uid = r_uid[keep]
    pid = ratings["MovieID"][keep]
    label = (ratings["Rating"][keep] == 5).astype(np.float32)
    info = {
        "loader": variant.name,
        "domain_split": domain_split,
        "data_dir": os.path.abspath(os.path.dirname(users.path)),
        "n_users": int(len(users.uid)),
        "n_ratings_raw": int(len(r_uid)),
        "n_ratings": int(len(uid)),
        "dropped_orphan_ratings": n_dropped,
        "label_rule": "label = 1.0 iff rating == 5 else 0.0",
        "positives": int(label.sum()),
    }
    return InteractionTable(
        name=f"{variant.name}/{domain_split}",
        n_domains=len(names),
        vocab_sizes={
            "uid": max(max_user, int(uid.max())) + 1,
            "pid": int(pid.max()) + 1,
            "domain": len(names),
        },
        domain_names=names,
        columns={"uid": uid, "pid": pid, "domain": domain[keep], "label": label},
        info=info,
    )


def load_movielens(
    variant: str,
    *,
    data_dir: str | os.PathLike | None = None,
    domain_split: str = "gender",
    cache_dir: str | os.PathLike | bool | None = None,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = split_lib.DEFAULT_FRACTIONS,
) -> MultiDomainDataset:
    """Loads, splits and caches one MovieLens release.

    Args:
        variant: `"ml-1m"` or `"ml-100k"`.
        data_dir: folder holding the raw files, or its parent holding
            `ml-1m/` / `ml_1m/` (`ml-100k/`). Default `$MLORA_TF_DATA_DIR` or
            `./datasets`.
        domain_split: `"gender"`, `"age"` or `"occupation"`.
        cache_dir: cache folder; None -> `$MLORA_TF_CACHE` or
            `~/.cache/mlora_tf`; False -> no caching.
        seed: split seed (123 in the original).
        fractions: `(train, val, test)` fractions, default `(0.6, 0.2, 0.2)`.

    Returns:
        The split `MultiDomainDataset`, named `"<variant>/<domain_split>"`.
    """
    spec = VARIANTS.get(variant)
    if spec is None:
        raise ValueError(
            f"Unknown MovieLens variant; valid ones are {sorted(VARIANTS)}. "
            f"Received: variant={variant!r}"
        )
    _check_domain_split(domain_split)
    fractions = split_lib.check_fractions(fractions)
    seed = split_lib.check_seed(seed)
    paths = resolve_files(spec, data_dir)
    hashes = {name: cache_lib.hash_file(path) for name, path in paths.items()}
    key_hashes: dict[str, str | None] = {f: hashes.get(f) for f in spec.required + spec.optional}
    key = cache_lib.make_cache_key(
        loader=spec.name,
        raw_file_hashes=key_hashes,
        domain_split=domain_split,
        fractions=fractions,
        seed=seed,
    )

    def build() -> MultiDomainDataset:
        table = build_table(spec, paths, domain_split)
        splits, split_info = split_lib.split_by_domain(table, seed=seed, fractions=fractions)
        info = dict(table.info)
        info.update(
            raw_files={
                name: {"sha256": hashes[name], "bytes": os.path.getsize(path)}
                for name, path in paths.items()
            },
            split=split_info,
            schema_version=cache_lib.SCHEMA_VERSION,
        )
        return MultiDomainDataset(
            name=table.name,
            n_domains=table.n_domains,
            vocab_sizes=table.vocab_sizes,
            domain_names=table.domain_names,
            splits=splits,
            info=info,
        )

    dataset = cache_lib.get_or_build(
        build,
        cache_dir=cache_lib.resolve_cache_dir(cache_dir),
        loader=spec.name,
        domain_split=domain_split,
        key=key,
    )
    # A cache hit may come from identical files elsewhere; report this folder.
    dataset.info["data_dir"] = os.path.abspath(os.path.dirname(paths[spec.users_file]))
    return dataset
