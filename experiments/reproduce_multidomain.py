"""`make reproduce-multidomain`: every single-task multi-domain model of the zoo, Base and
+MLoRA, on one split, in one table.

The models are the registry's single-task group "multi-domain" (`mlora-train
--list_models`: STAR, the gate-NU family and the field's models added since), so a model
registered there is in the grid without touching this file; `--models` picks some (any
single-task model, a CTR backbone as a reference row too).

Writes `RESULTS_DIR/<tag>/runs.jsonl` (one record per run, appended as each finishes;
finished cells are skipped, so a killed grid resumes), `multidomain.md` and
`multidomain.png` (+MLoRA − Base per model). The table has, per model: Base and
+MLoRA test WAUC (mean ± std over seeds), their Δ and a paired t-test over seeds, the
pooled test AUC (all test rows as one set: what Scenario-Wise-Rec reports), the
adapters' parameters as a share of Base's, and seconds per epoch of each; a second table
has the per-domain test AUC of every cell.

Protocols (`--protocol`):

- `mlora` (default): the dataset as every other driver loads it (`--dataset`,
  `--split`: MovieLens gender/age/occupation, the original MLoRA preprocessing; or
  synthetic). Tag `<dataset>-<split>` (`synthetic` alone).
- `scenario_wise_rec` (MovieLens only): Scenario-Wise-Rec's MovieLens setup, so our
  numbers can stand beside theirs: three age domains ({1, 18}, {25}, {35, 45, 50, 56}),
  label rating > 3, user, movie, gender, occupation, zip and first-genre features plus
  the min-max scaled age, a random 8:1:1 split (the `ml-1m-m3oe` / `ml-100k-m3oe`
  dataset's `click` task with `split=random`), embeddings of size 16, batch size 4,096.
  The rest of the training (Adam at 1e-3, early stopping on the validation AUC) is
  ours; their StepLR schedule and weight decay are not reproduced. Tag
  `<dataset>-swr`. Their paper reports HAMUR best on MovieLens at AUC 0.8133
  (arXiv 2412.17374, Table 3); the table prints that line beside our pooled AUCs.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import driver_flags  # noqa: E402,F401  (shared flags)
from reproduce_common import (  # noqa: E402
    Cell,
    RunStore,
    bar_chart,
    cell_config,
    compact_record,
    explain_missing_data,
    fmt_p,
    fmt_pct,
    mean_std,
    metric_by_seed,
    paired_t_test,
    run_grid,
)

from mlora_tf.config import parse_options  # noqa: E402
from mlora_tf.io import atomic_write_bytes  # noqa: E402

PROGRAM = "reproduce-multidomain"
ADAPTERS = ("none", "mlora")
PROTOCOLS = ("mlora", "scenario_wise_rec")
SWR_DATASETS = {"ml-1m": "ml-1m-m3oe", "ml-100k": "ml-100k-m3oe"}
SWR_SPLIT = "age3"  # the -m3oe datasets' three age domains
SWR_TASK = "click"  # rating > 3, Scenario-Wise-Rec's label
SWR_EMBEDDING = 16
SWR_BATCH = 4096
SWR_REFERENCE = "Scenario-Wise-Rec (arXiv 2412.17374, Table 3) reports HAMUR best on MovieLens: AUC 0.8133."

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This driver's own flags (defined when it runs, so tests can import its tables
    next to the other drivers, which define flags of the same names)."""
    flags.DEFINE_string("split", "gender", "MovieLens domain split under --protocol=mlora: gender, age, occupation.")
    flags.DEFINE_list("models", None, "Models of the grid (default: every single-task model of the group 'multi-domain').")
    flags.DEFINE_enum("protocol", "mlora", list(PROTOCOLS),
                      "mlora: the dataset as the other drivers load it; scenario_wise_rec: Scenario-Wise-Rec's "
                      "MovieLens setup (three age domains, random 8:1:1, rating > 3, embedding 16).")
    flags.DEFINE_string("results_dir", "results/multidomain", "Where the per-dataset folders go.")


def default_models() -> list[str]:
    """The registry's single-task models of the group "multi-domain", by name."""
    from mlora_tf.models import list_backbones
    from mlora_tf.models.registry import MULTI_DOMAIN_GROUP

    return [spec.name for spec in list_backbones() if spec.group == MULTI_DOMAIN_GROUP]


def check_models(models) -> str | None:
    """None if every model is a single-task model taking `--adapter=mlora`, else the
    reason (naming the model and the valid ones)."""
    from mlora_tf.models import list_backbones

    takes_mlora = {spec.name for spec in list_backbones() if "mlora" in spec.adapters}
    bad = [m for m in models if m not in takes_mlora]
    if bad:
        return f"unknown models or models without --adapter=mlora: {bad}; valid: {', '.join(sorted(takes_mlora))}"
    return None


