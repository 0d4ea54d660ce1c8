"""`make reproduce-moe-table1` and `make reproduce-moe-experts`: the MoE-MLoRA paper's
Table 1 (Base, MLoRA, MoE-MLoRA per backbone and domain split) and Figure 2 (2, 4, 6, 8
experts on the gender split).

Same machinery as `reproduce_table2.py`: one record per run in
`RESULTS_DIR/<figure>/<dataset>/runs.jsonl`, finished cells skipped (resume), a
Markdown table with mean ± std over seeds, Delta = MoE-MLoRA − MLoRA, paired t-tests,
the paper's Base / MLoRA / MoE-MLoRA / Delta beside ours for every split block it has
(MovieLens-1M gender, age, occupation; Taobao theme_10, theme_20), each block's Avg row
beside the paper's Avg, and a PNG chart (our Delta and the paper's). The paper gives
Figure 2 as a plot only: `experts.md` prints "—" for it and says so.
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
    PAPER_MOE_FIGURE2_NOTE,
    PAPER_MOE_TABLE1,
    PAPER_MOE_TABLE1_AVG,
    PAPER_MOE_TABLE1_AVG_DELTA,
    PAPER_MOE_TABLE1_AVG_DELTA_MEAN,
    PAPER_MOE_TABLE1_DELTA,
    PAPER_MOE_TABLE1_LABELS,
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
    seed_comparison,
)

from mlora_tf.config import parse_options  # noqa: E402
from mlora_tf.io import atomic_write_bytes  # noqa: E402

BACKBONES = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")  # the paper's eight
EXPERTS_PER_DOMAIN = (1, 2, 3, 4)  # 2, 4, 6, 8 experts on the two-domain gender split

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This driver's own flags (defined when it runs, so tests can import its tables
    next to the other drivers, which define flags of the same names)."""
    flags.DEFINE_enum("figure", "table1", ["table1", "experts"], "table1: Table 1; experts: Figure 2.")
    flags.DEFINE_list("splits", ["gender", "age", "occupation"],
                      "Domain splits of Table 1 (MovieLens: gender, age, occupation; Taobao: theme_10, theme_20); "
                      "Figure 2 uses gender.")
    flags.DEFINE_list("models", list(BACKBONES), "Backbones.")
    flags.DEFINE_string("results_dir", "results/moe", "Where the per-figure, per-dataset folders go.")
    flags.DEFINE_enum("moe_schedule", "paper", ["paper", "as_executed"], "MoE-MLoRA schedule.")


def _splits() -> list[str]:
    if FLAGS.dataset == "synthetic":
        return ["synthetic"]
    return ["gender"] if FLAGS.figure == "experts" else list(FLAGS.splits)


def _tag() -> str:
    return (FLAGS.dataset + ("" if FLAGS.moe_schedule == "paper" else "-as-executed")
            + ("-original-loop" if FLAGS.loop == "original" else ""))


def cells() -> list[Cell]:
    seeds = [FLAGS.base_seed + i for i in range(FLAGS.seeds)]
    out = []
    for split in _splits():
        for model in FLAGS.models:
            for seed in seeds:
                if FLAGS.figure == "table1":
                    out += [Cell(_tag(), split, model, a, seed) for a in ("none", "mlora")]
                    out.append(Cell(_tag(), split, model, "moe", seed, experts_per_domain=1))
                else:
                    out.append(Cell(_tag(), split, model, "mlora", seed))
                    out += [Cell(_tag(), split, model, "moe", seed, experts_per_domain=k) for k in EXPERTS_PER_DOMAIN]
    return out


PAPER_SOURCE = "MoE-MLoRA (Yaggel et al., arXiv 2506.07563)"


def _delta(value) -> str:
    return "—" if value != value else f"{100 * value:+.2f}"


