"""Metrics of the original evaluation (original-model-zoo.md §5.2, §5.5).

* `auc_exact`: ROC AUC from the ranks of the predictions (ties averaged).
* `auc_thresholded`: the original's Keras AUC with 500 thresholds
  (`-1e-7, i/499 for i = 1..498, 1 + 1e-7`), a prediction counted positive when strictly
  above a threshold, trapezoidal summation.
* `weighted_mean`: WAUC, domain AUCs weighted by test sizes; domains whose AUC is
  undefined (one class) are left out, with a warning.
"""

from __future__ import annotations

import math

import numpy as np
from absl import logging


def _two_classes(labels) -> bool:
    labels = np.asarray(labels)
    return labels.size > 0 and 0 < labels.sum() < labels.size


def auc_exact(labels, scores) -> float:
    """Exact ROC AUC; NaN when `labels` hold one class only."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if not _two_classes(labels):
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.r_[0, boundaries]
    ends = np.r_[boundaries, len(scores)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _thresholds(num_thresholds: int) -> np.ndarray:
    epsilon = 1e-7
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return np.array([0.0 - epsilon] + inner + [1.0 + epsilon], dtype=np.float32)


def auc_thresholded(labels, scores, num_thresholds: int = 500) -> float:
    """The original's ROC AUC at `num_thresholds` thresholds; NaN for one class."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float32).ravel()
    if not _two_classes(labels):
        return float("nan")
    thresholds = _thresholds(num_thresholds)
    # Number of thresholds strictly below each score = index of the first one >= it.
    below = np.searchsorted(thresholds, scores, side="left")
    pos = np.bincount(below, weights=labels, minlength=num_thresholds + 1)
    neg = np.bincount(below, weights=1.0 - labels, minlength=num_thresholds + 1)
    # A score counts positive at threshold i iff more than i thresholds lie below it.
    tp = np.cumsum(pos[::-1])[::-1][1:]
    fp = np.cumsum(neg[::-1])[::-1][1:]
    tpr = tp / labels.sum()
    fpr = fp / (labels.size - labels.sum())
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))


def logloss(labels, probabilities, epsilon: float = 1e-7) -> float:
    """Binary cross-entropy with probabilities clipped to `[eps, 1 - eps]` (Keras)."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), epsilon, 1 - epsilon)
    if labels.size == 0:
        return float("nan")
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def weighted_mean(values, weights, what: str = "AUC", names=None) -> float:
    """Weighted mean of `values`, leaving out NaN entries with a warning."""
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    ok = ~np.isnan(values)
    if not ok.all():
        missing = [names[i] if names else i for i in np.flatnonzero(~ok)]
        logging.warning("%s undefined (one class) for domains %s: left out of the mean.", what, missing)
    if not ok.any() or weights[ok].sum() == 0:
        return float("nan")
    return float(np.sum(values[ok] * weights[ok]) / weights[ok].sum())


def plain_mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


AUC_FUNCTIONS = {"auc": auc_exact, "auc500": auc_thresholded}


def domain_metrics(labels_by_domain, probs_by_domain, domain_names) -> dict:
    """Per-domain and aggregate metrics of one split.

    Returns a dict with `domain_auc` (exact), `domain_auc500`, `domain_logloss`,
    `domain_size`, and the aggregates `wauc`, `wauc500`, `mean_auc`, `mean_auc500`,
    `logloss` (over all rows). Undefined AUCs are `None` in the per-domain maps.
    """
    sizes = [int(np.asarray(y).size) for y in labels_by_domain]
    exact = [auc_exact(y, p) for y, p in zip(labels_by_domain, probs_by_domain)]
    thresholded = [auc_thresholded(y, p) for y, p in zip(labels_by_domain, probs_by_domain)]
    losses = [logloss(y, p) for y, p in zip(labels_by_domain, probs_by_domain)]
    all_y = np.concatenate([np.asarray(y).ravel() for y in labels_by_domain]) if labels_by_domain else np.array([])
    all_p = np.concatenate([np.asarray(p).ravel() for p in probs_by_domain]) if probs_by_domain else np.array([])

    def named(values):
        return {str(n): (None if (v is None or math.isnan(v)) else float(v)) for n, v in zip(domain_names, values)}

    return {
        "domain_auc": named(exact),
        "domain_auc500": named(thresholded),
        "domain_logloss": named(losses),
        "domain_size": {str(n): s for n, s in zip(domain_names, sizes)},
        "wauc": weighted_mean(exact, sizes, "AUC", domain_names),
        "wauc500": weighted_mean(thresholded, sizes, "AUC500", domain_names),
        "mean_auc": plain_mean(exact),
        "mean_auc500": plain_mean(thresholded),
        "logloss": logloss(all_y, all_p),
    }
