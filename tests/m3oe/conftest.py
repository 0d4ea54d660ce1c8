import os
import sys

import pytest

# The generic layer checks live beside the other layer tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "layers"))


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    """Never let a test write into the real default cache folder."""
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.delenv("MLORA_TF_DATA_DIR", raising=False)
