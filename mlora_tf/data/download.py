"""Download and unpack the MovieLens archives from GroupLens (`mlora-download`).

`download("ml-1m", data_dir)` makes `data_dir/ml-1m/{users.dat, ratings.dat, ...}` exist:

1. **Idempotent:** if the loader's required files are already in `data_dir/ml-1m/` (or
   `ml_1m/`), nothing is fetched or written.
2. **Fetch** the official archive (`urllib`, with a timeout) into
   `data_dir/ml-1m.zip.part`, then rename it to `ml-1m.zip`. An archive already at
   `data_dir/ml-1m.zip` is reused.
3. **Verify** its sha256 against the digest of the official file (`ARCHIVES`; taken
   from TensorFlow Datasets' `url_checksums/movielens.txt`, which also records the sizes:
   ml-1m.zip 5,917,549 bytes, ml-100k.zip 4,924,029 bytes; GroupLens itself publishes
   MD5s, kept as `md5` for reference), or against `sha256=` when given. An archive from
   another `url` without `sha256` is not verified: a warning prints its digest. A
   mismatch deletes the file and is an error naming both digests.
4. **Unpack safely:** every entry is checked before anything is written; an absolute
   path, a `..` component, a drive letter, a symlink or any entry that would land
   outside `data_dir` is an error naming the entry, and nothing is extracted.
5. **Offline:** a network error says where to put the files by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import socket
import stat
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable

from absl import logging

from mlora_tf.data import movielens

DEFAULT_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Archive:
    """One downloadable archive.

    Attributes:
        name: dataset name (`ml-1m`).
        url: the official URL.
        sha256: hex digest of the official file.
        size: its size in bytes.
        md5: the MD5 GroupLens publishes next to it (reference only).
        zip_name: file name of the archive.
        folder: the folder the archive unpacks to.
        required: files the loader needs, inside `folder`.
        alternatives: other folder names the loader accepts.
    """

    name: str
    url: str
    sha256: str
    size: int
    md5: str
    zip_name: str
    folder: str
    required: tuple[str, ...]
    alternatives: tuple[str, ...] = ()


ARCHIVES: dict[str, Archive] = {
    "ml-1m": Archive(
        name="ml-1m",
        url=movielens.ML1M.url,
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        size=5_917_549,
        md5="c4d9eecfca2ab87c1945afe126590906",
        zip_name="ml-1m.zip",
        folder="ml-1m",
        required=movielens.ML1M.required,
        alternatives=("ml_1m",),
    ),
    "ml-100k": Archive(
        name="ml-100k",
        url=movielens.ML100K.url,
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size=4_924_029,
        md5="0e33842e24a9c977be4e0107933c0723",
        zip_name="ml-100k.zip",
        folder="ml-100k",
        required=movielens.ML100K.required,
        alternatives=("ml_100k",),
    ),
}


class DownloadError(RuntimeError):
    """Fetching, verifying or unpacking an archive failed (the message says what to do)."""


@dataclasses.dataclass
class DownloadResult:
    """What `download` did.

    Attributes:
        status: `"present"` (nothing to do), `"downloaded"` or `"unpacked"` (an archive
            already on disk was used).
        folder: the folder holding the files.
        sha256: digest of the archive used (None when nothing was unpacked).
        verified: whether that digest was checked against a known one.
    """

    status: str
    folder: str
    sha256: str | None = None
    verified: bool = False


def get_archive(name: str) -> Archive:
    archive = ARCHIVES.get(name)
    if archive is None:
        raise ValueError(f"Unknown dataset to download; valid ones are {sorted(ARCHIVES)}. Received: {name!r}")
    return archive


def present_folder(archive: Archive, data_dir: str) -> str | None:
    """The folder under `data_dir` that already holds every required file, if any."""
    for folder in (archive.folder, *archive.alternatives):
        path = os.path.join(data_dir, folder)
        if all(os.path.isfile(os.path.join(path, f)) and os.path.getsize(os.path.join(path, f)) > 0
               for f in archive.required):
            return path
    return None


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Streams `url` to `dest` (via `dest + ".part"`, renamed when complete)."""
    part = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)


