"""Resumable experiment grids: a run store, statistics and tables for the drivers beside
it in `experiments/` (`make reproduce-table2` and friends), which import it as
`reproduce_common` (their folder is on `sys.path`). Not part of the package.

Each finished run is one JSON line in `runs.jsonl`, appended and fsync-ed; a driver
skips every cell whose record exists, so a killed reproduction resumes where it
stopped. A torn last line (a kill mid-write) is dropped on the next start and its run
is done again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import numpy as np
from absl import logging

from mlora_tf.io import atomic_write_bytes


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a grid: what distinguishes it from every other run."""

    dataset: str
    split: str
    model: str
    adapter: str
    seed: int
    lora_reduce: float | None = None
    experts_per_domain: int | None = None
    as_shipped: bool = False
    # A named training variant (`experiments/fidelity_ablation.py`: the loop and the
    # factors switched from it); None: the defaults.
    variant: str | None = None
    # The dense stack's widths (the widths ablation, MLoRA Table 5); None: the model's
    # default (256, 128, 64).
    hidden_units: tuple | None = None

    def __post_init__(self):
        if self.hidden_units is not None:  # a JSON record gives a list
            object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))

    @property
    def key(self) -> str:
        fields = dataclasses.asdict(self)
        if fields["hidden_units"] is None:  # cells without widths keep the key they had before the field
            del fields["hidden_units"]
        return json.dumps(fields, sort_keys=True)


class RunStore:
    """`runs.jsonl`: one record per finished run, keyed by its `Cell`."""

    def __init__(self, path: str):
        self.path = path
        self.records: dict[str, dict] = {}
        self._load()

    def _load(self):
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        good, dropped = [], 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self.records[Cell(**record["cell"]).key] = record
                good.append(line)
            except (ValueError, KeyError, TypeError):
                dropped += 1
                logging.warning("%s line %d is torn or invalid: dropped; its run will be done again.", self.path, number)
        if dropped:
            atomic_write_bytes(self.path, b"".join(line + b"\n" for line in good))

    def has(self, cell: Cell) -> bool:
        return cell.key in self.records

    def add(self, cell: Cell, record: dict) -> None:
        record = dict(record, cell=dataclasses.asdict(cell))
        line = (json.dumps(record, sort_keys=True, default=_plain) + "\n").encode()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[cell.key] = record

    def select(self, **fields) -> list[dict]:
        return [r for r in self.records.values() if all(r["cell"].get(k) == v for k, v in fields.items())]


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def compact_record(result: dict) -> dict:
    """The fields of a `train_run` result a grid keeps per run."""
    keys = (
        "wauc", "mean_auc", "wauc500", "mean_auc500", "domain_auc", "domain_auc500", "domain_test_size",
        "logloss", "params_backbone", "params_adapter", "params_gate", "epochs", "seconds", "config", "phases",
    )
    out = {k: result[k] for k in keys if k in result}
    for phase in out.get("phases", []):
        phase.pop("history", None)
    return out


def compact_multitask_record(result: dict) -> dict:
    """The fields of a `train_multitask_run` result a grid keeps per run (no per-epoch
    history, no command line)."""
    keys = (
        "kind", "model", "variant", "tasks", "overall_auc", "overall_logloss", "pair_auc", "pair_logloss",
        "pair_test_size", "domain_auc", "task_auc", "wauc", "mean_auc", "logloss", "pooled_task_auc",
        "undefined_auc_pairs", "val", "fusion_weights", "params_total", "params_embedding", "params_dense",
        "epochs", "best_epoch", "stopped_early", "train_examples_per_second", "seconds", "config", "dataset",
        "version",
    )
    return {k: result[k] for k in keys if k in result}


