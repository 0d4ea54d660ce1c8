import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlora_tf.training.metrics import auc_exact, auc_thresholded, domain_metrics, logloss, weighted_mean


def _data(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype("float32")
    p = np.clip(0.3 + 0.2 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1).astype("float32")
    p[:50] = 0.5  # ties
    return y, p


def test_exact_auc_matches_sklearn():
    y, p = _data()
    assert auc_exact(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_thresholded_auc_matches_keras_auc_500():
    y, p = _data(seed=1)
    m = keras.metrics.AUC(num_thresholds=500)
    m.update_state(y, p)
    assert auc_thresholded(y, p) == pytest.approx(float(m.result()), abs=1e-5)
    assert abs(auc_thresholded(y, p) - auc_exact(y, p)) < 0.01


def test_one_class_auc_is_undefined_and_left_out_of_weighted_mean():
    assert np.isnan(auc_exact([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(auc_thresholded([0, 0], [0.1, 0.2]))
    assert weighted_mean([0.8, np.nan, 0.6], [1, 100, 3]) == pytest.approx((0.8 + 1.8) / 4)
    y, p = _data(200)
    metrics = domain_metrics([y, np.ones(10)], [p, np.full(10, 0.5)], ["a", "b"])
    assert metrics["domain_auc"]["b"] is None
    assert metrics["wauc"] == pytest.approx(auc_exact(y, p))


def test_wauc_weights_by_test_size():
    y1, p1 = _data(1000, 2)
    y2, p2 = _data(3000, 3)
    m = domain_metrics([y1, y2], [p1, p2], ["x", "y"])
    expected = (1000 * auc_exact(y1, p1) + 3000 * auc_exact(y2, p2)) / 4000
    assert m["wauc"] == pytest.approx(expected)
    assert m["mean_auc"] == pytest.approx((auc_exact(y1, p1) + auc_exact(y2, p2)) / 2)
    assert m["domain_size"] == {"x": 1000, "y": 3000}


def test_pooled_auc_is_the_auc_of_all_rows_as_one_set():
    from sklearn.metrics import roc_auc_score

    y1, p1 = _data(1000, 2)
    y2, p2 = _data(3000, 3)
    m = domain_metrics([y1, y2], [p1 + 0.3, p2], ["x", "y"])  # a domain offset: pooled != weighted
    pooled = roc_auc_score(np.concatenate([y1, y2]), np.concatenate([p1 + 0.3, p2]))
    assert m["pooled_auc"] == pytest.approx(pooled, abs=1e-12)
    assert abs(m["pooled_auc"] - m["wauc"]) > 1e-3
    assert domain_metrics([np.ones(5)], [np.full(5, 0.5)], ["a"])["pooled_auc"] is None


def test_logloss_clips_like_keras():
    assert logloss([1, 0], [1.0, 0.0]) == pytest.approx(-np.log(1 - 1e-7), rel=1e-6)
    bce = keras.losses.BinaryCrossentropy()
    y, p = _data(100, 4)
    assert logloss(y, p) == pytest.approx(float(bce(y, p)), rel=1e-4)
