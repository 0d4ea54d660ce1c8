"""`mlora-download`: fetch (file:// or a patched fetch), sha256, safe unpacking, idempotence."""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.error
import zipfile
from pathlib import Path

import pytest

from mlora_tf.cli import download as download_cli
from mlora_tf.data import download, load_dataset
from tests.fixtures_movielens import write_ml1m


def make_zip(path, entries):
    """entries: (name, bytes) or (name, bytes, "symlink")."""
    with zipfile.ZipFile(path, "w") as zf:
        for entry in entries:
            name, data = entry[0], entry[1]
            info = zipfile.ZipInfo(name)
            if len(entry) > 2 and entry[2] == "symlink":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def good_zip(tmp_path):
    raw = write_ml1m(tmp_path / "src")
    entries = [("ml-1m/", b"")] + [(f"ml-1m/{name}", Path(p).read_bytes()) for name, p in raw.files.items()]
    entries.append(("ml-1m/README", b"readme"))
    path = tmp_path / "ml-1m.zip"
    return path, make_zip(path, entries)


def run_cli(*args):
    download_cli.FLAGS.unparse_flags()
    download_cli.FLAGS(["mlora-download", *args])
    try:
        return download_cli.main([])
    finally:
        download_cli.FLAGS.unparse_flags()


def test_known_digests_are_recorded():
    assert download.ARCHIVES["ml-1m"].sha256.startswith("a6898adb") and download.ARCHIVES["ml-1m"].size == 5_917_549
    assert download.ARCHIVES["ml-100k"].sha256.startswith("50d2a982") and download.ARCHIVES["ml-100k"].size == 4_924_029
    assert download.ARCHIVES["ml-1m"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"


def test_file_url_download_verifies_unpacks_and_is_idempotent(tmp_path, capsys):
    path, digest = good_zip(tmp_path)
    data = tmp_path / "data"
    assert run_cli("--dataset=ml-1m", f"--data_dir={data}", f"--url={path.as_uri()}", f"--sha256={digest}") == 0
    assert f"downloaded into {data / 'ml-1m'} (sha256 {digest}, verified)" in capsys.readouterr().out
    assert (data / "ml-1m" / "ratings.dat").read_bytes() == (tmp_path / "src" / "ratings.dat").read_bytes()
    assert load_dataset("ml-1m", data_dir=data, cache_dir=False).n_domains == 2
    # Second call: nothing fetched.
    calls = []
    result = download.download("ml-1m", data, fetch_fn=lambda *a: calls.append(a))
    assert result.status == "present" and calls == []
    assert run_cli("--dataset=ml-1m", f"--data_dir={data}") == 0
    assert "already in" in capsys.readouterr().out


def test_official_url_checks_the_official_digest(tmp_path):
    path, _ = good_zip(tmp_path)

    def fake_fetch(url, dest, timeout):
        assert url == download.ARCHIVES["ml-1m"].url and timeout == 5
        with open(dest, "wb") as f:
            f.write(path.read_bytes())

    with pytest.raises(download.DownloadError, match="expected a6898adb.*deleted"):
        download.download("ml-1m", tmp_path / "data", fetch_fn=fake_fetch, timeout=5)
    assert not (tmp_path / "data" / "ml-1m.zip").exists() and not (tmp_path / "data" / "ml-1m").exists()


def test_unknown_digest_is_reported_not_verified(tmp_path, capsys):
    path, digest = good_zip(tmp_path)
    assert run_cli("--dataset=ml-1m", f"--data_dir={tmp_path / 'd'}", f"--url={path.as_uri()}") == 0
    assert f"sha256 {digest}, NOT verified" in capsys.readouterr().out


def test_archive_already_on_disk_is_used(tmp_path):
    path, digest = good_zip(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    os.replace(path, data / "ml-1m.zip")
    result = download.download("ml-1m", data, sha256=digest, fetch_fn=lambda *a: pytest.fail("fetched"))
    assert result.status == "unpacked" and result.verified


@pytest.mark.parametrize(
    "entry, problem",
    [
        (("ml-1m/../../evil.txt", b"x"), "'..' component"),
        (("../evil", b"x"), "'..' component"),
        (("/tmp/abs-evil", b"x"), "absolute path"),
        (("ml-1m/link", b"/etc/passwd", "symlink"), "symbolic link"),
        (("C:/evil", b"x"), "absolute path"),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(tmp_path, entry, problem):
    raw = write_ml1m(tmp_path / "src")
    entries = [(f"ml-1m/{n}", Path(p).read_bytes()) for n, p in raw.files.items()] + [entry]
    path = tmp_path / "evil.zip"
    digest = make_zip(path, entries)
    data = tmp_path / "inner" / "data"
    with pytest.raises(download.DownloadError, match=f"entry .* is an? {problem}.*Nothing was extracted"):
        download.download("ml-1m", data, url=path.as_uri(), sha256=digest)
    assert not (data / "ml-1m").exists() and not (data / "ml-1m.zip").exists()
    assert not (tmp_path / "inner" / "evil").exists() and not (tmp_path / "evil.txt").exists()


def test_offline_prints_where_to_put_the_files(tmp_path, monkeypatch, capsys):
    def offline(url, dest, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "fetch", offline)
    assert run_cli("--dataset=ml-100k", f"--data_dir={tmp_path}") == 2
    err = capsys.readouterr().err
    assert "Could not fetch https://files.grouplens.org/datasets/movielens/ml-100k.zip" in err
    assert f"put ml-100k.zip in {tmp_path}/" in err and "u.user, u.data" in err
    assert "Traceback" not in err


def test_bad_arguments(tmp_path, capsys):
    assert run_cli("--dataset=ml-20m", f"--data_dir={tmp_path}") == 2
    assert "valid ones are ['ml-100k', 'ml-1m']" in capsys.readouterr().err
    assert run_cli("--dataset=ml-1m", f"--data_dir={tmp_path}", "--sha256=abc", "--url=file:///nonexistent") == 2
    assert "64 hex digits" in capsys.readouterr().err
    (tmp_path / "ml-1m.zip").write_bytes(b"not a zip")
    with pytest.raises(download.DownloadError, match="not a valid zip"):
        download.download("ml-1m", tmp_path, sha256=hashlib.sha256(b"not a zip").hexdigest())