def dataset_tag(dataset: str, split: str, protocol: str, loop: str = "fast") -> str:
    if protocol == "scenario_wise_rec":
        tag = f"{dataset}-swr"
    else:
        tag = dataset if dataset == "synthetic" else f"{dataset}-{split}"
    return tag + ("-original-loop" if loop == "original" else "")


def run_settings(protocol: str) -> tuple[dict, dict]:
    """`(model fields, train fields)` a protocol sets beside the defaults."""
    if protocol == "scenario_wise_rec":
        dims = {"user_dim": SWR_EMBEDDING, "item_dim": SWR_EMBEDDING, "domain_dim": SWR_EMBEDDING}
        return dims, {"batch_size": SWR_BATCH}
    return {}, {}


def protocol_data(dataset: str, split: str, options: dict, protocol: str) -> tuple[str, str, dict]:
    """`(dataset, domain split, loader options)` the grid's runs load under `protocol`:
    as given, or Scenario-Wise-Rec's (the `-m3oe` MovieLens setup, its three age
    domains, the random 8:1:1 split)."""
    if protocol == "scenario_wise_rec":
        return SWR_DATASETS[dataset], SWR_SPLIT, dict(options, split="random")
    return dataset, split, dict(options)


def load_grid_dataset(dataset: str, data_dir, split: str, protocol: str, options: dict):
    """The grid's dataset (single-task), or None after printing why it could not load."""
    from mlora_tf.config import DataConfig, RunConfig
    from mlora_tf.runs.train import load_run_dataset

    if protocol == "scenario_wise_rec" and dataset not in SWR_DATASETS:
        print(f"{PROGRAM}: --protocol=scenario_wise_rec is defined on MovieLens ({', '.join(SWR_DATASETS)}). "
              f"Received: --dataset={dataset}", file=sys.stderr)
        return None
    dataset, split, options = protocol_data(dataset, split, options, protocol)
    try:
        data = load_run_dataset(RunConfig(data=DataConfig(dataset=dataset, data_dir=data_dir, domain_split=split,
                                                          options=options)))
    except FileNotFoundError as error:
        explain_missing_data(PROGRAM, error)
        return None
    except ValueError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return None
    return data.select_task(SWR_TASK) if protocol == "scenario_wise_rec" else data


def cells(models, tag: str, split: str, seeds) -> list[Cell]:
    return [Cell(tag, split, m, adapter, s) for m in models for adapter in ADAPTERS for s in seeds]


def make_runner(data, dataset: str, data_dir, options: dict, protocol: str, max_epochs: int, loop: str):
    """`run_cell(cell)`: trains one cell on the loaded `data` (its config records the
    dataset, split and options of `protocol_data`)."""
    from mlora_tf.runs.train import train_run

    model_fields, train_fields = run_settings(protocol)
    dataset, _, options = protocol_data(dataset, None, options, protocol)

    def run_cell(cell: Cell) -> dict:
        config = cell_config(cell, dataset, data_dir, options, max_epochs, model=model_fields, loop=loop, **train_fields)
        return train_run(config, dataset=data)

    return run_cell


def compact(result: dict) -> dict:
    """`compact_record` plus the pooled AUC and the training speed."""
    out = compact_record(result)
    for key in ("pooled_auc", "train_examples_per_second"):
        if key in result:
            out[key] = result[key]
    return out


# ---------------------------------------------------------------------- tables
def seconds_per_epoch(records) -> tuple[float, float]:
    return mean_std([r["seconds"] / max(r["epochs"], 1) for r in records if r.get("epochs")])


def _cell_mean(store: RunStore, metric: str, **fields):
    values = list(metric_by_seed(store, metric, **fields).values())
    return mean_std(values) if values else (float("nan"), float("nan"))


