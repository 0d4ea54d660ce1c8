"""`make fidelity-ablation`: which of our training choices moves the numbers.

Starting from `--loop=original` (TF 1.12 + DeepCTR step for step,
`mlora_tf.training.loops`), each factor is switched to our value on its own
(`original+F`), then all together (`fast`, our default loop); a factor whose default
went back to the original's because of this ablation (the shuffle) is also switched
on the fast loop (`fast+F`: the fast loop as it was before); the original loop is also run
with the paper's stated patience 5 (§4.3; the released configs use 3). Every variant
trains the grid's backbones (default WDL and DeepFM), Base and +MLoRA, over the seeds.
With `--split_seeds`, the original loop is also run on other split memberships (the
original shuffled its rows with an unseeded RNG before splitting, so the paper's
membership is one unknown draw): the spread is the noise a single split carries.

Writes `RESULTS_DIR/<dataset tag>/runs.jsonl` (resumable, one record per run) and
`ablation.md`: WAUC and Delta per variant, the change against the original loop with
its paired p-value over seeds, and the paper's cells.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver_flags  # noqa: E402,F401  (shared flags)
from paper_numbers import PAPER_TABLE2, fmt_paper, paper_dataset_key  # noqa: E402
from reproduce_common import (  # noqa: E402
    Cell,
    RunStore,
    by_seed,
    cell_config,
    fmt_p,
    fmt_pct,
    load_or_explain,
    mean_std,
    paired_t_test,
    run_grid,
)

from mlora_tf.config import parse_options  # noqa: E402
from mlora_tf.io import atomic_write_bytes  # noqa: E402
from mlora_tf.training.loops import FACTOR_NAMES, get_factor  # noqa: E402

# What the fast loop picks for `row_groups` on a CPU host with two cores (its value is
# "automatic", which the original preset would otherwise overwrite).
FAST_ROW_GROUPS = 2

flags.DEFINE_string("split", "gender", "MovieLens domain split: gender, age, occupation.")
flags.DEFINE_list("models", ["wdl", "deepfm"], "Backbones of the ablation.")
flags.DEFINE_list("factors", list(FACTOR_NAMES), "Factors switched one at a time from the original loop.")
flags.DEFINE_list("split_seeds", [], "Extra split seeds for the original loop (split-membership noise), e.g. 1,2,3,4.")
flags.DEFINE_boolean("patience5", True, "Also run the original loop with the paper's stated patience 5.")
flags.DEFINE_string("results_dir", "results/fidelity", "Where the per-dataset folders go.")
FLAGS = flags.FLAGS

ORIGINAL = "original"
FAST = "fast"


def variants() -> list[str]:
    """The variant names, in table order: `original+F` is the original loop with factor
    F at our value (`Factor.ours`); `fast+F` the fast loop with F at our earlier value,
    for a factor whose fast-loop default went back to the original's."""
    names = [ORIGINAL] + [f"original+{f}" for f in FLAGS.factors] + [FAST]
    names += [f"fast+{f}" for f in FLAGS.factors if get_factor(f).alternative is not None]
    if FLAGS.patience5:
        names.append("original+patience5")
    names += [f"original@split_seed={s}" for s in FLAGS.split_seeds]
    return names


def variant_settings(name: str) -> tuple[dict, dict, dict]:
    """`(train fields, model fields, data fields)` of a variant."""
    if name == FAST:
        return {"loop": "fast"}, {}, {}
    if name.startswith("fast+"):
        factor = get_factor(name.split("+", 1)[1])
        train, model = {"loop": "fast"}, {}
        (train if factor.section == "train" else model)[factor.name] = factor.ours
        return train, model, {}
    train, model, data = {"loop": "original"}, {}, {}
    if name.startswith("original@split_seed="):
        data["split_seed"] = int(name.split("=", 1)[1])
    elif name == "original+patience5":
        train["patience"] = 5
    elif name.startswith("original+"):
        factor = get_factor(name.split("+", 1)[1])
        value = FAST_ROW_GROUPS if factor.name == "row_groups" else factor.ours
        (train if factor.section == "train" else model)[factor.name] = value
    elif name != ORIGINAL:
        raise ValueError(f"Unknown variant {name!r}")
    return train, model, data


def dataset_tag() -> str:
    return FLAGS.dataset if FLAGS.dataset == "synthetic" else f"{FLAGS.dataset}-{FLAGS.split}"


def cells() -> list[Cell]:
    seeds = [FLAGS.base_seed + i for i in range(FLAGS.seeds)]
    tag = dataset_tag()
    out = []
    # Seed-major: after a third of the runs, every variant has one seed.
    for seed in seeds:
        for variant in variants():
            if "@split_seed=" in variant and seed != seeds[0]:
                continue  # one training seed per extra split membership
            for model in FLAGS.models:
                for adapter in ("none", "mlora"):
                    out.append(Cell(tag, FLAGS.split, model, adapter, seed, variant=variant))
    return out


def make_runner(datasets: dict, options: dict):
    from mlora_tf.runs.train import train_run

    def run_cell(cell: Cell) -> dict:
        train, model, data = variant_settings(cell.variant)
        config = cell_config(cell, FLAGS.dataset, FLAGS.data_dir, options, FLAGS.max_epochs, **train)
        for key, value in model.items():
            setattr(config.model, key, value)
        split_seed = data.get("split_seed", config.data.split_seed)
        config.data.split_seed = split_seed
        if split_seed not in datasets:
            datasets[split_seed] = _load(split_seed, options)
        return train_run(config, dataset=datasets[split_seed])

    return run_cell


