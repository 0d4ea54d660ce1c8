"""`make reproduce-m3oe`: M3oE's Table 2 (MovieLens rows) and, with `--ablations`, its
Table 3: M3oE and the multi-domain multi-task baselines over the seeds of the
original's `run_MDMT.sh` (2022, 2023, ...).

Writes `OUT_DIR/<dataset tag>/runs.jsonl` (one record per (model, variant, seed),
appended and fsync-ed as each run finishes; finished cells are skipped, so a killed
reproduction resumes), `table.md` (rows = models, columns = the six (domain, task)
AUCs, overall AUC and overall logloss, ours as mean ± std over seeds with the paper's
row under ours, RelaImpr of M3oE over the best baseline, a paired t-test over seeds)
and `table.png` (overall AUC per model). The tag is the dataset name, plus
`-split-<split>` under `--split=random|users_shuffled` and `-as-coded` under
`--fusion_schedule=as_coded`.
"""

from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver_flags  # noqa: E402,F401  (shared flags: dataset, data_dir, seeds, base_seed, max_epochs, ...)
from paper_numbers import PAPER_M3OE_RELAIMPR, PAPER_M3OE_TABLE2, PAPER_M3OE_TABLE3  # noqa: E402
from reproduce_common import (  # noqa: E402
    Cell,
    RunStore,
    compact_multitask_record,
    fmt_p,
    fmt_pct,
    load_multitask_or_explain,
    mean_std,
    metric_by_seed,
    paired_t_test,
    run_grid,
    save_png,
)

from mlora_tf.config import parse_options  # noqa: E402
from mlora_tf.io import atomic_write_bytes  # noqa: E402

PROGRAM = "reproduce-m3oe"
SPLIT = "age3"  # M3oE's three age domains, the only split of its MovieLens setup
FIRST_SEED = 2022  # run_MDMT.sh: --seed 2022 .. 2026
DEFAULT_SEEDS = 5
DEFAULT_EPOCHS = 50  # the original's --epoch default
MODELS = ("mlp", "star", "shared_bottom", "mmoe", "ple", "adatt", "adatt_sp", "m2m", "m3oe", "mlora_sb")
PAPER_BASELINES = ("mlp", "star", "shared_bottom", "mmoe", "ple", "adatt", "adatt_sp", "m2m")  # every Table 2 baseline
ROW_ORDER = MODELS  # the paper's rows (its baselines, then M3oE), then ours
DEFAULT = "default"  # the variant of a model without ablation
# Table 3: (variant, label, MultiTaskModelConfig fields), the paper's order.
ABLATIONS = (
    ("wo_automl", "w/o AutoML (fusion weights fixed at 0.5)", {"fusion": "fixed"}),
    ("concat_modules", "Concat modules", {"concat_modules": True}),
    ("fully_gated", "Fully gated", {"fully_gated": True}),
    ("wo_domain", "w/o domain module", {"domain_experts": False}),
    ("wo_task", "w/o task module", {"task_experts": False}),
    ("wo_domain_task", "w/o domain & task", {"domain_experts": False, "task_experts": False}),
)
ABLATION_FIELDS = {"fusion", "fusion_init", "concat_modules", "fully_gated", "domain_experts", "task_experts"}
METRIC_COLUMNS = ("overall_auc", "overall_logloss")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This driver's own flags (defined when it runs, so tests can import its tables
    next to the other drivers, which define flags of the same names)."""
    flags.DEFINE_list("models", list(MODELS), "Multi-task models (mlora-train --list_models): " + ", ".join(MODELS))
    flags.DEFINE_boolean("ablations", False, "Also run M3oE's Table 3 variants and write a second table.")
    flags.DEFINE_string("out_dir", "results/m3oe", "Where the per-dataset folders go.")
    flags.DEFINE_enum("fusion_schedule", "paper", ["paper", "as_coded"],
                      "M3oE's fusion-scalar schedule (MultiTaskTrainConfig.fusion_schedule).")
    flags.DEFINE_list("model_options", None,
                      "MultiTaskModelConfig fields key=value for every model (widths: star_units=64,hidden_units=32,"
                      "expert_units=16,tower_units=16,embedding_dim=8; num_shared_experts=1 is the paper's N).")
    flags.DEFINE_list("train_options", None,
                      "MultiTaskTrainConfig fields key=value (batch_size, learning_rate, patience, ...).")
    flags.DEFINE_enum("split", None, ["positional", "users_shuffled", "random"],
                      "MovieLens row split (the ml-*-m3oe loader's `split` option): positional (the original's "
                      "user-disjoint 80/10/10, the default), users_shuffled (the same with the users in a seeded "
                      "random order) or random (8:1:1 over rows, as Scenario-Wise-Rec). A non-default split goes "
                      "to its own '<dataset>-split-<split>' folder.")
    FLAGS.set_default("base_seed", FIRST_SEED)
    FLAGS.set_default("seeds", DEFAULT_SEEDS)
    FLAGS.set_default("max_epochs", DEFAULT_EPOCHS)


def dataset_tag(dataset: str, fusion_schedule: str, split: str | None = None) -> str:
    """The results folder of a grid: the dataset, `-split-<split>` for a split other than
    the positional default, `-as-coded` for the code's fusion schedule."""
    tag = dataset if split in (None, "positional") else f"{dataset}-split-{split}"
    return tag + ("" if fusion_schedule == "paper" else "-as-coded")


