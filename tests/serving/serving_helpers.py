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


FEATURES = ("uid", "pid", "domain")


def serve(signature, feed):
    """Call a `serving_default` signature on int64 columns; numpy outputs by name."""
    import tensorflow as tf

    out = signature(**{f: tf.constant(np.asarray(v, np.int64)) for f, v in feed.items()})
    return {k: v.numpy() for k, v in out.items()}


def check_signature_equals_python(signature, model, feed, min_shift):
    """The signature gives the Python model's `probability` and `logit` on the mixed
    batch `feed` (every domain in it), one domain at a time gives the mixed batch's
    rows, and shifting the domain ids moves some answer by more than `min_shift`."""
    n = len(feed["domain"])
    assert len(set(feed["domain"].tolist())) == 3
    served = serve(signature, feed)
    python = model.predict_on_batch(feed)
    for key in ("probability", "logit"):
        assert served[key].shape == (n,) and served[key].dtype == np.float32
        np.testing.assert_allclose(served[key], python[key], rtol=1e-6, atol=1e-7)
    # One domain at a time gives the rows of the mixed batch.
    for d in range(3):
        rows = feed["domain"] == d
        alone = serve(signature, {f: v[rows] for f, v in feed.items()})["probability"]
        np.testing.assert_allclose(alone, served["probability"][rows], rtol=1e-6, atol=1e-7)
    # ... and the domain id matters (otherwise the check above would be empty).
    shifted = serve(signature, {**feed, "domain": (feed["domain"] + 1) % 3})["probability"]
    assert np.abs(shifted - served["probability"]).max() > min_shift
