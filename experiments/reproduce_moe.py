"""`make reproduce-moe-table1` and `make reproduce-moe-experts`: the MoE-MLoRA paper's
Table 1 (Base, MLoRA, MoE-MLoRA per backbone and domain split) and Figure 2 (2, 4, 6, 8
experts on the gender split).

Same machinery as `reproduce_table2.py`: one record per run in
`RESULTS_DIR/<figure>/<dataset>/runs.jsonl`, finished cells skipped (resume), a
Markdown table with mean ± std over seeds, Delta = MoE-MLoRA − MLoRA, paired t-tests,
the paper's numbers beside ours where known, and a PNG chart.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver_flags  # noqa: E402,F401  (shared flags)
from paper_numbers import PAPER_MOE_TABLE1  # noqa: E402

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

BACKBONES = ("wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")  # the paper's eight
EXPERTS_PER_DOMAIN = (1, 2, 3, 4)  # 2, 4, 6, 8 experts on the two-domain gender split

flags.DEFINE_enum("figure", "table1", ["table1", "experts"], "table1: Table 1; experts: Figure 2.")
flags.DEFINE_list("splits", ["gender", "age", "occupation"], "MovieLens domain splits of Table 1 (Figure 2 uses gender).")
flags.DEFINE_list("models", list(BACKBONES), "Backbones.")
flags.DEFINE_string("results_dir", "results/moe", "Where the per-figure, per-dataset folders go.")
flags.DEFINE_enum("moe_schedule", "paper", ["paper", "as_executed"], "MoE-MLoRA schedule.")
FLAGS = flags.FLAGS


def _splits() -> list[str]:
    if FLAGS.dataset == "synthetic":
        return ["synthetic"]
    return ["gender"] if FLAGS.figure == "experts" else list(FLAGS.splits)


def _tag() -> str:
    return FLAGS.dataset + ("" if FLAGS.moe_schedule == "paper" else "-as-executed")


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


def table1_markdown(store: RunStore, splits, models) -> str:
    lines = [
        f"# MoE-MLoRA Table 1 reproduction: {_tag()}",
        "",
        "Test WAUC in percent (mean ± std over seeds). MoE-MLoRA: one expert per domain, "
        f"schedule `{FLAGS.moe_schedule}`. Delta = MoE-MLoRA − MLoRA; p (seeds): paired t-test over seeds.",
        "",
        "| split | backbone | Base | MLoRA | MoE-MLoRA | Delta | p (seeds) | paper MLoRA | paper MoE-MLoRA |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    mlora_means, moe_means = [], []
    for split in splits:
        for model in models:
            base = mean_std(by_seed(store, split=split, model=model, adapter="none").values())
            (m_mean, m_std), (e_mean, e_std), p = seed_comparison(
                store, dict(split=split, model=model, adapter="mlora", experts_per_domain=None),
                dict(split=split, model=model, adapter="moe", experts_per_domain=1),
            )
            paper = PAPER_MOE_TABLE1.get((FLAGS.dataset, split), {}).get(model, {})
            lines.append(
                f"| {split} | {model} | {fmt_pct(*base)} | {fmt_pct(m_mean, m_std)} | {fmt_pct(e_mean, e_std)} | "
                f"{100 * (e_mean - m_mean):+.2f} | {fmt_p(p)} | {paper.get('mlora', '—')} | {paper.get('moe', '—')} |"
            )
            if m_mean == m_mean and e_mean == e_mean:  # both present (not NaN)
                mlora_means.append(m_mean)
                moe_means.append(e_mean)
    t, p = paired_t_test(mlora_means, moe_means)
    lines += [
        "",
        f"Paired t-test of MoE-MLoRA vs MLoRA across {len(moe_means)} (split, backbone) rows: t = {t:.3f}, p = {fmt_p(p)}.",
        "Paper numbers: not available offline (see experiments/paper_numbers.py)." if not PAPER_MOE_TABLE1 else "",
    ]
    return "\n".join(lines) + "\n"


def experts_markdown(store: RunStore, models) -> str:
    lines = [
        f"# MoE-MLoRA experts per domain (Figure 2): {_tag()}, gender split",
        "",
        "Test WAUC in percent (mean ± std over seeds); experts = experts per domain × domains.",
        "",
        "| backbone | MLoRA | " + " | ".join(f"{k} per domain" for k in EXPERTS_PER_DOMAIN) + " |",
        "|---|---|" + "---|" * len(EXPERTS_PER_DOMAIN),
    ]
    split = _splits()[0]
    for model in models:
        mlora = fmt_pct(*mean_std(by_seed(store, split=split, model=model, adapter="mlora").values()))
        row = [fmt_pct(*mean_std(by_seed(store, split=split, model=model, adapter="moe", experts_per_domain=k).values()))
               for k in EXPERTS_PER_DOMAIN]
        lines.append(f"| {model} | {mlora} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from mlora_tf.run import train_run
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
            config = cell_config(cell, FLAGS.dataset, FLAGS.data_dir, options, FLAGS.max_epochs, moe_schedule=FLAGS.moe_schedule)
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
            bar_chart(png, models, deltas, None, "WAUC delta (MoE-MLoRA − MLoRA), %", f"MoE-MLoRA − MLoRA, {split}")
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
    app.run(main)