def _mean(values) -> float:
    values = [v for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


def table1_markdown(store: RunStore, splits, models, dataset: str | None = None, tag: str | None = None,
                    schedule: str | None = None) -> str:
    """Table 1: one block per split (a row per backbone, then the block's Avg), the
    paper's numbers of `(dataset, split)` beside ours. `dataset`, `tag`, `schedule`
    default to the flags'."""
    dataset = FLAGS.dataset if dataset is None else dataset
    tag = _tag() if tag is None else tag
    schedule = FLAGS.moe_schedule if schedule is None else schedule
    lines = [
        f"# MoE-MLoRA Table 1 reproduction: {tag}",
        "",
        "Test WAUC in percent (mean ± std over seeds). MoE-MLoRA: one expert per domain, "
        f"schedule `{schedule}`. Delta = MoE-MLoRA − MLoRA; p (seeds): paired t-test over seeds.",
        "",
        "| split | backbone | Base | MLoRA | MoE-MLoRA | Delta | p (seeds) "
        "| paper Base | paper MLoRA | paper MoE-MLoRA | paper Delta |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    mlora_means, moe_means, with_paper = [], [], []
    for split in splits:
        key = (dataset, split)
        paper_rows, paper_deltas, paper_avg = (PAPER_MOE_TABLE1.get(key, {}), PAPER_MOE_TABLE1_DELTA.get(key, {}),
                                               PAPER_MOE_TABLE1_AVG.get(key, {}))
        if paper_rows:
            with_paper.append(key)
        block = {"base": [], "mlora": [], "moe": []}
        for model in models:
            base = mean_std(by_seed(store, split=split, model=model, adapter="none").values())
            (m_mean, m_std), (e_mean, e_std), p = seed_comparison(
                store, dict(split=split, model=model, adapter="mlora", experts_per_domain=None),
                dict(split=split, model=model, adapter="moe", experts_per_domain=1),
            )
            paper = paper_rows.get(model, {})
            lines.append(
                f"| {split} | {model} | {fmt_pct(*base)} | {fmt_pct(m_mean, m_std)} | {fmt_pct(e_mean, e_std)} | "
                f"{_delta(e_mean - m_mean)} | {fmt_p(p)} | {fmt_paper(paper.get('base'))} | {fmt_paper(paper.get('mlora'))} | "
                f"{fmt_paper(paper.get('moe'))} | {fmt_paper(paper_deltas.get(model), signed=True)} |"
            )
            block["base"].append(base[0])
            if m_mean == m_mean and e_mean == e_mean:  # both present (not NaN)
                mlora_means.append(m_mean)
                moe_means.append(e_mean)
                block["mlora"].append(m_mean)
                block["moe"].append(e_mean)
        b_avg, m_avg, e_avg = _mean(block["base"]), _mean(block["mlora"]), _mean(block["moe"])
        lines.append(
            f"| {split} | Avg | {fmt_pct(b_avg)} | {fmt_pct(m_avg)} | {fmt_pct(e_avg)} | {_delta(e_avg - m_avg)} | — | "
            f"{fmt_paper(paper_avg.get('base'))} | {fmt_paper(paper_avg.get('mlora'))} | {fmt_paper(paper_avg.get('moe'))} | "
            f"{fmt_paper(paper_avg.get('delta'), signed=True)} |"
        )
    t, p = paired_t_test(mlora_means, moe_means)
    lines += [
        "",
        f"Paired t-test of MoE-MLoRA vs MLoRA across {len(moe_means)} (split, backbone) rows: t = {t:.3f}, p = {fmt_p(p)}.",
        "Avg: ours, the mean over the backbones run in the block (MLoRA / MoE-MLoRA: those with both); "
        "the paper's, its printed Avg over its eight backbones.",
    ]
    if with_paper:
        blocks = ", ".join(f"{split} = {PAPER_MOE_TABLE1_LABELS[(d, split)]}" for d, split in with_paper)
        avg_d = ", ".join(f"{m} {v:+.2f}" for m, v in PAPER_MOE_TABLE1_AVG_DELTA.items())
        lines += [
            f"Paper: {PAPER_SOURCE} Table 1, as printed ({blocks}). "
            "Its MovieLens-gender numbers are its own, not the MLoRA paper's Table 2.",
            f"The paper's Avg(Δ) over its datasets (Movielens splits averaged, Taobao splits averaged, then the "
            f"two): {avg_d}; Avg {PAPER_MOE_TABLE1_AVG_DELTA_MEAN:+.2f}.",
        ]
    missing = [split for split in splits if (dataset, split) not in PAPER_MOE_TABLE1]
    if missing:
        lines.append(f"The paper has no block for {dataset} {', '.join(missing)}: its columns are left out (—).")
    return "\n".join(lines) + "\n"


def experts_markdown(store: RunStore, models, tag: str | None = None, split: str | None = None) -> str:
    tag = _tag() if tag is None else tag
    split = _splits()[0] if split is None else split
    lines = [
        f"# MoE-MLoRA experts per domain (Figure 2): {tag}, gender split",
        "",
        "Test WAUC in percent (mean ± std over seeds); experts = experts per domain × domains.",
        "",
        "| backbone | MLoRA | " + " | ".join(f"{k} per domain" for k in EXPERTS_PER_DOMAIN) + " | paper ¹ |",
        "|---|---|" + "---|" * (len(EXPERTS_PER_DOMAIN) + 1),
    ]
    for model in models:
        mlora = fmt_pct(*mean_std(by_seed(store, split=split, model=model, adapter="mlora").values()))
        row = [fmt_pct(*mean_std(by_seed(store, split=split, model=model, adapter="moe", experts_per_domain=k).values()))
               for k in EXPERTS_PER_DOMAIN]
        lines.append(f"| {model} | {mlora} | " + " | ".join(row) + " | — |")
    lines += ["", f"¹ {PAPER_MOE_FIGURE2_NOTE}: the paper's Figure 2 has no printed numbers."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from mlora_tf.runs.train import train_run
    from mlora_tf.runtime import configure_threads

    configure_threads()
    options = parse_options(FLAGS.data_options)
    unknown = [m for m in FLAGS.models if m not in BACKBONES]
    if unknown:
        print(f"reproduce-moe: MoE-MLoRA is defined for {', '.join(BACKBONES)}; received {unknown}", file=sys.stderr)
        return 2
    folder = os.path.join(FLAGS.results_dir, FLAGS.figure, _tag())
    store = RunStore(os.path.join(folder, "runs.jsonl"))
    grid = cells()
    program = "reproduce-moe-" + ("table1" if FLAGS.figure == "table1" else "experts")
    for split in _splits():
        dataset = load_or_explain(program, FLAGS.dataset, FLAGS.data_dir, "gender" if split == "synthetic" else split, options)
        if dataset is None:
            return 2

        def run_cell(cell, dataset=dataset):
            config = cell_config(cell, FLAGS.dataset, FLAGS.data_dir, options, FLAGS.max_epochs, moe_schedule=FLAGS.moe_schedule,
                                 loop=FLAGS.loop)
            return train_run(config, dataset=dataset)

        run_grid([c for c in grid if c.split == split], store, run_cell)
    models = list(dict.fromkeys(c.model for c in grid))
    if FLAGS.figure == "table1":
        text = table1_markdown(store, _splits(), models)
        name = "table1"
    else:
        text = experts_markdown(store, models)
        name = "experts"
    atomic_write_bytes(os.path.join(folder, f"{name}.md"), text.encode())
    if FLAGS.plot:
        png = os.path.join(folder, f"{name}.png")
        if FLAGS.figure == "table1":
            split = _splits()[0]
            deltas = [
                100 * (mean_std(by_seed(store, split=split, model=m, adapter="moe", experts_per_domain=1).values())[0]
                       - mean_std(by_seed(store, split=split, model=m, adapter="mlora").values())[0])
                for m in models
            ]
            paper = [PAPER_MOE_TABLE1_DELTA.get((FLAGS.dataset, split), {}).get(m) for m in models]
            ylabel, title = "WAUC delta (MoE-MLoRA − MLoRA), %", f"MoE-MLoRA − MLoRA, {split}"
            if any(v is not None for v in paper):
                grouped_bar_chart(png, models, {"ours": deltas, "paper": paper}, ylabel, title)
            else:
                bar_chart(png, models, deltas, None, ylabel, title)
        else:
            series = {
                m: [100 * mean_std(by_seed(store, split=_splits()[0], model=m, adapter="moe", experts_per_domain=k).values())[0]
                    for k in EXPERTS_PER_DOMAIN]
                for m in models
            }
            line_chart(png, list(EXPERTS_PER_DOMAIN), series, "experts per domain", "test WAUC, %", f"Experts per domain, {_tag()}")
    print(text)
    print(f"Results in {folder}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
