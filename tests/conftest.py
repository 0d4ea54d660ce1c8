import pytest
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def isolated_default_cache(tmp_path, monkeypatch):
    """The default prepared-data cache in this test's own folder, no default data folder."""
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.delenv("MLORA_TF_DATA_DIR", raising=False)