# ----------------------------------------------------------------------- grid
def variant_fields(variant: str) -> dict:
    if variant == DEFAULT:
        return {}
    return next(fields for name, _, fields in ABLATIONS if name == variant)


def make_cells(tag: str, models, seeds, ablations: bool) -> list[Cell]:
    """Every run of the grid: each model's default variant, and with `ablations` M3oE's
    Table 3 variants; `Cell.adapter` holds the variant."""
    out = [Cell(tag, SPLIT, m, DEFAULT, s) for m in models for s in seeds]
    if ablations:
        if "m3oe" not in models:  # Table 3 compares every variant with the full model
            out += [Cell(tag, SPLIT, "m3oe", DEFAULT, s) for s in seeds]
        out += [Cell(tag, SPLIT, "m3oe", v, s) for v, _, _ in ABLATIONS for s in seeds]
    return out


BATCH_SIZES = {"ml-1m": 40960, "ml-100k": 4096, "synthetic": 2048}
"""Training batch per dataset: the reference's 40,960 on ML-1M, i.e. 20 batches per
epoch (800,167 rows); the smaller datasets keep about that many (ML-100K: 80,000 / 4,096;
synthetic's default 32,000 / 2,048), so every model gets a comparable number of steps.
`--train_options=batch_size=N` overrides it."""


def run_config(cell: Cell, *, dataset: str, data_dir, data_options: dict, model_options: dict,
               train_options: dict, max_epochs: int, fusion_schedule: str):
    """The `MultiTaskRunConfig` of one cell."""
    from mlora_tf.config import DataConfig, MultiTaskRunConfig, MultiTaskTrainConfig
    from mlora_tf.models import MultiTaskModelConfig

    train = dict(batch_size=BATCH_SIZES.get(dataset, 40960))
    train.update(train_options, seed=cell.seed, max_epochs=max_epochs, fusion_schedule=fusion_schedule)
    return MultiTaskRunConfig(
        data=DataConfig(dataset=dataset, data_dir=data_dir, domain_split=SPLIT, options=dict(data_options)),
        model=MultiTaskModelConfig(name=cell.model, **model_options, **variant_fields(cell.adapter)),
        train=MultiTaskTrainConfig(**train),
    )


def driver_owned_options(model_options: dict, train_options: dict) -> list[str]:
    """The `--model_options` / `--train_options` keys that the grid itself sets (the model,
    M3oE's ablations, the seed, the epoch limit, the fusion schedule)."""
    return sorted((ABLATION_FIELDS | {"name"}) & set(model_options)) + sorted(
        {"seed", "max_epochs", "fusion_schedule"} & set(train_options)
    )