def run_grid(cells, store: RunStore, run_cell, compact=compact_record, metric: str = "wauc",
             metric_label: str = "WAUC") -> int:
    """Run every cell missing from `store`; returns the number of runs done.

    `compact(result)` picks what a record keeps (default: the single-task fields;
    `compact_multitask_record` for multi-task runs); `metric` (shown as
    `metric_label`) is the result key logged after each run.
    """
    todo = [c for c in cells if not store.has(c)]
    logging.info("%d of %d runs already done; %d to do.", len(cells) - len(todo), len(cells), len(todo))
    start = time.time()
    for i, cell in enumerate(todo, 1):
        logging.info("[%d/%d] %s %s seed %d ...", i, len(todo), cell.model, cell.adapter, cell.seed)
        record = run_cell(cell)
        store.add(cell, compact(record))
        elapsed = time.time() - start
        value = record.get(metric)
        logging.info(
            "[%d/%d] %s %s seed %d: %s %.4f (%.0fs; about %.0fs left)", i, len(todo), cell.model, cell.adapter,
            cell.seed, metric_label, float("nan") if value is None else value, record["seconds"],
            elapsed / i * (len(todo) - i),
        )
    return len(todo)


# ------------------------------------------------------------------ statistics
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)), -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_test_p_value(t: float, df: int) -> float:
    """Two-sided p-value of Student's t with `df` degrees of freedom."""
    if math.isnan(t) or df < 1:
        return float("nan")
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def paired_t_test(a, b) -> tuple[float, float]:
    """Paired two-sided t-test of `b - a`; returns `(t, p)`; NaN with fewer than 2 pairs."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = diff.size
    if n < 2:
        return float("nan"), float("nan")
    sd = diff.std(ddof=1)
    if sd == 0:
        return (float("inf") if diff.mean() != 0 else float("nan")), (0.0 if diff.mean() != 0 else float("nan"))
    t = diff.mean() / (sd / math.sqrt(n))
    return float(t), t_test_p_value(float(t), n - 1)


def welch_t_test(a, b) -> tuple[float, float]:
    """Two-sided Welch t-test of `mean(b) - mean(a)`; NaN with fewer than 2 values each."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return float("nan"), float("nan")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return float("nan"), float("nan")
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va**2) / (a.size - 1) + (vb**2) / (b.size - 1))
    return float(t), t_test_p_value(float(t), max(int(round(df)), 1))


