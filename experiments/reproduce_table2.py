"""`make reproduce-table2`: the MLoRA paper's Table 2 grid (10 backbones x {Base, +MLoRA}).

Writes `RESULTS_DIR/<dataset tag>/runs.jsonl` (one record per run, appended as each
finishes; finished cells are skipped, so a killed reproduction resumes),
`table2.md` (mean +- std over seeds, Delta, paired t-tests, added-parameter share, the
paper's Base / +MLoRA / Delta beside ours and its Avg row beside our average) and
`table2_delta.png` (our Delta and the paper's per backbone). On Taobao with 20 or 30
themes the paper's numbers are its Table 4; on Taobao-10 the driver also writes
`table3.md` (per-domain AUC of MLP, FiBiNET and DeepFM beside the paper's Table 3).

`--ablation=alpha` runs the temperature ablation instead (the paper's Figure 4: alpha in
8..256 for MLP, FiBiNET and DeepFM) and writes `alpha.md` and `alpha.png`.
`--ablation=widths` runs MLP+MLoRA over the hidden widths of the paper's Table 5
(256-128-64 ... 2048-1024-512) and writes `widths.md` (and `widths.png`).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver_flags  # noqa: E402,F401  (shared flags)
from paper_numbers import (  # noqa: E402
    fmt_paper,
    PAPER_FIGURE4_NOTE,
    PAPER_FIGURE4_OPTIMA,
    PAPER_TABLE2,
    PAPER_TABLE2_AVG,
    PAPER_TABLE2_AVG_DELTA,
    PAPER_TABLE2_AVG_DELTA_MEAN,
    PAPER_TABLE2_DELTA,
    PAPER_TABLE3,
    PAPER_TABLE3_LABELS,
    PAPER_TABLE4,
    PAPER_TABLE4_AVG,
    PAPER_TABLE5,
    PAPER_TABLE5_DATASET,
    paper_dataset_key,
)
from reproduce_common import (  # noqa: E402
    Cell,
    RunStore,
    bar_chart,
    by_seed,
    cell_config,
    fmt_p,
    fmt_pct,
    grouped_bar_chart,
    line_chart,
    load_or_explain,
    mean_std,
    paired_t_test,
    run_grid,
    save_png,
    seed_comparison,
)

from mlora_tf.config import parse_options  # noqa: E402
from mlora_tf.io import atomic_write_bytes  # noqa: E402

BACKBONES = ("mlp", "star", "wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
ALPHA_BACKBONES = ("mlp", "fibinet", "deepfm")
ALPHAS = (8, 16, 32, 64, 128, 256)
WIDTHS = ((256, 128, 64), (512, 256, 128), (1024, 512, 256), (1024, 1024, 512), (2048, 1024, 512))  # Table 5
TABLE3_BACKBONES = ("mlp", "fibinet", "deepfm")

flags.DEFINE_string("split", "gender", "MovieLens domain split: gender, age, occupation.")
flags.DEFINE_list("models", list(BACKBONES), "Backbones of the grid.")
flags.DEFINE_enum("ablation", "none", ["none", "alpha", "widths"],
                  "alpha: the temperature ablation (Figure 4); widths: MLP+MLoRA by hidden widths (Table 5).")
flags.DEFINE_string("results_dir", "results/table2", "Where the per-dataset folders go.")
flags.DEFINE_boolean("as_shipped", False, "Build xdeepfm as the original did (DeepFM); footnoted in the table.")
FLAGS = flags.FLAGS


def dataset_tag() -> str:
    tag = FLAGS.dataset if FLAGS.dataset == "synthetic" else f"{FLAGS.dataset}-{FLAGS.split}"
    return tag + ("-as-shipped" if FLAGS.as_shipped else "") + ("-original-loop" if FLAGS.loop == "original" else "")


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
    if FLAGS.ablation == "widths":
        return [Cell(tag, FLAGS.split, "mlp", "mlora", s, hidden_units=w) for w in WIDTHS for s in seeds]
    return [
        Cell(tag, FLAGS.split, m, adapter, s, as_shipped=FLAGS.as_shipped and m == "xdeepfm")
        for m in FLAGS.models
        for adapter in ("none", "mlora")
        for s in seeds
    ]


def make_runner(dataset):
    from mlora_tf.runs.train import train_run

    def run_cell(cell: Cell) -> dict:
        return train_run(cell_config(cell, FLAGS.dataset, FLAGS.data_dir, _options(), FLAGS.max_epochs, loop=FLAGS.loop), dataset=dataset)

    return run_cell


# ---------------------------------------------------------------------- tables
PAPER_SOURCE = "MLoRA (Yang et al., RecSys 2024)"


def paper_table(paper_key: str | None):
    """The paper's numbers for a dataset key: `(rows, printed Δ, Avg, table name)`;
    rows `{backbone: {"base", "mlora"}}`, Δ `{backbone: Δ}` ({} where the paper prints
    none), Avg `{"base", "mlora"[, "delta"]}`; `({}, {}, {}, None)` without numbers."""
    if paper_key in PAPER_TABLE2:
        return PAPER_TABLE2[paper_key], PAPER_TABLE2_DELTA.get(paper_key, {}), PAPER_TABLE2_AVG.get(paper_key, {}), "Table 2"
    if paper_key in PAPER_TABLE4:
        return PAPER_TABLE4[paper_key], {}, PAPER_TABLE4_AVG.get(paper_key, {}), "Table 4"
    return {}, {}, {}, None


def paper_delta(paper_key: str | None, model: str):
    """The paper's Δ (+MLoRA − Base) of a backbone: as printed (Table 2), else the
    difference of its printed Base and +MLoRA (Table 4 prints no Δ); None if unknown."""
    rows, deltas, _, _ = paper_table(paper_key)
    if model in deltas:
        return deltas[model]
    row = rows.get(model, {})
    if row.get("base") is None or row.get("mlora") is None:
        return None
    return round(row["mlora"] - row["base"], 2)


def table2_markdown(store: RunStore, models, tag: str, paper_key: str | None) -> str:
    rows, printed_deltas, paper_avg, table = paper_table(paper_key)
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
        paper = rows.get(model, {})
        label = model
        if any(r["cell"].get("as_shipped") for r in base + mlora):
            label += " ¹"
            footnotes.append(
                "¹ built as the original code does (`--as_shipped`): every xDeepFM config of the original builds DeepFM."
            )
        delta = m_mean - b_mean
        lines.append(
            f"| {label} | {fmt_pct(b_mean, b_std)} | {fmt_pct(m_mean, m_std)} | {_ours_delta(delta)} | {fmt_p(p_seeds)} | "
            f"{100 * share:.1f}% | {fmt_paper(paper.get('base'))} | {fmt_paper(paper.get('mlora'))} | "
            f"{fmt_paper(paper_delta(paper_key, model), signed=True)} |"
        )
        if base and mlora:
            base_means.append(b_mean)
            mlora_means.append(m_mean)
    ours_base = sum(base_means) / len(base_means) if base_means else float("nan")
    ours_mlora = sum(mlora_means) / len(mlora_means) if mlora_means else float("nan")
    avg_delta = paper_avg.get("delta")
    if avg_delta is None and None not in (paper_avg.get("base"), paper_avg.get("mlora")):
        avg_delta = round(paper_avg["mlora"] - paper_avg["base"], 2)
    lines.append(
        f"| Avg | {fmt_pct(ours_base)} | {fmt_pct(ours_mlora)} | {_ours_delta(ours_mlora - ours_base)} | — | — | "
        f"{fmt_paper(paper_avg.get('base'))} | {fmt_paper(paper_avg.get('mlora'))} | {fmt_paper(avg_delta, signed=True)} |"
    )
    t, p = paired_t_test(base_means, mlora_means)
    lines += [
        "",
        f"Paired t-test of +MLoRA vs Base across {len(base_means)} backbones (per-backbone means): "
        f"t = {t:.3f}, p = {fmt_p(p)}.",
        f"Avg: ours, the mean over the {len(base_means)} backbones with both cells; the paper's, its printed Avg "
        f"over its {len(rows) or 10} backbones.",
    ]
    if table is None:
        lines.append("The paper has no column for this dataset; its numbers are left out (—).")
    else:
        lines.append(f"Paper: {PAPER_SOURCE} {table}, {paper_key}, as printed.")
        if not printed_deltas:
            lines.append(f"The paper's {table} prints no Δ: paper Delta = its +MLoRA − its Base.")
        if table == "Table 2":
            avg_d = ", ".join(f"{m} {v:+.2f}" for m, v in PAPER_TABLE2_AVG_DELTA.items())
            lines.append(
                f"The paper's Avg(Δ) over its three datasets (Taobao-10, Amazon-6, Movielens-gen): {avg_d}; "
                f"Avg {PAPER_TABLE2_AVG_DELTA_MEAN:+.2f}."
            )
    lines += sorted(set(footnotes))
    return "\n".join(lines) + "\n"


def _ours_delta(delta) -> str:
    return "—" if delta != delta else f"{100 * delta:+.2f}"


def _mean_domain_auc(records, name: str):
    values = [r.get("domain_auc", {}).get(name) for r in records]
    values = [v for v in values if v is not None]
    return mean_std(values)


def table3_markdown(store: RunStore, tag: str, domains=None) -> str:
    """The paper's Table 3 (Taobao-10, per-domain AUC of MLP, FiBiNET, DeepFM, Base and
    +MLoRA) with ours beside it. `domains`: our domain names in domain-id order (the
    dataset's `domain_names`); None: the records' names in natural order."""
    if domains is None:
        names = set()
        for r in store.records.values():
            names |= set(r.get("domain_auc", {}))
        domains = sorted(names, key=_natural)
    domains = list(domains)
    lines = [
        f"# MLoRA Table 3 reproduction: {tag}",
        "",
        "Test AUC in percent per domain (mean over seeds), then WAUC (mean ± std over seeds); "
        "each of our rows is followed by the paper's.",
        "",
        "| approach | " + " | ".join(str(k) for k in range(len(domains))) + " | WAUC |",
        "|---|" + "---|" * (len(domains) + 1),
    ]
    for model in TABLE3_BACKBONES:
        for adapter, row in (("none", "base"), ("mlora", "mlora")):
            label = PAPER_TABLE3_LABELS[model] + ("+MLoRA" if row == "mlora" else "")
            records = store.select(model=model, adapter=adapter, lora_reduce=None)
            if records:
                cells = [fmt_pct(_mean_domain_auc(records, name)[0]) for name in domains]
                wauc = fmt_pct(*mean_std(by_seed(store, model=model, adapter=adapter, lora_reduce=None).values()))
            else:
                cells, wauc = ["—"] * len(domains), "—"
            lines.append(f"| {label} (ours) | " + " | ".join(cells) + f" | {wauc} |")
            paper = PAPER_TABLE3[model][row]
            paper_cells = [fmt_paper(paper["domains"][k]) if k < len(paper["domains"]) else "—" for k in range(len(domains))]
            lines.append(f"| {label} (paper) | " + " | ".join(paper_cells) + f" | {fmt_paper(paper['wauc'])} |")
    lines += [
        "",
        f"Paper: {PAPER_SOURCE} Table 3, Taobao-10, as printed. Domain k = our domain id k: "
        + ", ".join(f"{k} {name}" for k, name in enumerate(domains)) + ".",
    ]
    return "\n".join(lines) + "\n"


def _natural(name: str):
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def alpha_markdown(store: RunStore, models, tag: str) -> str:
    lines = [
        f"# MLoRA temperature ablation (Figure 4): {tag}",
        "",
        "Test WAUC in percent (mean ± std over seeds) per alpha; rank = max(units // alpha, 1). "
        "best α: the α of the highest mean (ours) and the text's optimum (paper).",
        "",
        "| backbone | Base | " + " | ".join(f"α={a}" for a in ALPHAS) + " | best α | paper ¹ | paper best α |",
        "|---|---|" + "---|" * (len(ALPHAS) + 3),
    ]
    for model in models:
        base = mean_std(by_seed(store, model=model, adapter="none").values())
        stats = [mean_std(by_seed(store, model=model, adapter="mlora", lora_reduce=float(a)).values()) for a in ALPHAS]
        row = [fmt_pct(*st) for st in stats]
        present = [(st[0], a) for st, a in zip(stats, ALPHAS) if st[0] == st[0]]
        best = str(max(present)[1]) if present else "—"
        optimum = PAPER_FIGURE4_OPTIMA.get(model)
        lines.append(
            f"| {model} | {fmt_pct(*base)} | " + " | ".join(row)
            + f" | {best} | — | {'—' if optimum is None else optimum} |"
        )
    lines += ["", f"¹ {PAPER_FIGURE4_NOTE}: the paper's Figure 4 (Taobao-10) has no printed numbers."]
    return "\n".join(lines) + "\n"


def _widths_label(widths) -> str:
    return "-".join(str(u) for u in widths)


def widths_by_seed(store: RunStore, widths) -> dict:
    """`{seed: wauc}` of the MLP+MLoRA runs with these hidden widths."""
    return {
        r["cell"]["seed"]: r["wauc"]
        for r in store.select(model="mlp", adapter="mlora", lora_reduce=None)
        if tuple(r["cell"].get("hidden_units") or ()) == tuple(widths)
    }


def widths_markdown(store: RunStore, tag: str, paper_key: str | None) -> str:
    lines = [
        f"# MLoRA Table 5 reproduction (MLP+MLoRA by hidden widths): {tag}",
        "",
        "Test WAUC in percent (mean ± std over seeds) of MLP+MLoRA per hidden-layer widths.",
        "",
        f"| widths | MLP+MLoRA | paper ({PAPER_TABLE5_DATASET}) |",
        "|---|---|---|",
    ]
    for widths in WIDTHS:
        ours = fmt_pct(*mean_std(widths_by_seed(store, widths).values()))
        lines.append(f"| {_widths_label(widths)} | {ours} | {fmt_paper(PAPER_TABLE5.get(tuple(widths)))} |")
    lines += ["", f"Paper: {PAPER_SOURCE} Table 5, MLP+MLoRA on {PAPER_TABLE5_DATASET}, as printed."]
    if paper_key != PAPER_TABLE5_DATASET:
        lines.append(f"The paper's Table 5 is on {PAPER_TABLE5_DATASET}; this run is on {tag}, so its column is "
                     "for orientation only.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------- plots
def plot_delta(store: RunStore, models, path: str, title: str, paper_key: str | None = None) -> None:
    """Our Delta per backbone (error bars: std over seeds), and the paper's beside it
    where it has numbers for this dataset."""
    names, deltas, errors, paper = [], [], [], []
    for model in models:
        base = by_seed(store, model=model, adapter="none", lora_reduce=None)
        lora = by_seed(store, model=model, adapter="mlora", lora_reduce=None)
        diffs = [100 * (lora[s] - base[s]) for s in sorted(set(base) & set(lora))]
        if diffs:
            names.append(model)
            deltas.append(sum(diffs) / len(diffs))
            errors.append(mean_std(diffs)[1])
            paper.append(paper_delta(paper_key, model))
    ylabel = "WAUC delta (+MLoRA − Base), %"
    if any(v is not None for v in paper):
        grouped_bar_chart(path, names, {"ours": deltas, f"paper ({paper_key})": paper}, ylabel, title,
                          errors={"ours": errors})
    else:
        bar_chart(path, names, deltas, errors, ylabel, title)


def plot_widths(store: RunStore, path: str, title: str) -> None:
    """MLP+MLoRA WAUC per widths, ours (error bars: std over seeds) and the paper's."""
    labels = [_widths_label(w) for w in WIDTHS]
    stats = [mean_std(widths_by_seed(store, w).values()) for w in WIDTHS]
    paper = [PAPER_TABLE5.get(tuple(w), float("nan")) for w in WIDTHS]

    def draw(ax):
        xs = list(range(len(WIDTHS)))
        ax.errorbar(xs, [100 * m for m, _ in stats], yerr=[100 * sd for _, sd in stats], marker="o", capsize=3, label="ours")
        ax.plot(xs, paper, marker="s", linestyle="--", label=f"paper ({PAPER_TABLE5_DATASET})")
        ax.set_xticks(xs, labels)
        ax.set_xlabel("hidden widths")
        ax.set_ylabel("MLP+MLoRA test WAUC, %")
        ax.set_title(title)
        ax.legend(fontsize="small")

    save_png(path, draw)


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
    suffix = {"none": "", "alpha": "_alpha", "widths": "_widths"}[FLAGS.ablation]
    folder = os.path.join(FLAGS.results_dir + suffix, tag)
    store = RunStore(os.path.join(folder, "runs.jsonl"))
    grid = cells()
    run_grid(grid, store, make_runner(dataset))
    models = list(dict.fromkeys(c.model for c in grid))
    paper_key = paper_dataset_key(FLAGS.dataset, FLAGS.split)
    if FLAGS.ablation == "alpha":
        text = alpha_markdown(store, models, tag)
        atomic_write_bytes(os.path.join(folder, "alpha.md"), text.encode())
        if FLAGS.plot:
            plot_alpha(store, models, os.path.join(folder, "alpha.png"), f"Temperature ablation, {tag}")
    elif FLAGS.ablation == "widths":
        text = widths_markdown(store, tag, paper_key)
        atomic_write_bytes(os.path.join(folder, "widths.md"), text.encode())
        if FLAGS.plot:
            plot_widths(store, os.path.join(folder, "widths.png"), f"MLP+MLoRA by hidden widths, {tag}")
    else:
        text = table2_markdown(store, models, tag, paper_key)
        atomic_write_bytes(os.path.join(folder, "table2.md"), text.encode())
        if paper_key == "taobao-10":
            table3 = table3_markdown(store, tag, getattr(dataset, "domain_names", None))
            atomic_write_bytes(os.path.join(folder, "table3.md"), table3.encode())
            text += "\n" + table3
        if FLAGS.plot:
            plot_delta(store, models, os.path.join(folder, "table2_delta.png"), f"MLoRA − Base, {tag}", paper_key)
    print(text)
    print(f"Results in {folder}")
    return 0


if __name__ == "__main__":
    app.run(main)