def _load(split_seed: int, options: dict):
    from mlora_tf.config import DataConfig, RunConfig
    from mlora_tf.runs.train import load_run_dataset

    return load_run_dataset(
        RunConfig(data=DataConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, domain_split=FLAGS.split,
                                  split_seed=split_seed, options=options))
    )


def ablation_markdown(store: RunStore, models, tag: str, paper_key: str | None) -> str:
    """The ablation table: per variant and backbone, Base and +MLoRA WAUC, Delta, and
    the change of each against the original loop (paired over seeds)."""
    paper = PAPER_TABLE2.get(paper_key, {}) if paper_key else {}
    lines = [
        f"# Fidelity ablation: {tag}",
        "",
        "Test WAUC in percent (mean ± std over training seeds). `original` = `--loop=original`; "
        "`original+F` = the original loop with factor F switched to the fast loop's value; `fast` = every "
        "factor switched (our default). Δ = +MLoRA − Base (p: paired over seeds). vs original: the change "
        "of Base / +MLoRA WAUC against the original loop, paired over seeds (p).",
        "",
        "| variant | backbone | seeds | Base | +MLoRA | Δ (p) | Base vs original (p) | +MLoRA vs original (p) "
        "| epochs Base / +MLoRA | paper Base | paper +MLoRA | paper Δ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    variant_names = list(dict.fromkeys(r["cell"].get("variant") for r in store.records.values()))
    order = [v for v in variants() if v in variant_names] + [v for v in variant_names if v not in variants()]
    for variant in order:
        for model in models:
            base = by_seed(store, model=model, adapter="none", variant=variant)
            lora = by_seed(store, model=model, adapter="mlora", variant=variant)
            if not base and not lora:
                continue
            shared = sorted(set(base) & set(lora))
            _, p_delta = paired_t_test([base[s] for s in shared], [lora[s] for s in shared])
            delta = mean_std([lora[s] - base[s] for s in shared])[0] if shared else float("nan")
            cells = []
            for adapter, values in (("none", base), ("mlora", lora)):
                ref = by_seed(store, model=model, adapter=adapter, variant=ORIGINAL)
                common = sorted(set(ref) & set(values))
                if variant == ORIGINAL or "@split_seed=" in variant or not common:
                    cells.append("—")
                    continue
                _, p = paired_t_test([ref[s] for s in common], [values[s] for s in common])
                change = mean_std([values[s] - ref[s] for s in common])[0]
                cells.append(f"{100 * change:+.2f} ({fmt_p(p)})")
            epochs = [
                mean_std([r["epochs"] for r in store.select(model=model, adapter=a, variant=variant)])[0]
                for a in ("none", "mlora")
            ]
            p_cell = paper.get(model, {})
            pb, pm = p_cell.get("base"), p_cell.get("mlora")
            lines.append(
                f"| {variant} | {model} | {len(shared) or max(len(base), len(lora))} | {fmt_pct(*mean_std(base.values()))} "
                f"| {fmt_pct(*mean_std(lora.values()))} | {_signed(delta)} ({fmt_p(p_delta)}) | {cells[0]} | {cells[1]} "
                f"| {_num(epochs[0])} / {_num(epochs[1])} | {fmt_paper(pb)} | {fmt_paper(pm)} "
                f"| {fmt_paper(None if None in (pb, pm) else pm - pb, signed=True)} |"
            )
    split_rows = [v for v in order if v.startswith("original@split_seed=")]
    if split_rows:
        lines += ["", "## Split membership (original loop, one training seed per split seed)", "",
                  "| backbone | adapter | split seeds | WAUC mean ± std over splits | min | max |", "|---|---|---|---|---|---|"]
        first = FLAGS.base_seed
        for model in models:
            for adapter in ("none", "mlora"):
                values = [r["wauc"] for r in store.records.values()
                          if r["cell"]["model"] == model and r["cell"]["adapter"] == adapter
                          and r["cell"]["seed"] == first
                          and (r["cell"].get("variant") == ORIGINAL or r["cell"].get("variant") in split_rows)]
                if values:
                    lines.append(f"| {model} | {adapter} | {len(values)} | {fmt_pct(*mean_std(values))} | "
                                 f"{100 * min(values):.2f} | {100 * max(values):.2f} |")
    if paper_key is None:
        lines.append("\nThe paper has no column for this dataset.")
    return "\n".join(lines) + "\n"


def _signed(value) -> str:
    return "—" if value != value else f"{100 * value:+.2f}"


def _num(value) -> str:
    return "—" if value != value else f"{value:.1f}"


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from mlora_tf.runtime import configure_threads

    configure_threads()
    unknown = [f for f in FLAGS.factors if f not in FACTOR_NAMES]
    if unknown:
        print(f"fidelity-ablation: unknown factors {unknown}; valid: {', '.join(FACTOR_NAMES)}", file=sys.stderr)
        return 2
    options = parse_options(FLAGS.data_options)
    dataset = load_or_explain("fidelity-ablation", FLAGS.dataset, FLAGS.data_dir, FLAGS.split, options)
    if dataset is None:
        return 2
    tag = dataset_tag()
    folder = os.path.join(FLAGS.results_dir, tag)
    store = RunStore(os.path.join(folder, "runs.jsonl"))
    run_grid(cells(), store, make_runner({123: dataset}, options))
    text = ablation_markdown(store, FLAGS.models, tag, paper_dataset_key(FLAGS.dataset, FLAGS.split))
    atomic_write_bytes(os.path.join(folder, "ablation.md"), text.encode())
    print(text)
    print(f"Results in {folder}")
    return 0


if __name__ == "__main__":
    app.run(main)
