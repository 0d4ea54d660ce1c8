"""Helpers of the serving tests: tiny-run settings, programs in the background, a new
domain's rows."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd

SYNTHETIC = {"n_rows": 3000, "n_users": 200, "n_items": 100}


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


class Background:
    """A program started now and waited for later (the programs' TensorFlow start-up
    overlaps with the in-process tests)."""

    def __init__(self, args):
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        self._done = None

    def result(self, timeout=300) -> subprocess.CompletedProcess:
        if self._done is None:
            out, err = self.proc.communicate(timeout=timeout)
            self._done = subprocess.CompletedProcess(self.args, self.proc.returncode, out, err)
        return self._done


def start_cli(module, *args) -> Background:
    """Start `python -m mlora_tf.cli.<module> ARGS` in the background."""
    return Background([sys.executable, "-m", f"mlora_tf.cli.{module}", *args])


def cli(module, *args, timeout=240):
    """Run `python -m mlora_tf.cli.<module> ARGS`; returns the CompletedProcess."""
    return start_cli(module, *args).result(timeout)


def new_domain_frame(n_unseen=5):
    """A fourth synthetic domain's rows (uid, pid, label), plus rows with unseen uids."""
    from mlora_tf.data import load_dataset

    data = load_dataset("synthetic", n_domains=4, **SYNTHETIC)
    rows = {k: np.concatenate([data.domain_slice(s, 3)[k] for s in ("train", "val", "test")]) for k in ("uid", "pid", "label")}
    frame = pd.DataFrame(rows)
    extra = frame.iloc[:n_unseen].copy()
    extra["uid"] = 10**6 + np.arange(n_unseen)  # never seen, outside the vocabulary
    return pd.concat([frame, extra], ignore_index=True)


def saved_model_cli_path():
    """`saved_model_cli` next to this Python, or None when it is not installed."""
    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    return path if os.path.exists(path) else None


MULTITASK_SYNTHETIC = {"n_rows": 3000}


def tiny_multitask_config(model="m3oe"):
    """A `MultiTaskRunConfig` for a one-epoch run of `model` with tiny widths on the
    synthetic multi-task data (tasks click and like, three domains)."""
    import dataclasses

    from mlora_tf.config import MultiTaskRunConfig, MultiTaskTrainConfig

    config = MultiTaskRunConfig()
    config.data.options.update(MULTITASK_SYNTHETIC)
    config.train = MultiTaskTrainConfig(batch_size=512, max_epochs=1)
    config.model = dataclasses.replace(
        config.model, name=model, star_units=16, hidden_units=8, expert_units=4, tower_units=4, embedding_dim=4
    )
    return config
