"""Shared pieces of the throughput benchmarks: the synthetic data, the timing summary and
the trainer our own passes are timed with (`joint_trainer`).

Numpy and the standard library at import time (`joint_trainer` imports `mlora_tf` when
called): `peer_deepctr.py` imports this module inside the
DeepCTR venv, where neither `mlora_tf` nor Keras 3 is installed.

The data is ML-1M-sized: uids 1..6040, pids 1..3952 (0 unused, as in MovieLens), 21
domains whose sizes follow the number of ML-1M users per occupation (so one domain is
~45x larger than the smallest), and ~22.6% positive labels. Every user belongs to one
domain (its "occupation"); item popularity is Zipf-like; the label is a Bernoulli draw
from a logistic model with user and item biases, its intercept set so that the mean
click probability is the target rate. The figures these scripts measure are speeds, so
the data only needs the right shape, sizes and id ranges.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

import numpy as np

N_USERS = 6040
N_ITEMS = 3952
VOCAB_SIZES = {"uid": N_USERS + 1, "pid": N_ITEMS + 1}
POSITIVE_RATE = 0.226
DEFAULT_ROWS = 600_000
DEFAULT_DOMAINS = 21
DEFAULT_SEED = 2024
FEATURES = ("uid", "pid", "domain")

# ML-1M users per occupation (id 0..20); the domain sizes are proportional to these.
ML1M_OCCUPATION_USERS = (
    711, 528, 267, 173, 759, 112, 236, 679, 17, 92, 195,
    129, 388, 142, 302, 144, 241, 502, 70, 72, 281,
)
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer",
    "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)


def _allocate(total: int, weights) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `weights` (largest remainder)."""
    weights = np.asarray(weights, dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = total - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return counts


def domain_weights(n_domains: int) -> np.ndarray:
    """ML-1M occupation sizes, cycled when more than 21 domains are asked for."""
    if n_domains < 1:
        raise ValueError(f"`n_domains` must be >= 1. Received: n_domains={n_domains}")
    base = np.asarray(ML1M_OCCUPATION_USERS, dtype=np.float64)
    return base[np.arange(n_domains) % len(base)]


def domain_names(n_domains: int) -> list[str]:
    names = []
    for d in range(n_domains):
        name = ML1M_OCCUPATIONS[d % len(ML1M_OCCUPATIONS)]
        names.append(name if d < len(ML1M_OCCUPATIONS) else f"{name}#{d // len(ML1M_OCCUPATIONS)}")
    return names


def _calibrate_intercept(logits: np.ndarray, rate: float) -> float:
    """The constant c with mean(sigmoid(logits + c)) == rate (bisection)."""
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = (low + high) / 2.0
        if np.mean(1.0 / (1.0 + np.exp(-(logits + mid)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def make_data(
    rows: int = DEFAULT_ROWS,
    n_domains: int = DEFAULT_DOMAINS,
    seed: int = DEFAULT_SEED,
    eval_rows: int | None = None,
) -> dict:
    """The benchmark data, as numpy arrays.

    Args:
        rows: training rows over all domains.
        n_domains: number of domains (ML-1M occupations: 21).
        seed: seed of the one `numpy.random.Generator` every draw comes from.
        eval_rows: rows of each of `val` and `test` (default: 1% of `rows`, at least
            one per domain); they only exist because a `MultiDomainDataset` needs them.

    Returns:
        `{"n_domains", "vocab_sizes", "domain_names", "splits"}` where `splits` maps
        `train`/`val`/`test` to `{"uid", "pid", "domain"}` int64 and `"label"` float32
        arrays, rows grouped by domain (domain 0 first), shuffled inside a domain.
    """
    if rows < n_domains:
        raise ValueError(f"Need at least one row per domain. Received: rows={rows}, n_domains={n_domains}")
    rng = np.random.default_rng(seed)
    weights = domain_weights(n_domains)
    # Each user belongs to one domain; domains get users in proportion to their size
    # (at least one each).
    users_per_domain = np.maximum(_allocate(N_USERS, weights), 1)
    user_domain = np.repeat(np.arange(n_domains), users_per_domain)[:N_USERS]
    user_domain = rng.permutation(np.pad(user_domain, (0, max(0, N_USERS - len(user_domain))), mode="edge"))
    users_of = [np.flatnonzero(user_domain == d) + 1 for d in range(n_domains)]
    users_of = [u if u.size else np.array([1 + d % N_USERS]) for d, u in enumerate(users_of)]
    # Zipf-like item popularity, a random item permutation so popular ids are spread.
    item_p = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    item_p /= item_p.sum()
    item_ids = rng.permutation(N_ITEMS) + 1
    user_bias = rng.normal(0.0, 0.7, N_USERS + 1)
    item_bias = rng.normal(0.0, 0.7, N_ITEMS + 1)
    domain_bias = rng.normal(0.0, 0.3, n_domains)

    if eval_rows is None:
        eval_rows = max(n_domains, rows // 100)
    eval_rows = max(int(eval_rows), n_domains)

    def draw(total):
        counts = np.maximum(_allocate(total, weights), 1)
        domain = np.repeat(np.arange(n_domains, dtype=np.int64), counts)
        uid = np.concatenate([rng.choice(users_of[d], size=c) for d, c in enumerate(counts)]).astype(np.int64)
        pid = item_ids[rng.choice(N_ITEMS, size=int(counts.sum()), p=item_p)].astype(np.int64)
        logits = user_bias[uid] + item_bias[pid] + domain_bias[domain]
        return {"uid": uid, "pid": pid, "domain": domain}, logits

    drawn = {split: draw(n) for split, n in (("train", rows), ("val", eval_rows), ("test", eval_rows))}
    intercept = _calibrate_intercept(drawn["train"][1], POSITIVE_RATE)
    splits = {}
    for split, (columns, logits) in drawn.items():
        p = 1.0 / (1.0 + np.exp(-(logits + intercept)))
        columns["label"] = (rng.random(p.size) < p).astype(np.float32)
        splits[split] = columns
    return {
        "n_domains": int(n_domains),
        "vocab_sizes": {**VOCAB_SIZES, "domain": int(n_domains)},
        "domain_names": domain_names(n_domains),
        "splits": splits,
    }


def domain_offsets(domain: np.ndarray, n_domains: int) -> np.ndarray:
    """Start of each domain's rows in a domain-grouped column, plus the end."""
    return np.searchsorted(domain, np.arange(n_domains + 1), side="left")


def domain_rows(columns: dict, n_domains: int) -> list[dict]:
    """One `{column: array}` per domain (views) of a domain-grouped split."""
    offsets = domain_offsets(columns["domain"], n_domains)
    return [{k: v[offsets[d] : offsets[d + 1]] for k, v in columns.items()} for d in range(n_domains)]


def describe(data: dict) -> str:
    train = data["splits"]["train"]
    sizes = np.bincount(train["domain"], minlength=data["n_domains"])
    return (
        f"{len(train['label']):,} training rows, {data['n_domains']} domains "
        f"(sizes {sizes.min():,}..{sizes.max():,}), positives {train['label'].mean():.3f}"
    )


def time_epochs(run_epoch, epochs: int) -> dict:
    """Run one warm-up epoch, then `epochs` timed ones.

    `run_epoch()` trains one epoch and returns the number of examples it consumed.
    Returns the warm-up seconds, the timed epochs' seconds and examples, and the
    median examples/second over the timed epochs.
    """
    return interleaved_epochs({None: run_epoch}, epochs)[None]


def interleaved_epochs(run_epochs: dict, epochs: int) -> dict:
    """`time_epochs` of several configurations at once, their epochs interleaved.

    `run_epochs`: label -> `run_epoch()` (trains one epoch, returns its examples). Every
    configuration runs its warm-up epoch, then the timed epochs go round-robin (round k
    times epoch k of every configuration), so a configuration's speed and another's
    are measured minutes, not a whole benchmark, apart: on a shared machine whose speed
    drifts, the ratio of two configurations in one round moves far less than their
    figures do. Returns label -> `time_epochs`' result.
    """
    warmups = {}
    for label, run_epoch in run_epochs.items():
        t0 = time.perf_counter()
        run_epoch()
        warmups[label] = time.perf_counter() - t0
    seconds = {label: [] for label in run_epochs}
    speeds = {label: [] for label in run_epochs}
    examples = dict.fromkeys(run_epochs, 0)
    for _ in range(epochs):
        for label, run_epoch in run_epochs.items():
            t0 = time.perf_counter()
            examples[label] = run_epoch()
            elapsed = time.perf_counter() - t0
            seconds[label].append(elapsed)
            speeds[label].append(examples[label] / elapsed)
    return {
        label: {
            "examples_per_second": statistics.median(speeds[label]),
            "epoch_examples": int(examples[label]),
            "epoch_seconds": seconds[label],
            "epoch_examples_per_second": speeds[label],
            "warmup_seconds": warmups[label],
        }
        for label in run_epochs
    }


def round_ratios(slow: dict, fast: dict) -> dict:
    """How many times longer `slow` takes than `fast` per example, round by round, for
    two results of one `interleaved_epochs` call: the median, minimum and maximum of
    `fast ex/s / slow ex/s` over the rounds."""
    ratios = [f / s for s, f in zip(slow["epoch_examples_per_second"], fast["epoch_examples_per_second"])]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}


def machine_info() -> dict:
    info = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def write_json(path: str, payload: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")


# ------------------------------------------------------------------ the peers
PEER_MODES = ("per-domain", "mixed")
"""How a peer is fed: `fit` once per domain, domains in a fresh random order each epoch
(as our trainer and the original code), or one `fit` over all rows, shuffled."""


def check_peer_modes(modes) -> str | None:
    """None if `modes` are valid `PEER_MODES`, else the reason."""
    unknown = [m for m in modes if m not in PEER_MODES]
    if unknown or not modes:
        return f"--modes: unknown {unknown}. Valid: {', '.join(PEER_MODES)}"
    return None


def peer_epoch(mode: str, data: dict, fit, seed: int):
    """`run_epoch()` (for `time_epochs`) of a peer fed as its users feed it:
    `fit(x, y)` on numpy columns `{feature: array}`, once per domain ("per-domain") or
    once over the whole training split ("mixed"); returns the examples it consumed."""
    train = data["splits"]["train"]
    if mode == "per-domain":
        inputs = [({f: rows[f] for f in FEATURES}, rows["label"]) for rows in domain_rows(train, data["n_domains"])]
        rng = np.random.default_rng(seed)

        def run_epoch():
            examples = 0
            for d in rng.permutation(len(inputs)):
                x, y = inputs[d]
                if len(y):
                    fit(x, y)
                    examples += len(y)
            return examples

        return run_epoch
    x_all, y_all = {f: train[f] for f in FEATURES}, train["label"]

    def run_epoch():
        fit(x_all, y_all)
        return len(y_all)

    return run_epoch


def peer_table(results) -> str:
    """The peers' result table: configuration, path, feeding, ex/s, median epoch and
    warm-up seconds, training FLOPs per example and the GFLOP/s they give."""
    titles = ("configuration", "path", "feeding", "ex/s", "epoch s", "warm-up s", "train FLOP/ex", "GFLOP/s")
    rows = []
    for r in results:
        epoch_s = sorted(r["epoch_seconds"])[len(r["epoch_seconds"]) // 2]
        rows.append((r["configuration"], r["path"], r["feeding"], f"{r['examples_per_second']:,.0f}",
                     f"{epoch_s:.2f}", f"{r['warmup_seconds']:.1f}", f"{r['flops_per_example']:,}",
                     f"{r['flops_per_example'] * r['examples_per_second'] / 1e9:.1f}"))
    widths = [max(len(t), *(len(row[i]) for row in rows)) for i, t in enumerate(titles)]
    align = ["<", "<", "<", ">", ">", ">", ">", ">"]
    lines = ["  ".join(f"{t:{a}{w}}" for t, a, w in zip(titles, align, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)) for row in rows]
    return "\n".join(lines)


def print_peer_run(versions: str, data: dict, batch_size: int, epochs: int, load_before, info: dict, results) -> None:
    """A peer's closing report: its versions line, the data and timing settings, the
    load average around the run and `peer_table(results)`."""
    print()
    print(f"{versions}, os.cpu_count()={info['cpu_count']}")
    print(f"{describe(data)}; batch {batch_size}; median of {epochs} epochs after 1 warm-up")
    print(f"load average before/after: {load_before} / {info.get('loadavg')}")
    print()
    print(peer_table(results))


DATA_SETTINGS = ("rows", "domains", "batch_size", "epochs", "seed")
"""The flags every benchmark records: the data and the timing."""


def flag_settings(flag_values, *extra: str) -> dict:
    """`{name: value}` of `DATA_SETTINGS` and `extra` flags (lists as lists), for a JSON
    record."""
    out = {}
    for name in DATA_SETTINGS + extra:
        value = getattr(flag_values, name)
        out[name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def joint_trainer(dataset, name: str = "wdl", adapter: str = "mlora", batch_size: int = 1024,
                  seed: int = DEFAULT_SEED, **trainer_kwargs):
    """A `mlora_tf.training.Trainer` of `name` + `adapter` (the fast loop, batch
    `batch_size`, the run seed `seed`) on `dataset`, in the `joint` phase, as the
    scripts that time our own passes use it. `mlora_tf` is imported here, not at the
    top: the peer venvs import this module without it.

    Returns:
        `(trainer, phase)`.
    """
    import keras

    from mlora_tf.config import ModelConfig, RunConfig, TrainConfig
    from mlora_tf.models import DataSpec, build_model
    from mlora_tf.training import Trainer, schedule_phases
    from mlora_tf.training.loops import resolve_loop

    config = resolve_loop(RunConfig(model=ModelConfig(name=name, adapter=adapter),
                                    train=TrainConfig(batch_size=batch_size, seed=seed)))
    keras.utils.set_random_seed(seed)
    model = build_model(config.model, DataSpec.from_dataset(dataset), graph_seed=seed)
    trainer = Trainer(model, dataset, config.train, **trainer_kwargs)
    phase = schedule_phases("joint", adapter)[0]
    trainer._enter_phase(phase)
    return trainer, phase