def multidomain_markdown(store: RunStore, models, tag: str, domains=None, protocol: str = "mlora") -> str:
    lines = [
        f"# Multi-domain models, Base and +MLoRA: {tag}",
        "",
        "Test WAUC and pooled AUC in percent (mean ± std over seeds). Δ = +MLoRA − Base (WAUC). "
        "p (seeds): paired t-test over the seeds both cells have. Added params: adapter parameters "
        "as a share of the Base model's trainable parameters. s/epoch: wall seconds of a run "
        "(training and every evaluation) over its epochs.",
        "",
        "| model | Base WAUC | +MLoRA WAUC | Δ | p (seeds) | Base AUC | +MLoRA AUC | added params | "
        "s/epoch Base | s/epoch +MLoRA |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base_means, mlora_means = [], []
    for model in models:
        base = store.select(model=model, adapter="none")
        mlora = store.select(model=model, adapter="mlora")
        if not base and not mlora:
            continue
        a = metric_by_seed(store, "wauc", model=model, adapter="none")
        b = metric_by_seed(store, "wauc", model=model, adapter="mlora")
        shared = sorted(set(a) & set(b))
        _, p = paired_t_test([a[s] for s in shared], [b[s] for s in shared])
        (b_mean, b_std), (m_mean, m_std) = _cell_mean(store, "wauc", model=model, adapter="none"), _cell_mean(
            store, "wauc", model=model, adapter="mlora")
        share = (mlora[0]["params_adapter"] / base[0]["params_backbone"]
                 if mlora and base and base[0].get("params_backbone") else float("nan"))
        delta = m_mean - b_mean
        lines.append(
            f"| {model} | {fmt_pct(b_mean, b_std)} | {fmt_pct(m_mean, m_std)} | "
            f"{'—' if delta != delta else f'{100 * delta:+.2f}'} | {fmt_p(p)} | "
            f"{fmt_pct(*_cell_mean(store, 'pooled_auc', model=model, adapter='none'))} | "
            f"{fmt_pct(*_cell_mean(store, 'pooled_auc', model=model, adapter='mlora'))} | "
            f"{'—' if share != share else f'{100 * share:.1f}%'} | "
            f"{_fmt_seconds(seconds_per_epoch(base))} | {_fmt_seconds(seconds_per_epoch(mlora))} |"
        )
        if shared:
            base_means.append(b_mean)
            mlora_means.append(m_mean)
    if len(base_means) > 1:
        t, p = paired_t_test(base_means, mlora_means)
        lines += [
            "",
            f"Across the {len(base_means)} models with both cells (per-model means): Base {fmt_pct(sum(base_means) / len(base_means))}, "
            f"+MLoRA {fmt_pct(sum(mlora_means) / len(mlora_means))}; paired t = {t:.3f}, p = {fmt_p(p)}.",
        ]
    if protocol == "scenario_wise_rec":
        lines += ["", SWR_REFERENCE]
    lines += ["", domain_markdown(store, models, domains)]
    return "\n".join(lines) + "\n"


def _fmt_seconds(mean_and_std) -> str:
    mean, _ = mean_and_std
    return "—" if mean != mean else f"{mean:.1f}"


def domain_markdown(store: RunStore, models, domains=None) -> str:
    """Per-domain test AUC (percent, mean over seeds) of every cell."""
    records = [r for r in store.records.values() if r["cell"]["model"] in models]
    if not records:
        return ""
    domains = list(domains or next(iter(records))["domain_auc"])
    lines = [
        "Per-domain test AUC in percent (mean over seeds):",
        "",
        "| model | adapter | " + " | ".join(str(d) for d in domains) + " |",
        "|---|---|" + "---|" * len(domains),
    ]
    for model in models:
        for adapter in ADAPTERS:
            runs = store.select(model=model, adapter=adapter)
            if not runs:
                continue
            cells_ = []
            for d in domains:
                values = [r["domain_auc"].get(str(d)) for r in runs]
                values = [v for v in values if v is not None]
                cells_.append(fmt_pct(mean_std(values)[0]) if values else "—")
            lines.append(f"| {model} | {'Base' if adapter == 'none' else '+MLoRA'} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def plot_delta(store: RunStore, models, path: str, title: str) -> None:
    names, deltas, errors = [], [], []
    for model in models:
        a = metric_by_seed(store, "wauc", model=model, adapter="none")
        b = metric_by_seed(store, "wauc", model=model, adapter="mlora")
        shared = sorted(set(a) & set(b))
        if not shared:
            continue
        mean, std = mean_std([100 * (b[s] - a[s]) for s in shared])
        names.append(model)
        deltas.append(mean)
        errors.append(0.0 if std != std else std)
    if names:
        bar_chart(path, names, deltas, errors, "+MLoRA − Base, test WAUC (points)", title)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from mlora_tf.runtime import configure_threads

    configure_threads()
    models = list(FLAGS.models or default_models())
    problem = check_models(models)
    if problem:
        print(f"{PROGRAM}: {problem}", file=sys.stderr)
        return 2
    options = parse_options(FLAGS.data_options)
    data = load_grid_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.split, FLAGS.protocol, options)
    if data is None:
        return 2
    tag = dataset_tag(FLAGS.dataset, FLAGS.split, FLAGS.protocol, FLAGS.loop)
    folder = os.path.join(FLAGS.results_dir, tag)
    store = RunStore(os.path.join(folder, "runs.jsonl"))
    seeds = [FLAGS.base_seed + i for i in range(FLAGS.seeds)]
    split = protocol_data(FLAGS.dataset, FLAGS.split, options, FLAGS.protocol)[1]
    grid = cells(models, tag, split, seeds)
    run_grid(grid, store, make_runner(data, FLAGS.dataset, FLAGS.data_dir, options, FLAGS.protocol,
                                      FLAGS.max_epochs, FLAGS.loop), compact=compact)
    text = multidomain_markdown(store, models, tag, getattr(data, "domain_names", None), FLAGS.protocol)
    atomic_write_bytes(os.path.join(folder, "multidomain.md"), text.encode())
    if FLAGS.plot:
        plot_delta(store, models, os.path.join(folder, "multidomain.png"), f"MLoRA − Base per model, {tag}")
    print(text)
    print(f"Results in {folder}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
