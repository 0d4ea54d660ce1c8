"""Atomic file writes: a reader never sees a half-written result, cache or checkpoint."""

from __future__ import annotations

import json
import os
import tempfile
from typing import BinaryIO, Callable


def atomic_write(path: str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(file)` on a temp file in `path`'s folder, fsync, then `os.replace`.

    On any error (disk full included) the temp file is removed and `path` keeps its
    previous content. The rename is made durable by an fsync of the folder where the
    platform allows it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and path not in str(error):
            raise OSError(error.errno, f"could not write {path}: {error.strerror or error}") from error
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")