def mean_std(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def fmt_pct(mean: float, std: float | None = None) -> str:
    """A metric in percent (the papers' convention), with its std over seeds."""
    if mean is None or math.isnan(mean):
        return "—"
    if std is None or math.isnan(std) or std == 0:
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "—"
    return f"{p:.3g}"


# ------------------------------------------------------------- driver helpers
def load_or_explain(program: str, dataset: str, data_dir, split: str, options: dict):
    """Load a grid's dataset; on missing raw files print how to run offline and return None."""
    import sys

    from mlora_tf.config import DataConfig, RunConfig
    from mlora_tf.runs.train import load_run_dataset

    try:
        return load_run_dataset(RunConfig(data=DataConfig(dataset=dataset, data_dir=data_dir, domain_split=split, options=options)))
    except FileNotFoundError as e:
        print(f"{program}: {e}", file=sys.stderr)
        print(
            f"Without MovieLens files, run the same grid offline: `make {program} DATASET=synthetic`, "
            f"or with MovieLens-100K: `make {program} DATASET=ml-100k DATA_DIR=...`.",
            file=sys.stderr,
        )
        return None


def explain_missing_data(program: str, error: Exception) -> None:
    """Print a loader's missing-files error and how to run `program` without those files."""
    import sys

    print(f"{program}: {error}", file=sys.stderr)
    print(
        f"Without MovieLens files, run the same grid offline: `make {program} DATASET=synthetic`, "
        f"or with MovieLens-100K: `make {program} DATASET=ml-100k DATA_DIR=...`.",
        file=sys.stderr,
    )


def load_multitask_or_explain(program: str, config):
    """Load a multi-task grid's dataset (`config`: a `MultiTaskRunConfig`); on missing
    raw files print how to run offline and return None. Bad options (ValueError) are
    printed too, without the hint, and give None."""
    import sys

    from mlora_tf.runs.multitask import load_multitask_dataset

    try:
        return load_multitask_dataset(config)
    except FileNotFoundError as e:
        explain_missing_data(program, e)
    except ValueError as e:
        print(f"{program}: {e}", file=sys.stderr)
    return None


def cell_config(cell: Cell, dataset: str, data_dir, options: dict, max_epochs: int, model: dict | None = None, **train):
    """The RunConfig of one grid cell; `model`: further `ModelConfig` fields (a
    protocol's embedding sizes), `train`: further `TrainConfig` fields."""
    from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig

    return RunConfig(
        data=DataConfig(dataset=dataset, data_dir=data_dir, domain_split=cell.split, options=dict(options)),
        model=ModelConfig(
            name=cell.model, adapter=cell.adapter, lora_reduce=cell.lora_reduce, as_shipped=cell.as_shipped,
            experts_per_domain=cell.experts_per_domain or 1,
            **({} if cell.hidden_units is None else {"hidden_units": tuple(cell.hidden_units)}),
            **(model or {}),
        ),
        train=TrainConfig(seed=cell.seed, max_epochs=max_epochs, **train),
    )


def by_seed(store: RunStore, **fields) -> dict:
    """`{seed: wauc}` of the runs matching `fields`."""
    return {r["cell"]["seed"]: r["wauc"] for r in store.select(**fields)}


def metric_value(record: dict, metric: str):
    """`record[metric]`, where a dotted name reaches into nested dicts
    (`"pair_auc.d0t1"`); None when absent."""
    value = record
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def metric_by_seed(store: RunStore, metric: str, **fields) -> dict:
    """`{seed: record's metric}` of the runs matching `fields` (see `metric_value`);
    runs without the metric (an undefined AUC) are left out."""
    out = {}
    for r in store.select(**fields):
        value = metric_value(r, metric)
        if value is not None:
            out[r["cell"]["seed"]] = value
    return out


def seed_comparison(store: RunStore, reference: dict, candidate: dict):
    """Mean ± std of two cells over seeds, their delta, and the paired p over shared seeds."""
    a, b = by_seed(store, **reference), by_seed(store, **candidate)
    seeds = sorted(set(a) & set(b))
    _, p = paired_t_test([a[s] for s in seeds], [b[s] for s in seeds])
    return mean_std(a.values()), mean_std(b.values()), p


def save_png(path: str, draw) -> None:
    """Draw with matplotlib (Agg) via `draw(ax)` and write the PNG atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def bar_chart(path: str, names, values, errors, ylabel: str, title: str) -> None:
    def draw(ax):
        ax.bar(names, values, yerr=errors, color=["tab:green" if v >= 0 else "tab:red" for v in values], capsize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)

    save_png(path, draw)


def grouped_bar_chart(path: str, names, series: dict, ylabel: str, title: str, errors: dict | None = None) -> None:
    """Side-by-side bars per name, one per series (`{label: values}`; None or NaN: no bar),
    `errors` optionally `{label: error bars}`."""
    def draw(ax):
        x = np.arange(len(names))
        width = 0.8 / max(len(series), 1)
        for i, (label, values) in enumerate(series.items()):
            ys = [float("nan") if v is None else v for v in values]
            yerr = (errors or {}).get(label)
            ax.bar(x + (i - (len(series) - 1) / 2) * width, ys, width, yerr=yerr, label=label, capsize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, list(names))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize="small")

    save_png(path, draw)


def line_chart(path: str, xs, series: dict, xlabel: str, ylabel: str, title: str, log2_x: bool = False) -> None:
    def draw(ax):
        for label, ys in series.items():
            ax.plot(xs, ys, marker="o", label=label)
        if log2_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs), [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize="small")

    save_png(path, draw)
