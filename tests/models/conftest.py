"""Fixtures shared by the model tests."""

import pytest


@pytest.fixture(scope="session")
def planted_synthetic():
    """Synthetic data with planted domain effects (shift 1), loaded once for every
    model's "beats a constant predictor" test."""
    from mlora_tf.data import load_dataset

    return load_dataset("synthetic", n_rows=20000, n_users=300, n_items=150)