def check_entries(zf: zipfile.ZipFile, target: str) -> list[zipfile.ZipInfo]:
    """Validates every entry of `zf` for extraction into `target`.

    Raises:
        DownloadError: an absolute path, a `..` component, a drive letter, a symlink or
            an entry resolving outside `target` (naming the entry).
    """
    root = os.path.realpath(target)
    entries = []
    for info in zf.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        mode = info.external_attr >> 16
        problem = None
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            problem = "an absolute path"
        elif ".." in parts:
            problem = "a '..' component that escapes the folder"
        elif stat.S_ISLNK(mode):
            problem = "a symbolic link"
        elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            problem = "not a regular file or folder"
        else:
            resolved = os.path.realpath(os.path.join(root, *[p for p in parts if p]))
            if os.path.commonpath([resolved, root]) != root:
                problem = "a path outside the target folder"
        if problem:
            raise DownloadError(
                f"Refusing to unpack {zf.filename}: entry {name!r} is {problem}. Nothing was extracted. "
                f"Received: entry {name!r}"
            )
        entries.append(info)
    return entries


def safe_extract(zip_path: str, target: str) -> list[str]:
    """Unpacks `zip_path` into `target` after checking every entry (`check_entries`).

    Returns:
        The paths written.
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            entries = check_entries(zf, target)
            written = []
            for info in entries:
                parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
                if not parts:
                    continue
                path = os.path.join(target, *parts)
                if info.is_dir():
                    os.makedirs(path, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = path + ".part"
                with zf.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                os.replace(tmp, path)
                written.append(path)
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{zip_path} is not a valid zip archive ({error}); delete it and try again. "
                            f"Received: {zip_path}") from None
    return written


def _offline_help(archive: Archive, data_dir: str) -> str:
    files = ", ".join(archive.required)
    return (
        f"Download {archive.url} yourself and either put {archive.zip_name} in {data_dir}/ and run "
        f"mlora-download again (it verifies and unpacks it), or unzip it so that "
        f"{os.path.join(data_dir, archive.folder)}/ holds {files}."
    )


def download(
    name: str,
    data_dir: str | os.PathLike,
    *,
    sha256: str | None = None,
    url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    fetch_fn: Callable[[str, str, float], None] | None = None,
) -> DownloadResult:
    """Makes the raw files of `name` exist under `data_dir` (see the module docstring).

    Args:
        name: `"ml-1m"` or `"ml-100k"`.
        data_dir: where the archive and its folder go (created).
        sha256: expected hex digest; default: the official file's (only for the official URL).
        url: another URL (a mirror, or `file://` for a local copy).
        timeout: seconds before a stalled connection fails.
        fetch_fn: `fetch_fn(url, dest, timeout)` (tests); default `fetch`.

    Raises:
        DownloadError: no network (with instructions), a digest mismatch, an unsafe or
            damaged archive, or an archive without the expected files.
    """
    archive = get_archive(name)
    data_dir = os.fspath(data_dir)
    found = present_folder(archive, data_dir)
    if found:
        logging.info("%s is already in %s; nothing to do.", name, found)
        return DownloadResult("present", found)
    os.makedirs(data_dir, exist_ok=True)
    source = url or archive.url
    expected = (sha256 or "").strip().lower() or (archive.sha256 if source == archive.url else None)
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise ValueError(f"sha256 must be 64 hex digits. Received: sha256={sha256!r}")
    zip_path = os.path.join(data_dir, archive.zip_name)
    status = "unpacked"
    if not os.path.isfile(zip_path):
        logging.info("Fetching %s -> %s (timeout %.0fs)", source, zip_path, timeout)
        try:
            (fetch_fn or fetch)(source, zip_path, timeout)
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(
                f"Could not fetch {source} ({type(error).__name__}: {reason}). {_offline_help(archive, data_dir)}"
            ) from None
        status = "downloaded"
    digest = sha256_of(zip_path)
    if expected is None:
        logging.warning(
            "%s comes from %s, whose digest is not known: NOT verified. Its sha256 is %s; pass "
            "--sha256 to check it.", zip_path, source, digest,
        )
    elif digest != expected:
        os.remove(zip_path)
        raise DownloadError(
            f"{zip_path} has sha256 {digest}, expected {expected}; the file was deleted. A damaged "
            f"download or a changed file: try again, or pass the right --sha256. Received: {digest}"
        )
    try:
        safe_extract(zip_path, data_dir)
    except DownloadError:
        if status == "downloaded":  # never keep an unsafe file we fetched
            os.remove(zip_path)
        raise
    found = present_folder(archive, data_dir)
    if not found:
        raise DownloadError(
            f"{zip_path} did not contain {archive.folder}/ with {', '.join(archive.required)}. "
            f"{_offline_help(archive, data_dir)}"
        )
    logging.info("%s ready in %s (sha256 %s, %s)", name, found, digest, "verified" if expected else "not verified")
    return DownloadResult(status, found, digest, expected is not None)
