"""The paper's overall metrics: the plain mean of the (domain, task) AUCs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from mlora_tf.training.metrics import multitask_metrics, relative_improvement


def _data(seed=0, n=600):
    rng = np.random.default_rng(seed)
    domains = rng.integers(0, 3, n)
    labels = (rng.random((n, 2)) < [0.55, 0.25]).astype("float32")
    probs = 0.25 * labels + 0.6 * rng.random((n, 2)) + 0.1 * domains[:, None] / 2
    probs = np.clip(probs, 1e-3, 1 - 1e-3)
    return labels, probs, domains


def test_overall_auc_is_the_mean_of_the_six_pair_aucs():
    labels, probs, domains = _data()
    out = multitask_metrics(labels, probs, domains, tasks=("click", "like"),
                            domain_names=("a", "b", "c"))
    six = []
    for d in range(3):
        for t in range(2):
            rows = domains == d
            auc = roc_auc_score(labels[rows, t], probs[rows, t])
            assert out["auc"][d][t] == pytest.approx(auc)
            assert out["pairs"][f"d{d}t{t}"]["auc"] == pytest.approx(auc)
            assert out["logloss"][d][t] == pytest.approx(log_loss(labels[rows, t], probs[rows, t]), rel=1e-6)
            six.append(auc)
    assert out["overall_auc"] == pytest.approx(np.mean(six))
    assert list(out["pairs"]) == ["d0t0", "d0t1", "d1t0", "d1t1", "d2t0", "d2t1"]
    assert out["pairs"]["d2t1"]["domain"] == "c" and out["pairs"]["d2t1"]["task"] == "like"
    assert out["undefined_auc_pairs"] == []
    # The original script's total_auc: per task, pooled over domains, then the mean.
    pooled = [roc_auc_score(labels[:, t], probs[:, t]) for t in range(2)]
    assert out["pooled_mean_auc"] == pytest.approx(np.mean(pooled))
    assert out["pooled_mean_auc"] != pytest.approx(out["overall_auc"])


def test_a_one_class_pair_is_undefined_not_one_half():
    labels, probs, domains = _data(1)
    labels[domains == 1, 1] = 0.0  # no "like" in domain 1
    out = multitask_metrics(labels, probs, domains, tasks=("click", "like"))
    assert out["auc"][1][1] is None and out["pairs"]["d1t1"]["auc"] is None
    assert out["undefined_auc_pairs"] == ["d1t1"]
    defined = [out["auc"][d][t] for d in range(3) for t in range(2) if (d, t) != (1, 1)]
    assert out["overall_auc"] == pytest.approx(np.mean(defined))
    assert out["logloss"][1][1] is not None  # logloss is still defined


def test_empty_domain_and_refusals():
    labels, probs, domains = _data(2)
    out = multitask_metrics(labels, probs, domains, n_domains=4)
    assert out["size"][3] == [0, 0] and out["auc"][3] == [None, None] and out["logloss"][3] == [None, None]
    assert out["undefined_auc_pairs"] == ["d3t0", "d3t1"]
    with pytest.raises(ValueError, match="Domain ids must lie in"):
        multitask_metrics(labels, probs, domains, n_domains=2)
    with pytest.raises(ValueError, match="same number of rows"):
        multitask_metrics(labels, probs[:-1], domains)
    with pytest.raises(ValueError, match="n_tasks=2"):
        multitask_metrics(labels, probs[:, :1], domains)


def test_relative_improvement():
    assert relative_improvement(0.7702, 0.7635) == pytest.approx(0.0254, abs=1e-4)
    with pytest.raises(ValueError, match="Received: base_auc=0.5"):
        relative_improvement(0.6, 0.5)
