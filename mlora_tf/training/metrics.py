"""Metrics of the original evaluation (original-model-zoo.md §5.2, §5.5).

* `auc_exact`: ROC AUC from the ranks of the predictions (ties averaged).
* `auc_thresholded`: the original's Keras AUC with 500 thresholds
  (`-1e-7, i/499 for i = 1..498, 1 + 1e-7`), a prediction counted positive when strictly
  above a threshold, trapezoidal summation.
* `weighted_mean`: WAUC, domain AUCs weighted by test sizes; domains whose AUC is
  undefined (one class) are left out, with a warning.
* `domain_metrics`: all of these for one split, per domain and aggregated.

**Multi-domain multi-task** metrics, as M3oE's paper reports them (m3oe.md §3.4, §6).

`multitask_metrics(labels, probabilities, domains, ...)` scores every (domain, task)
pair on its own pooled rows: exact ROC AUC and logloss. The paper's **overall AUC**
is the plain mean of the `D * T` pair AUCs (6 on MovieLens; it holds for every row of its
Table 2 but PLE-MDMT's, whose printed 75.68 is not the mean 76.01 of its six); the overall logloss is taken the same way.

A pair whose rows hold one class only has an **undefined** AUC (`None`), never 0.5:
it is left out of the overall mean, named in `undefined_auc_pairs` and logged. A
pair without rows has an undefined logloss too. The original script's `total_auc`
(sklearn on the `[N, T]` matrices: the mean over tasks of the AUC pooled across
domains) is reported as `pooled_task_auc` / `pooled_mean_auc` for comparison; its
`total_logloss` is not meaningful (m3oe.md §3.4) and is not reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    `logloss` and `pooled_auc` (both over all rows as one set: the overall AUC other
    multi-domain benchmarks report; None if it is undefined). Undefined AUCs are
    `None` in the per-domain maps.
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
        "pooled_auc": _none_if_nan(auc_exact(all_y, all_p)) if all_y.size else None,
    }


# ---------------------------------------------------- multi-domain multi-task
def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _as_matrix(name: str, values, n_tasks: int | None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or (n_tasks is not None and array.shape[1] != n_tasks):
        raise ValueError(
            f"`{name}` must be `(n_rows, n_tasks)`"
            + (f" with n_tasks={n_tasks}" if n_tasks is not None else "")
            + f". Received: shape={np.shape(values)}"
        )
    return array


def multitask_metrics(
    labels,
    probabilities,
    domains,
    *,
    tasks: Sequence[str] | None = None,
    domain_names: Sequence[str] | None = None,
    n_domains: int | None = None,
) -> dict:
    """Per-(domain, task) AUC and logloss and their plain means.

    Args:
        labels: `(n_rows, n_tasks)` 0/1 labels (a 1-D array is one task).
        probabilities: `(n_rows, n_tasks)` predicted probabilities.
        domains: `(n_rows,)` integer domain ids in `[0, n_domains)`.
        tasks: task names (default `task0, task1, ...`).
        domain_names: domain names (default `d0, d1, ...`).
        n_domains: number of domains (default `len(domain_names)`, else max id + 1).
            A domain with no rows gives undefined metrics for its pairs.

    Returns:
        A JSON-serialisable dict:

        - `auc`, `logloss`, `size`, `positives`: `[d][t]` nested lists (undefined
          values are None);
        - `pairs`: `"d{d}t{t}"` (the original's column order, domain-major) ->
          `{"domain", "task", "auc", "logloss", "size", "positives"}`;
        - `overall_auc`: mean of the defined pair AUCs (None if none is);
        - `overall_logloss`: mean of the defined pair loglosses;
        - `undefined_auc_pairs`: the `"d{d}t{t}"` keys left out of `overall_auc`;
        - `pooled_task_auc`: task -> AUC over all domains; `pooled_mean_auc`: their
          mean (the original script's `total_auc`).

    Raises:
        ValueError: mismatched shapes, or a domain id outside `[0, n_domains)`.
    """
    y = _as_matrix("labels", labels, None)
    p = _as_matrix("probabilities", probabilities, y.shape[1])
    domains = np.asarray(domains)
    if domains.ndim != 1 or len(domains) != len(y) or len(p) != len(y):
        raise ValueError(
            "`labels`, `probabilities` and `domains` must have the same number of rows. "
            f"Received: {len(y)}, {len(p)}, {domains.shape}"
        )
    if domains.size and not np.issubdtype(domains.dtype, np.integer):
        raise ValueError(f"`domains` must hold integer ids. Received: dtype={domains.dtype}")
    n_tasks = y.shape[1]
    task_names = [str(t) for t in tasks] if tasks is not None else [f"task{t}" for t in range(n_tasks)]
    if len(task_names) != n_tasks:
        raise ValueError(f"Need one task name per column ({n_tasks}). Received: tasks={task_names}")
    if n_domains is None:
        n_domains = len(domain_names) if domain_names is not None else (int(domains.max()) + 1 if domains.size else 0)
    names = [str(n) for n in domain_names] if domain_names is not None else [f"d{d}" for d in range(n_domains)]
    if len(names) != n_domains:
        raise ValueError(f"Need one domain name per domain ({n_domains}). Received: domain_names={names}")
    if domains.size and (domains.min() < 0 or domains.max() >= n_domains):
        raise ValueError(
            f"Domain ids must lie in [0, {n_domains}). Received: min={int(domains.min())}, "
            f"max={int(domains.max())}"
        )

    auc = [[None] * n_tasks for _ in range(n_domains)]
    loss = [[None] * n_tasks for _ in range(n_domains)]
    size = [[0] * n_tasks for _ in range(n_domains)]
    positives = [[0] * n_tasks for _ in range(n_domains)]
    pairs, undefined = {}, []
    for d in range(n_domains):
        rows = domains == d
        for t in range(n_tasks):
            yt, pt = y[rows, t], p[rows, t]
            auc[d][t] = _none_if_nan(auc_exact(yt, pt))
            loss[d][t] = _none_if_nan(logloss(yt, pt)) if yt.size else None
            size[d][t] = int(yt.size)
            positives[d][t] = int(yt.sum())
            key = f"d{d}t{t}"
            if auc[d][t] is None:
                undefined.append(key)
            pairs[key] = {
                "domain": names[d], "task": task_names[t], "auc": auc[d][t],
                "logloss": loss[d][t], "size": size[d][t], "positives": positives[d][t],
            }
    if undefined:
        logging.warning(
            "AUC undefined (one class or no rows) for (domain, task) pairs %s: left out of the "
            "overall AUC.", undefined,
        )
    defined_auc = [v for row in auc for v in row if v is not None]
    defined_loss = [v for row in loss for v in row if v is not None]
    pooled = {task: _none_if_nan(auc_exact(y[:, t], p[:, t])) for t, task in enumerate(task_names)}
    pooled_defined = [v for v in pooled.values() if v is not None]
    return {
        "tasks": task_names,
        "domains": names,
        "auc": auc,
        "logloss": loss,
        "size": size,
        "positives": positives,
        "pairs": pairs,
        "overall_auc": float(np.mean(defined_auc)) if defined_auc else None,
        "overall_logloss": float(np.mean(defined_loss)) if defined_loss else None,
        "undefined_auc_pairs": undefined,
        "pooled_task_auc": pooled,
        "pooled_mean_auc": float(np.mean(pooled_defined)) if pooled_defined else None,
    }


def relative_improvement(auc: float, base_auc: float) -> float:
    """RelaImpr = `(auc - 0.5) / (base_auc - 0.5) - 1` (m3oe.md §6)."""
    if not base_auc > 0.5:
        raise ValueError(f"`base_auc` must exceed 0.5. Received: base_auc={base_auc!r}")
    return (auc - 0.5) / (base_auc - 0.5) - 1.0