def settings_mismatch(record: dict, config) -> list[str]:
    """The settings (data options and split seed, model, training but the seed) in which a
    stored run differs from what this invocation would run."""
    stored, wanted = record.get("config") or {}, config.to_dict()
    out = []
    for key in ("options", "split_seed"):
        if stored.get("data", {}).get(key) != wanted["data"][key]:
            out.append(f"data.{key}")
    for section in ("model", "train"):
        a, b = stored.get(section, {}), wanted[section]
        out += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if k != "seed" and a.get(k) != b.get(k)]
    return out


# --------------------------------------------------------------------- tables
def _label(model: str) -> str:
    from mlora_tf.models import get_multitask_model

    if model in PAPER_M3OE_TABLE2:
        return PAPER_M3OE_TABLE2[model]["label"]
    spec = get_multitask_model(model)
    name = spec.paper_name or {"mlora_sb": "MLoRA-SB"}.get(model, model)
    return f"{name} (ours)" if spec.ours else name


def _row_order(models) -> list[str]:
    known = [m for m in ROW_ORDER if m in models]
    return known + [m for m in models if m not in known]


def _pair_columns(store: RunStore) -> tuple[list[str], list[str]]:
    """The `d{d}t{t}` keys and their headers (paper numbering, 1-based) from the stored runs."""
    record = next(iter(store.records.values()), None)
    domains = (record or {}).get("dataset", {}).get("domains") or ["d1", "d2", "d3"]
    tasks = (record or {}).get("tasks") or ["t1", "t2"]
    keys, headers = [], []
    for d, domain in enumerate(domains):
        for t, task in enumerate(tasks):
            keys.append(f"d{d}t{t}")
            headers.append(f"d{d + 1} t{t + 1} ({domain} / {task})")
    return keys, headers


def _by_seed(store: RunStore, metric: str, seeds, **fields) -> dict:
    """`{seed: metric}` of the stored runs matching `fields`, for `seeds` only (a store
    may hold more seeds than this invocation asks for)."""
    return {s: v for s, v in metric_by_seed(store, metric, **fields).items() if s in set(seeds)}


def _ours(store: RunStore, metric: str, seeds, **fields) -> str:
    return fmt_pct(*mean_std(_by_seed(store, metric, seeds, **fields).values()))


def _fmt_t(t: float) -> str:
    return "—" if math.isnan(t) else f"{t:.3f}"


