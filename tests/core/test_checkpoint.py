"""`Checkpoint`: a state always comes with its own weights, whenever a save is cut short."""

import json

import numpy as np
import pytest

from mlora_tf.training import loop
from mlora_tf.training.loop import Checkpoint


def _arrays(value):
    return {"model": [np.full((2, 3), value, np.float32), np.arange(4) + value]}


def test_save_and_load_round_trip_and_keep_one_weights_file(tmp_path):
    store = Checkpoint(str(tmp_path))
    assert not store.exists()
    for epoch in range(3):
        store.save({"epoch": epoch}, _arrays(epoch))
    state, arrays = store.load()
    assert state == {"epoch": 2}
    np.testing.assert_array_equal(arrays["model"][0], np.full((2, 3), 2, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "weights-2.npz"]


def test_a_save_killed_after_its_weights_leaves_the_previous_state_with_its_weights(tmp_path, monkeypatch):
    store = Checkpoint(str(tmp_path))
    store.save({"epoch": 0}, _arrays(0))
    real = loop.atomic_write_json

    def killed(path, obj):  # the process dies between the weights and the state
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        store.save({"epoch": 1}, _arrays(1))
    monkeypatch.setattr(loop, "atomic_write_json", real)
    state, arrays = Checkpoint(str(tmp_path)).load()
    assert state == {"epoch": 0}
    np.testing.assert_array_equal(arrays["model"][1], np.arange(4))  # epoch 0's weights, not epoch 1's
    store.save({"epoch": 1}, _arrays(1))  # the next save cleans up the orphan
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "weights-1.npz"]


def test_a_checkpoint_of_the_earlier_single_file_format_loads(tmp_path):
    np.savez(tmp_path / "weights.npz", model_0=np.ones(3))
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 4, "array_groups": {"model": 1}}))
    store = Checkpoint(str(tmp_path))
    assert store.exists()
    state, arrays = store.load()
    assert state == {"epoch": 4} and arrays["model"][0].tolist() == [1.0, 1.0, 1.0]
    store.save({"epoch": 5}, _arrays(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "weights-0.npz"]


def test_a_damaged_state_is_named(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"checkpoint in {tmp_path} is damaged"):
        Checkpoint(str(tmp_path)).exists()
