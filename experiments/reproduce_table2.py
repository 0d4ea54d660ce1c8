"""`make reproduce-table2`: the MLoRA paper's Table 2 grid (10 backbones x {Base, +MLoRA}).

Writes `RESULTS_DIR/<dataset tag>/runs.jsonl` (one record per run, appended as each
finishes; finished cells are skipped, so a killed reproduction resumes),
`table2.md` (mean +- std over seeds, Delta, paired t-tests, paper numbers beside ours,
added-parameter share) and `table2_delta.png`.

`--ablation=alpha` runs the temperature ablation instead (the paper's Figure 4: alpha in
8..256 for MLP, FiBiNET and DeepFM) and writes `alpha.md` and `alpha.png`.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver_flags  # noqa: E402,F401  (shared flags)
from paper_numbers import PAPER_TABLE2, paper_dataset_key  # noqa: E402

from mlora_tf.config import parse_options  # noqa: E402
from mlora_tf.io import atomic_write_bytes  # noqa: E402
from mlora_tf.reproduce import (  # noqa: E402
    Cell,
    RunStore,
    bar_chart,
    by_seed,
    cell_config,
    fmt_p,
    fmt_pct,
    line_chart,
    load_or_explain,
    mean_std,
    paired_t_test,
    run_grid,
    seed_comparison,
)

BACKBONES = ("mlp", "star", "wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
ALPHA_BACKBONES = ("mlp", "fibinet", "deepfm")
ALPHAS = (8, 16, 32, 64, 128, 256)

flags.DEFINE_string("split", "gender", "MovieLens domain split: gender, age, occupation.")
flags.DEFINE_list("models", list(BACKBONES), "Backbones of the grid.")
flags.DEFINE_enum("ablation", "none", ["none", "alpha"], "alpha: the temperature ablation (Figure 4).")
flags.DEFINE_string("results_dir", "results/table2", "Where the per-dataset folders go.")
flags.DEFINE_boolean("as_shipped", False, "Build xdeepfm as the original did (DeepFM); footnoted in the table.")
FLAGS = flags.FLAGS


def dataset_tag() -> str:
    tag = FLAGS.dataset if FLAGS.dataset == "synthetic" else f"{FLAGS.dataset}-{FLAGS.split}"
    return tag + ("-as-shipped" if FLAGS.as_shipped else "")


def _options() -> dict:
    return parse_options(FLAGS.data_options)


def cells() -> list[Cell]:
    seeds = [FLAGS.base_seed + i for i in range(FLAGS.seeds)]
    tag = dataset_tag()
    if FLAGS.ablation == "alpha":
        models = [m for m in FLAGS.models if m in ALPHA_BACKBONES] or list(ALPHA_BACKBONES)
        return [
            Cell(tag, FLAGS.split, m, "mlora", s, lora_reduce=float(a)) for m in models for a in ALPHAS for s in seeds
        ] + [Cell(tag, FLAGS.split, m, "none", s) for m in models for s in seeds]
    return [
        Cell(tag, FLAGS.split, m, adapter, s, as_shipped=FLAGS.as_shipped and m == "xdeepfm")
        for m in FLAGS.models
        for adapter in ("none", "mlora")
        for s in seeds
    ]


def make_runner(dataset):
    from mlora_tf.run import train_run

    def run_cell(cell: Cell) -> dict:
        return train_run(cell_config(cell, FLAGS.dataset, FLAGS.data_dir, _options(), FLAGS.max_epochs), dataset=dataset)

    return run_cell


# ---------------------------------------------------------------------- tables
def table2_markdown(store: RunStore, models, tag: str, paper_key: str | None) -> str:
    lines = [
        f"# MLoRA Table 2 reproduction: {tag}",
        "",
        "Test WAUC in percent (mean ± std over seeds). Delta = +MLoRA − Base. "
        "p (seeds): paired t-test over seeds within a backbone. Added params: adapter "
        "parameters as a share of the Base model's trainable parameters.",
        "",
        "| backbone | Base | +MLoRA | Delta | p (seeds) | added params | paper Base | paper +MLoRA | paper Delta |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base_means, mlora_means, footnotes = [], [], []
    for model in models:
        base = store.select(model=model, adapter="none", lora_reduce=None)
        mlora = store.select(model=model, adapter="mlora", lora_reduce=None)
        if not base and not mlora:
            continue
        (b_mean, b_std), (m_mean, m_std), p_seeds = seed_comparison(
            store, dict(model=model, adapter="none", lora_reduce=None), dict(model=model, adapter="mlora", lora_reduce=None)
        )
        share = (
            mlora[0]["params_adapter"] / base[0]["params_backbone"] if (mlora and base and base[0]["params_backbone"]) else float("nan")
        )
        paper = PAPER_TABLE2.get(paper_key, {}).get(model, {}) if paper_key else {}
        p_base, p_mlora = paper.get("base"), paper.get("mlora")
        label = model
        if any(r["cell"].get("as_shipped") for r in base + mlora):
            label += " ¹"
            footnotes.append(
                "¹ built as the original code does (`--as_shipped`): every xDeepFM config of the original builds DeepFM."
            )
        delta = m_mean - b_mean
        lines.append(
            f"| {label} | {fmt_pct(b_mean, b_std)} | {fmt_pct(m_mean, m_std)} | {100 * delta:+.2f} | {fmt_p(p_seeds)} | "
            f"{100 * share:.1f}% | {_paper(p_base)} | {_paper(p_mlora)} | "
            f"{_paper(p_mlora - p_base, signed=True) if None not in (p_base, p_mlora) else '—'} |"
        )
        if base and mlora:
            base_means.append(b_mean)
            mlora_means.append(m_mean)
    t, p = paired_t_test(base_means, mlora_means)
    lines += [
        "",
        f"Paired t-test of +MLoRA vs Base across {len(base_means)} backbones (per-backbone means): "
        f"t = {t:.3f}, p = {fmt_p(p)}.",
    ]
    if paper_key is None:
        lines.append("The paper has no column for this dataset; its numbers are left out.")
    elif not PAPER_TABLE2.get(paper_key):
        lines.append(f"Paper numbers for {paper_key}: not available offline (see experiments/paper_numbers.py).")
    lines += sorted(set(footnotes))
    return "\n".join(lines) + "\n"


def _paper(value, signed=False):
    if value is None:
        return "—"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def alpha_markdown(store: RunStore, models, tag: str) -> str:
    lines = [
        f"# MLoRA temperature ablation (Figure 4): {tag}",
        "",
        "Test WAUC in percent (mean ± std over seeds) per alpha; rank = max(units // alpha, 1).",
        "",
        "| backbone | Base | " + " | ".join(f"α={a}" for a in ALPHAS) + " |",
        "|---|---|" + "---|" * len(ALPHAS),
    ]
    for model in models:
        base = mean_std(by_seed(store, model=model, adapter="none").values())
        row = [fmt_pct(*mean_std(by_seed(store, model=model, adapter="mlora", lora_reduce=float(a)).values())) for a in ALPHAS]
        lines.append(f"| {model} | {fmt_pct(*base)} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- plots
def plot_delta(store: RunStore, models, path: str, title: str) -> None:
    names, deltas, errors = [], [], []
    for model in models:
        base = by_seed(store, model=model, adapter="none", lora_reduce=None)
        lora = by_seed(store, model=model, adapter="mlora", lora_reduce=None)
        diffs = [100 * (lora[s] - base[s]) for s in sorted(set(base) & set(lora))]
        if diffs:
            names.append(model)
            deltas.append(sum(diffs) / len(diffs))
            errors.append(mean_std(diffs)[1])
    bar_chart(path, names, deltas, errors, "WAUC delta (+MLoRA − Base), %", title)


def plot_alpha(store: RunStore, models, path: str, title: str) -> None:
    series = {
        model: [100 * mean_std(by_seed(store, model=model, adapter="mlora", lora_reduce=float(a)).values())[0] for a in ALPHAS]
        for model in models
    }
    line_chart(path, ALPHAS, series, "temperature α (lora_reduce)", "test WAUC, %", title, log2_x=True)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from mlora_tf.runtime import configure_threads

    configure_threads()
    dataset = load_or_explain("reproduce-table2", FLAGS.dataset, FLAGS.data_dir, FLAGS.split, _options())
    if dataset is None:
        return 2
    unknown = [m for m in FLAGS.models if m not in BACKBONES]
    if unknown:
        print(f"reproduce-table2: unknown models {unknown}; valid: {', '.join(BACKBONES)}", file=sys.stderr)
        return 2
    tag = dataset_tag()
    folder = os.path.join(FLAGS.results_dir if FLAGS.ablation == "none" else FLAGS.results_dir + "_alpha", tag)
    store = RunStore(os.path.join(folder, "runs.jsonl"))
    grid = cells()
    run_grid(grid, store, make_runner(dataset))
    models = list(dict.fromkeys(c.model for c in grid))
    if FLAGS.ablation == "alpha":
        text = alpha_markdown(store, models, tag)
        atomic_write_bytes(os.path.join(folder, "alpha.md"), text.encode())
        if FLAGS.plot:
            plot_alpha(store, models, os.path.join(folder, "alpha.png"), f"Temperature ablation, {tag}")
    else:
        text = table2_markdown(store, models, tag, paper_dataset_key(FLAGS.dataset, FLAGS.split))
        atomic_write_bytes(os.path.join(folder, "table2.md"), text.encode())
        if FLAGS.plot:
            plot_delta(store, models, os.path.join(folder, "table2_delta.png"), f"MLoRA − Base, {tag}")
    print(text)
    print(f"Results in {folder}")
    return 0


if __name__ == "__main__":
    app.run(main)