def _paper(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def relaimpr_text(auc: float, base_auc: float) -> str:
    from mlora_tf.training.metrics import relative_improvement

    if any(v is None or math.isnan(v) for v in (auc, base_auc)) or not base_auc > 0.5:
        return "—"
    return f"{100 * relative_improvement(auc, base_auc):+.2f}%"


def comparison_lines(store: RunStore, models, seeds) -> list[str]:
    """RelaImpr of M3oE over the best of the paper's baselines (by mean overall AUC) and
    the paired t-test over seeds; the same against each of our own models."""
    means = {m: mean_std(_by_seed(store, "overall_auc", seeds, model=m, adapter=DEFAULT).values())[0] for m in models}
    means = {m: v for m, v in means.items() if not math.isnan(v)}
    baselines = {m: v for m, v in means.items() if m in PAPER_BASELINES}
    paper_base = PAPER_M3OE_RELAIMPR["baseline"]
    paper_text = (f"paper: {PAPER_M3OE_RELAIMPR['percent']:+.2f}% over {PAPER_M3OE_TABLE2[paper_base]['label']}, "
                  f"{PAPER_M3OE_TABLE2['m3oe']['overall_auc']:.2f} vs {PAPER_M3OE_TABLE2[paper_base]['overall_auc']:.2f}")
    if "m3oe" not in means or not baselines:
        return [
            f"RelaImpr of M3oE over the best baseline: — (needs M3oE and one of the paper's baselines; {paper_text}).",
            "Paired t-test over seeds (M3oE vs the best baseline, overall AUC): — (needs both).",
        ]
    best = max(baselines, key=baselines.get)
    lines = [
        f"RelaImpr of M3oE over the best baseline, {_label(best)} (overall AUC {fmt_pct(baselines[best])} vs "
        f"{fmt_pct(means['m3oe'])}): {relaimpr_text(means['m3oe'], baselines[best])} "
        f"(RelaImpr = (AUC − 0.5) / (AUC_base − 0.5) − 1 on the means over seeds; {paper_text}).",
    ]
    for other in [best] + [m for m in means if m not in baselines and m != "m3oe"]:
        a = _by_seed(store, "overall_auc", seeds, model=other, adapter=DEFAULT)
        b = _by_seed(store, "overall_auc", seeds, model="m3oe", adapter=DEFAULT)
        shared = sorted(set(a) & set(b))
        t, p = paired_t_test([a[s] for s in shared], [b[s] for s in shared])
        what = "the best baseline " if other == best else ""
        lines.append(
            f"Paired t-test over seeds (two-sided, paired by seed, {len(shared)} shared seed{'s' * (len(shared) != 1)}), "
            "overall AUC, "
            f"M3oE vs {what}{_label(other)}: mean difference {100 * (means['m3oe'] - means[other]):+.2f}, "
            f"t = {_fmt_t(t)}, p = {fmt_p(p)}."
            + ("" if other == best else f" RelaImpr of M3oE over it: {relaimpr_text(means['m3oe'], means[other])}.")
        )
    return lines


def table2_markdown(store: RunStore, models, tag: str, dataset: str, seeds, note: list[str] | None = None) -> str:
    keys, headers = _pair_columns(store)
    columns = keys + list(METRIC_COLUMNS)
    lines = [
        f"# M3oE Table 2 reproduction: {tag}",
        "",
        f"Test AUC and logloss × 10^-2 (percent), mean ± std over seeds {_seed_text(seeds)}; below each of our "
        "rows, the paper's (MovieLens-1M, mean of 5 seeds). Overall = the mean of the six (domain, task) "
        "pair AUCs (loglosses). d = domain (age group), t = task.",
        "",
        "| model | seeds | " + " | ".join(headers) + " | overall AUC | overall logloss |",
        "|---|---|" + "---|" * len(columns),
    ]
    for model in _row_order(list(models)):
        label = _label(model)
        n = len(_by_seed(store, "overall_auc", seeds, model=model, adapter=DEFAULT))
        cells = [_ours(store, f"pair_auc.{k}", seeds, model=model, adapter=DEFAULT) for k in keys]
        cells += [_ours(store, m, seeds, model=model, adapter=DEFAULT) for m in METRIC_COLUMNS]
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
        paper = PAPER_M3OE_TABLE2.get(model)
        if paper:
            lines.append(f"| *paper: {paper['label']}* | 5 | "
                         + " | ".join(_paper(paper.get(c)) for c in columns) + " |")
        elif model in PAPER_BASELINES:  # a row of the paper whose numbers paper_numbers.py lacks
            lines.append(f"| *paper: {label} (numbers not in paper_numbers.py)* | — | "
                         + " | ".join("—" for _ in columns) + " |")
    lines += ["", *comparison_lines(store, models, seeds), ""]
    if dataset != "ml-1m":
        lines.append(f"The paper's numbers are MovieLens-1M's; this run is on {dataset}: they are a reference, not a target.")
    if "ple" in models:
        lines.append("Paper PLE-MDMT: its six pair AUCs average 76.01; the paper prints 75.68 as its overall AUC.")
    lines += note or []
    lines += ["", *run_stats_lines(store, models, seeds)]
    return "\n".join(lines) + "\n"


def run_stats_lines(store: RunStore, models, seeds, variants=(DEFAULT,)) -> list[str]:
    """Epochs, seconds and trainable parameters per run."""
    lines = ["| run | seeds | epochs (mean) | seconds per run (mean) | parameters |", "|---|---|---|---|---|"]
    for model in _row_order(models):
        for variant in variants:
            records = [r for r in store.select(model=model, adapter=variant) if r["cell"]["seed"] in set(seeds)]
            if not records:
                continue
            epochs = sum(r.get("epochs", 0) for r in records) / len(records)
            seconds = sum(r.get("seconds", 0.0) for r in records) / len(records)
            name = _label(model) if variant == DEFAULT else f"M3oE {variant}"
            lines.append(f"| {name} | {len(records)} | {epochs:.1f} | {seconds:.1f} | {records[0].get('params_total', '—')} |")
    return lines


def table3_markdown(store: RunStore, tag: str, dataset: str, seeds) -> str:
    full = _by_seed(store, "overall_auc", seeds, model="m3oe", adapter=DEFAULT)
    full_mean = mean_std(full.values())[0]
    paper_full = PAPER_M3OE_TABLE3["full"]
    lines = [
        f"# M3oE Table 3 (ablations) reproduction: {tag}",
        "",
        f"Overall test AUC × 10^-2 (mean ± std over seeds {_seed_text(seeds)}); Delta = variant − full M3oE; "
        "p: two-sided t-test paired by seed against full M3oE. Paper: MovieLens-1M average AUC.",
        "",
        "| variant | seeds | overall AUC | overall logloss | Delta | p (seeds) | paper AUC | paper Delta |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, label, _ in list(ABLATIONS) + [(DEFAULT, "Full M3oE", {})]:
        runs = _by_seed(store, "overall_auc", seeds, model="m3oe", adapter=variant)
        mean, std = mean_std(runs.values())
        seeds_shared = sorted(set(runs) & set(full))
        if variant == DEFAULT:
            delta, p = "—", "—"
        else:
            _, p_value = paired_t_test([full[s] for s in seeds_shared], [runs[s] for s in seeds_shared])
            delta = "—" if math.isnan(mean) or math.isnan(full_mean) else f"{100 * (mean - full_mean):+.2f}"
            p = fmt_p(p_value)
        paper = PAPER_M3OE_TABLE3.get("full" if variant == DEFAULT else variant)
        paper_delta = "—" if variant == DEFAULT or paper is None else f"{paper - paper_full:+.2f}"
        lines.append(
            f"| {label} | {len(runs)} | {fmt_pct(mean, std)} | {_ours(store, 'overall_logloss', seeds, model='m3oe', adapter=variant)} "
            f"| {delta} | {p} | {_paper(paper)} | {paper_delta} |"
        )
    if dataset != "ml-1m":
        lines += ["", f"The paper's numbers are MovieLens-1M's; this run is on {dataset}."]
    lines += ["", *run_stats_lines(store, ["m3oe"], seeds, [v for v, _, _ in ABLATIONS] + [DEFAULT])]
    return "\n".join(lines) + "\n"


def _seed_text(seeds) -> str:
    seeds = list(seeds)
    if not seeds:
        return "(none)"
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}..{seeds[-1]}"


def plot_overall(store: RunStore, models, seeds, path: str, title: str) -> None:
    names, ours, errors, paper = [], [], [], []
    for model in _row_order(models):
        mean, std = mean_std(_by_seed(store, "overall_auc", seeds, model=model, adapter=DEFAULT).values())
        if math.isnan(mean):
            continue
        names.append(_label(model))
        ours.append(100 * mean)
        errors.append(100 * std)
        paper.append(PAPER_M3OE_TABLE2.get(model, {}).get("overall_auc", float("nan")))

    def draw(ax):
        xs = range(len(names))
        ax.bar(xs, ours, yerr=errors, capsize=3, color="tab:blue", label="ours (mean ± std over seeds)")
        ax.plot(xs, paper, "kx", markersize=8, label="paper (MovieLens-1M)")
        values = [v for v in ours + paper if not math.isnan(v)]
        if values:
            ax.set_ylim(min(values) - 2, max(values) + 1)
        ax.set_xticks(list(xs), names, rotation=20, fontsize="small")
        ax.set_ylabel("overall test AUC × 10^-2")
        ax.set_title(title)
        ax.legend(fontsize="small")

    save_png(path, draw)


# ----------------------------------------------------------------------- main
def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from mlora_tf.models import is_multitask_model, list_multitask_models
    from mlora_tf.runs.multitask import train_multitask_run
    from mlora_tf.runtime import configure_threads

    configure_threads(large_ops=True)
    unknown = [m for m in FLAGS.models if not is_multitask_model(m)]
    if unknown:
        valid = ", ".join(s.name for s in list_multitask_models())
        print(f"{PROGRAM}: unknown multi-task models {unknown}; valid: {valid}", file=sys.stderr)
        return 2
    if FLAGS.seeds < 1:
        print(f"{PROGRAM}: --seeds must be at least 1. Received: {FLAGS.seeds}", file=sys.stderr)
        return 2
    try:
        data_options = parse_options(FLAGS.data_options)
        model_options = parse_options(FLAGS.model_options)
        train_options = parse_options(FLAGS.train_options)
    except ValueError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2
    split = FLAGS.split or data_options.get("split")
    if FLAGS.split and data_options.get("split", FLAGS.split) != FLAGS.split:
        print(f"{PROGRAM}: --split={FLAGS.split} and --data_options=split={data_options['split']} disagree; "
              "give one of them.", file=sys.stderr)
        return 2
    if split is not None:
        data_options["split"] = split
    bad = driver_owned_options(model_options, train_options)
    if bad:
        print(f"{PROGRAM}: {bad} are set by the driver (--models, --ablations, --seeds, --max_epochs, "
              "--fusion_schedule), not by --model_options/--train_options.", file=sys.stderr)
        return 2
    tag = dataset_tag(FLAGS.dataset, FLAGS.fusion_schedule, split)
    seeds = [FLAGS.base_seed + i for i in range(FLAGS.seeds)]
    grid = make_cells(tag, FLAGS.models, seeds, FLAGS.ablations)

    def config_of(cell):
        return run_config(cell, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, data_options=data_options,
                          model_options=model_options, train_options=train_options, max_epochs=FLAGS.max_epochs,
                          fusion_schedule=FLAGS.fusion_schedule)

    try:
        from mlora_tf.config import MultiTaskTrainConfig, check_keys, field_names
        from mlora_tf.models import MultiTaskModelConfig

        check_keys(model_options, field_names(MultiTaskModelConfig), "--model_options")
        check_keys(train_options, field_names(MultiTaskTrainConfig), "--train_options")
        configs = {cell: config_of(cell) for cell in grid}  # every option is checked before any run
    except (TypeError, ValueError) as e:
        print(f"{PROGRAM}: bad --model_options/--train_options: {e}", file=sys.stderr)
        return 2
    folder = os.path.join(FLAGS.out_dir, tag)
    store = RunStore(os.path.join(folder, "runs.jsonl"))
    todo = [c for c in grid if not store.has(c)]
    dataset = load_multitask_or_explain(PROGRAM, configs[grid[0]]) if todo else None
    if todo and dataset is None:
        return 2

    def run_cell(cell):
        return train_multitask_run(configs[cell], dataset=dataset)

    run_grid(grid, store, run_cell, compact=compact_multitask_record, metric="overall_auc", metric_label="overall AUC")
    stale = {}
    for cell in grid:
        diff = settings_mismatch(store.records[cell.key], configs[cell])
        if diff:
            stale[f"{cell.model}/{cell.adapter}/{cell.seed}"] = diff
    note = []
    if stale:
        keys = sorted({k for v in stale.values() for k in v})
        logging.warning("%d stored runs were made with other settings (%s) than this invocation's: %s. "
                        "Use another --out_dir, or delete their lines from runs.jsonl to redo them.",
                        len(stale), ", ".join(keys), ", ".join(stale))
        note.append(f"Note: {len(stale)} of these runs were made with other settings ({', '.join(keys)}) than "
                    "the last invocation's (their records in runs.jsonl keep their own config).")
    text = table2_markdown(store, FLAGS.models, tag, FLAGS.dataset, seeds, note)
    atomic_write_bytes(os.path.join(folder, "table.md"), text.encode())
    if FLAGS.ablations:
        text3 = table3_markdown(store, tag, FLAGS.dataset, seeds)
        atomic_write_bytes(os.path.join(folder, "table3.md"), text3.encode())
        text += "\n" + text3
    if FLAGS.plot:
        plot_overall(store, FLAGS.models, seeds, os.path.join(folder, "table.png"), f"M3oE Table 2, {tag}")
    print(text)
    print(f"Results in {folder}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
