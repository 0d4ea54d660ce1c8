"""Score a trained run (or an export) on a split or a file: `mlora-evaluate`.

Metrics per domain: exact AUC, the original's 500-threshold AUC, logloss, and
calibration (mean predicted probability, observed CTR, and their ratio); aggregated:
WAUC (AUCs weighted by domain size), mean AUC, logloss over all rows, overall
calibration. The AUC and logloss numbers are `mlora_tf.training.metrics.domain_metrics`,
the trainer's own, computed on the same domain-homogeneous prediction batches, so a run
scored on its test split gives the numbers of its `result.json`.

What scores:

* a run folder (`model.keras`): the Keras model as trained; raw ids are table rows, so
  every id must lie in the run's vocabulary (`serving_lookup=True` maps them as an
  export does instead);
* a run folder with `serving_lookup=True`, or an export folder (`saved_model.pb`):
  the serving graph: ids never seen in training go to the OOV row (the mean of the
  training ids' rows).

Data: a split of the run's own dataset (re-loaded from its config), or a CSV / parquet
file with a column per sparse feature of the model and `label`: `uid, pid, domain,
label`, plus every further feature the model was trained on (a CSV dataset's extra
columns, by their feature names); other columns are ignored, a missing one is an error
naming it.

Single-task runs only: a multi-task run (`mlora-train --task_set=...`) or its export
is refused with a ValueError (its test metrics are in its `result.json`).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from mlora_tf.config import RunConfig
from mlora_tf.data.dataset import SPLITS
from mlora_tf.data.interactions import read_interactions
from mlora_tf.export.run_folder import RunFolder
from mlora_tf.export.serving import is_export, load_export, read_export_metadata, serving_module
from mlora_tf.models.builder import ordered_features
from mlora_tf.models.mdmt_parts import input_names
from mlora_tf.training.metrics import domain_metrics

FEATURES = ("uid", "pid", "domain")
"""The sparse features of every model; a model may take further ones (`scorer.features`)."""
LABEL = "label"
_MULTITASK_HINT = (
    "Its test metrics per (domain, task) are in the run's result.json (overall_auc, pair_auc); "
    "mlora-export serves it."
)


# ----------------------------------------------------------------- scorers
class _KerasScorer:
    """The Keras model as the trainer predicts with it (same tf.function, batches).

    Call it with one int64 `(rows,)` array per name of `features` (the model's sparse
    inputs: `uid, pid, domain`, then any further ones); it returns `(rows,)`
    probabilities.
    """

    kind = "keras"

    def __init__(self, model):
        self.features = ordered_features(input_names(model))
        spec = tf.TensorSpec([None], tf.int64)

        @tf.function(input_signature=[spec] * len(self.features))
        def predict(*ids):
            return model(dict(zip(self.features, ids)), training=False)["probability"]

        self._predict = predict

    def __call__(self, *ids):
        return self._predict(*(tf.constant(x) for x in ids)).numpy()


class _ServingScorer:
    """The serving signature (an export's, or a run's `ServingModule` in memory), called
    like `_KerasScorer` with one array per name of `features` (the signature's inputs)."""

    def __init__(self, fn, kind, features=FEATURES):
        self._fn = fn
        self.kind = kind
        self.features = tuple(features)

    def __call__(self, *ids):
        out = self._fn(**{f: tf.constant(x) for f, x in zip(self.features, ids)})
        return out["probability"].numpy()


def _check_ids(columns: dict, source: str, n_domains: int, domain_names, vocab_sizes: dict | None,
               features=FEATURES) -> None:
    domain = columns["domain"]
    bad = (domain < 0) | (domain >= n_domains)
    if bad.any():
        raise ValueError(
            f"{source}: `domain` ids must be in [0, {n_domains}) ({', '.join(domain_names)}); "
            f"{int(bad.sum())} rows are not. Received: {sorted(set(domain[bad].tolist()))[:10]}"
        )
    for f in features:
        if vocab_sizes is None or f == "domain":
            continue
        ids = columns[f]
        bad = (ids < 0) | (ids >= vocab_sizes[f])
        if bad.any():
            raise ValueError(
                f"{source}: `{f}` ids outside the model's vocabulary [0, {vocab_sizes[f]}) on {int(bad.sum())} rows. "
                f"Received: {sorted(set(ids[bad].tolist()))[:10]}. Evaluate with serving_lookup "
                "(--serving_lookup) or an export to map unseen ids to the OOV row."
            )


def _ratio(a: float, b: float):
    return None if (b == 0 or not np.isfinite(a) or not np.isfinite(b)) else float(a / b)


def _mean(x):
    return float(np.mean(np.asarray(x, dtype=np.float64))) if np.size(x) else None


def score(scorer, columns: dict, domain_names, batch_size: int) -> dict:
    """Predict per domain (domain-homogeneous batches of `batch_size` rows) and compute
    the metrics.

    Args:
        scorer: called with one id array per name of `scorer.features` (default
            `uid, pid, domain`), returns the probabilities.
        columns: `{name: (rows,) array}` with every feature of the scorer and `label`.
        domain_names: one name per domain.
        batch_size: rows per scorer call.

    Returns:
        `domain_metrics`' dict plus per-domain `domain_mean_prediction`,
        `domain_observed_ctr`, `domain_calibration` (mean prediction / observed CTR;
        None without rows or clicks) and the same over all rows (`mean_prediction`,
        `observed_ctr`, `calibration`), and `rows`.
    """
    features = tuple(getattr(scorer, "features", FEATURES))
    domain = columns["domain"]
    labels, probs = [], []
    for d in range(len(domain_names)):
        rows = np.flatnonzero(domain == d)
        parts = [
            scorer(*(columns[f][rows[i : i + batch_size]] for f in features)) for i in range(0, rows.size, batch_size)
        ]
        probs.append(np.concatenate(parts) if parts else np.zeros((0,), np.float32))
        labels.append(columns[LABEL][rows])
    report = domain_metrics(labels, probs, domain_names)
    names = [str(n) for n in domain_names]
    report["domain_mean_prediction"] = {n: _mean(p) for n, p in zip(names, probs)}
    report["domain_observed_ctr"] = {n: _mean(y) for n, y in zip(names, labels)}
    report["domain_calibration"] = {
        n: (None if not y.size else _ratio(_mean(p), _mean(y))) for n, p, y in zip(names, probs, labels)
    }
    all_p, all_y = np.concatenate(probs), np.concatenate(labels)
    report["mean_prediction"] = _mean(all_p)
    report["observed_ctr"] = _mean(all_y)
    report["calibration"] = None if not all_y.size else _ratio(_mean(all_p), _mean(all_y))
    report["rows"] = int(all_y.size)
    return report


# -------------------------------------------------------------------- API
def evaluate(
    model_dir: str,
    data: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    serving_lookup: bool = False,
) -> dict:
    """Score a run folder or an export folder on a split or a file.

    Args:
        model_dir: a run folder (`model.keras`) or an export (`saved_model.pb`).
        data: a CSV / parquet file with a column per sparse feature of the model
            (`uid, pid, domain` and any further ones, e.g. a CSV dataset's extra
            columns) and `label`; None scores `split` of the run's own dataset,
            re-loaded from its config.
        split: `train`, `val` or `test` (without `data`).
        batch_size: prediction batch size (default: the run's `eval_batch_size`).
        serving_lookup: score a run folder through its serving graph (ids unseen in
            training -> OOV row), as its export would.

    Returns:
        The report (see `score`), with `model_dir`, `model_kind`
        (`keras` / `serving` / `saved_model`), `data` and `domain_names`.

    Raises:
        ValueError: a bad split, data file, or ids out of range (naming the source); a
            multi-task run or export (not supported).
        FileNotFoundError: a missing run, export or data file.
    """
    # The arguments and input paths first, before any model or data is loaded.
    if data is None and split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}. Received: split={split!r}")
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"Run or export folder not found: {model_dir}. Received: {model_dir!r}")
    if data is not None and not os.path.isfile(data):
        raise FileNotFoundError(f"Data file not found: {data}. Received: data={data!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    if is_export(model_dir):
        metadata = read_export_metadata(model_dir)
        if metadata["kind"] != "single_task":
            raise ValueError(
                f"mlora-evaluate supports single-task runs only; {model_dir} is the export of a multi-task run "
                f"(model {metadata.get('model')!r}, tasks {', '.join(metadata['tasks'])}). {_MULTITASK_HINT}"
            )
        signature, metadata = load_export(model_dir)
        config = RunConfig.from_dict(metadata["config"])
        domain_names = metadata["domain_names"]
        features = tuple(metadata.get("features") or FEATURES)
        scorer, vocab_sizes = _ServingScorer(signature, "saved_model", features), None
        hashed, vocabulary = sorted(metadata.get("hash_buckets") or {}), None
    else:
        run = RunFolder.open(model_dir)
        run.single_task_only("mlora-evaluate", _MULTITASK_HINT)
        config, domain_names = run.config, run.vocabulary.domain_names
        if serving_lookup:
            module = serving_module(run)
            scorer, vocab_sizes = _ServingScorer(module.serve, "serving", module.features), None
        else:
            scorer, vocab_sizes = _KerasScorer(run.load_model()), run.vocabulary.vocab_sizes
        hashed, vocabulary = sorted(run.vocabulary.hashed), run.vocabulary
    if hashed and data is None and vocab_sizes is None:
        raise ValueError(
            f"{model_dir} hashes {', '.join(hashed)} (--hash_buckets): its serving graph takes raw ids, but the "
            f"{split!r} split holds their buckets. Score the split with the run folder's Keras model (no "
            "--serving_lookup), or give --data=FILE with raw ids."
        )
    needed = tuple(scorer.features) + (LABEL,)
    if data is not None:
        columns, source = read_interactions(data, required=needed), data
        if hashed and vocab_sizes is not None:  # raw ids -> their training buckets
            columns.update({f: vocabulary.map_ids(f, columns[f]) for f in hashed if f in columns})
    else:
        from mlora_tf.runs.train import load_run_dataset

        dataset = load_run_dataset(config)
        columns, source = dataset.splits[split], f"split {split!r} of {dataset.name}"
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ValueError(
                f"{source} lacks the column(s) {missing} the model needs. Received columns: {sorted(columns)}"
            )
        columns = {c: np.asarray(columns[c]) for c in needed}
    _check_ids(columns, source, len(domain_names), domain_names, vocab_sizes, scorer.features)
    report = score(scorer, columns, domain_names, int(batch_size or config.train.eval_batch_size))
    report.update(
        {"model_dir": model_dir, "model_kind": scorer.kind, "data": source, "domain_names": list(domain_names)}
    )
    return report


def format_report(report: dict) -> str:
    """The report as a table: one line per domain, then the aggregates."""
    header = (
        f"{'domain':<14}{'rows':>9}{'AUC':>9}{'AUC500':>9}{'logloss':>9}{'mean pred':>11}{'obs. CTR':>10}{'pred/obs':>10}"
    )
    lines = [f"{report['model_kind']} {report['model_dir']} on {report['data']}", header, "-" * len(header)]

    def f(v, width=9, digits=4):
        return f"{v:{width}.{digits}f}" if v is not None and np.isfinite(v) else f"{'-':>{width}}"

    for n in report["domain_names"]:
        lines.append(
            f"{n:<14}{report['domain_size'][n]:>9}{f(report['domain_auc'][n])}{f(report['domain_auc500'][n])}"
            f"{f(report['domain_logloss'][n])}{f(report['domain_mean_prediction'][n], 11)}"
            f"{f(report['domain_observed_ctr'][n], 10)}{f(report['domain_calibration'][n], 10)}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{'all':<14}{report['rows']:>9}{'':>9}{'':>9}{f(report['logloss'])}{f(report['mean_prediction'], 11)}"
        f"{f(report['observed_ctr'], 10)}{f(report['calibration'], 10)}"
    )
    lines.append(f"{'WAUC':<14}{'':>9}{f(report['wauc'])}{f(report['wauc500'])}")
    lines.append(f"{'mean AUC':<14}{'':>9}{f(report['mean_auc'])}{f(report['mean_auc500'])}")
    return "\n".join(lines)
