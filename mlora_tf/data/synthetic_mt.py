"""Seeded synthetic multi-domain multi-task data (offline stand-in for `ml-1m-m3oe`).

Registered as `synthetic-mt`. It has the schema of M3oE's MovieLens variant
(`mlora_tf.data.movielens_m3oe`), so the M3oE model and a multi-task trainer run on
it unchanged: sparse `uid, pid, domain, gender, occupation, zip, cate_id`, dense
`age`, labels `click` and `like`, three age domains.

**Users and items.** Each user has a gender, an occupation, a zip bucket and an
ML-1M age code; the age code fixes the user's domain exactly as in M3oE ({1, 18} ->
0, {25} -> 1, {35, ..., 56} -> 2), with domain shares `domain_shares`. Each item
has a category. Users and items have latent vectors `p_u, q_i` (size `k`),
popularity biases and log-normal activities; a row draws its user and item by
activity, so users and items recur.

**Logits.** For a row of user `u` (domain `d`), item `i` (category `c`) and task `t`:

    common = signal * <p_u, q_i> / sqrt(k) + b_u + b_i
    domain = shift * (delta_d + <a_d, p_u> / sqrt(k))                 (planted domain effect)
    task   = task_shift * (<w_t, q_i> / sqrt(k) + gamma_{d,t} + kappa_{c,t})   (planted task effects)
    logit_t = common + domain + task + c_t

with `c_t` calibrated so the mean probability of task `t` is `positive_rates[t]`
(defaults 0.575 and 0.226: ML-1M's click and like rates). `w_t` is a per-task
item readout, `gamma_{d,t}` a per-(domain, task) offset, `kappa_{c,t}` a
per-(category, task) offset.

**Labels.** `P(label_t = 1) = sigmoid(logit_t)` exactly, and the two labels are
coupled by a Gaussian copula with correlation `label_correlation`: `u_t =
Phi(rho z_0 + sqrt(1 - rho^2) z_t)`, `label_t = [u_t < p_t]`. So the labels are
correlated through the shared `common` and `domain` terms and through the copula.
(Unlike MovieLens, `like` does not imply `click`.)

**Split.** Rows are generated in random order and split positionally (80/10/10 by
default, `movielens_m3oe.positional_split_sizes`), i.e. a random split.
`info["oracle_test_auc"]` holds the test AUC of the true logits per task and domain.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import special
from sklearn.metrics import roc_auc_score

from mlora_tf.data import movielens_m3oe as m3oe_data
from mlora_tf.data import split as split_lib
from mlora_tf.data.dataset import MultiDomainDataset

AGE_CODES_BY_DOMAIN: tuple[tuple[int, ...], ...] = ((1, 18), (25,), (35, 45, 50, 56))


@dataclasses.dataclass(frozen=True)
class SyntheticMTConfig:
    """Knobs of the multi-task generator (all are `load_dataset("synthetic-mt")` options).

    Attributes:
        n_users: number of users.
        n_items: number of items.
        n_rows: number of rows (>= 10).
        n_occupations: distinct occupations.
        n_zips: distinct zip codes.
        n_categories: distinct item categories.
        latent_dim: size `k` of the latent vectors (>= 2).
        signal: scale of the user-item affinity.
        popularity: standard deviation of user and item biases.
        shift: strength of the planted domain effects (0: identical domains).
        task_shift: strength of the planted task effects (0: the tasks differ only
            in their intercept).
        label_correlation: copula correlation of the two labels' noise, in [0, 1).
        positive_rates: target mean probability of `click` and `like`.
        domain_shares: share of users in each of the 3 domains.
    """

    n_users: int = 1500
    n_items: int = 600
    n_rows: int = 40000
    n_occupations: int = 21
    n_zips: int = 100
    n_categories: int = 18
    latent_dim: int = 8
    signal: float = 2.0
    popularity: float = 0.6
    shift: float = 1.0
    task_shift: float = 1.0
    label_correlation: float = 0.5
    positive_rates: tuple[float, float] = (0.575, 0.226)
    domain_shares: tuple[float, float, float] = (0.21, 0.40, 0.39)

    def __post_init__(self) -> None:
        object.__setattr__(self, "positive_rates", tuple(self.positive_rates))
        object.__setattr__(self, "domain_shares", tuple(self.domain_shares))
        for name, minimum in (("n_users", 3), ("n_items", 1), ("n_rows", 10), ("n_occupations", 1),
                              ("n_zips", 1), ("n_categories", 1), ("latent_dim", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
        for name in ("signal", "popularity", "shift", "task_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ValueError(f"`{name}` must be a finite number >= 0. Received: {name}={value!r}")
        rho = self.label_correlation
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho < 1:
            raise ValueError(
                f"`label_correlation` must be a number in [0, 1). Received: label_correlation={rho!r}"
            )
        rates = self.positive_rates
        if len(rates) != 2 or not all(isinstance(r, (int, float)) and 0 < r < 1 for r in rates):
            raise ValueError(
                "`positive_rates` must be two numbers in (0, 1) (click, like). "
                f"Received: positive_rates={rates!r}"
            )
        shares = self.domain_shares
        if len(shares) != 3 or not all(isinstance(s, (int, float)) and s > 0 for s in shares):
            raise ValueError(
                "`domain_shares` must be three positive numbers. "
                f"Received: domain_shares={shares!r}"
            )


OPTIONS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(SyntheticMTConfig))


@dataclasses.dataclass
class SyntheticMTWorld:
    """The hidden parameters; `logits(uid, pid)` gives the true `(n, 2)` logits."""

    config: SyntheticMTConfig
    user_domain: np.ndarray
    item_category: np.ndarray
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    domain_offsets: np.ndarray  # (3,), times shift
    domain_readout: np.ndarray  # (3, k), times shift / sqrt(k)
    task_readout: np.ndarray  # (2, k), times task_shift / sqrt(k)
    domain_task_offsets: np.ndarray  # (3, 2), times task_shift
    category_task_offsets: np.ndarray  # (C, 2), times task_shift
    intercepts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))

    def logits(self, uid: np.ndarray, pid: np.ndarray) -> np.ndarray:
        """True logits `(n, 2)` (click, like) of rows `(uid, pid)`."""
        uid, pid = np.asarray(uid), np.asarray(pid)
        k = self.config.latent_dim
        p, q = self.user_vectors[uid], self.item_vectors[pid]
        d, c = self.user_domain[uid], self.item_category[pid]
        common = self.config.signal * np.sum(p * q, axis=-1) / math.sqrt(k)
        common = common + self.user_bias[uid] + self.item_bias[pid]
        domain = self.domain_offsets[d] + np.sum(p * self.domain_readout[d], axis=-1)
        task = q @ self.task_readout.T + self.domain_task_offsets[d] + self.category_task_offsets[c]
        return (common + domain)[:, None] + task + self.intercepts


def _calibrate(base: np.ndarray, target: float) -> float:
    """`c` with `mean(sigmoid(base + c)) == target` (bisection)."""
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if special.expit(base + mid).mean() < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def generate(config: SyntheticMTConfig, seed: int) -> tuple[SyntheticMTWorld, dict[str, np.ndarray]]:
    """Draws the hidden world and the rows (raw values, generation order)."""
    rng = np.random.default_rng(seed)
    c, k = config, config.latent_dim
    shares = np.asarray(c.domain_shares, dtype=np.float64)
    shares /= shares.sum()
    user_domain = rng.choice(3, size=c.n_users, p=shares)
    user_domain[:3] = np.arange(3)  # every domain has a user
    age_code = np.array([rng.choice(AGE_CODES_BY_DOMAIN[d]) for d in user_domain], dtype=np.int64)
    gender = rng.choice(np.array(["F", "M"], dtype=object), size=c.n_users, p=[0.28, 0.72])
    occupation = rng.integers(0, c.n_occupations, size=c.n_users)
    zip_code = np.array([f"{z:05d}" for z in rng.integers(0, c.n_zips, size=c.n_users)], dtype=object)
    item_category = rng.integers(0, c.n_categories, size=c.n_items)
    user_activity = rng.lognormal(0.0, 1.0, size=c.n_users)
    item_activity = rng.lognormal(0.0, 1.0, size=c.n_items)
    scale = 1.0 / math.sqrt(k)
    world = SyntheticMTWorld(
        config=c,
        user_domain=user_domain,
        item_category=item_category,
        user_vectors=rng.standard_normal((c.n_users, k)),
        item_vectors=rng.standard_normal((c.n_items, k)),
        user_bias=c.popularity * rng.standard_normal(c.n_users),
        item_bias=c.popularity * rng.standard_normal(c.n_items),
        domain_offsets=c.shift * 0.5 * rng.standard_normal(3),
        domain_readout=c.shift * scale * rng.standard_normal((3, k)),
        task_readout=c.task_shift * scale * rng.standard_normal((2, k)),
        domain_task_offsets=c.task_shift * 0.5 * rng.standard_normal((3, 2)),
        category_task_offsets=c.task_shift * 0.5 * rng.standard_normal((c.n_categories, 2)),
    )
    uid = rng.choice(c.n_users, size=c.n_rows, p=user_activity / user_activity.sum())
    pid = rng.choice(c.n_items, size=c.n_rows, p=item_activity / item_activity.sum())
    base = world.logits(uid, pid)
    world.intercepts = np.array(
        [_calibrate(base[:, t], c.positive_rates[t]) for t in range(2)], dtype=np.float64
    )
    probability = special.expit(base + world.intercepts)
    rho = c.label_correlation
    z0 = rng.standard_normal(c.n_rows)
    noise = rho * z0[:, None] + math.sqrt(1.0 - rho * rho) * rng.standard_normal((c.n_rows, 2))
    labels = (special.ndtr(noise) < probability).astype(np.float32)
    rows = {
        "uid": uid,
        "pid": pid,
        "domain": user_domain[uid],
        "gender": gender[uid],
        "occupation": occupation[uid],
        "zip": zip_code[uid],
        "cate_id": item_category[pid],
        "age_code": age_code[uid],
        "click": labels[:, 0],
        "like": labels[:, 1],
    }
    return world, rows


def load_synthetic_multitask(
    *,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = m3oe_data.DEFAULT_FRACTIONS,
    **knobs,
) -> MultiDomainDataset:
    """Generates and splits the synthetic multi-task dataset.

    Args:
        seed: seeds the generator (the split is positional).
        fractions: `(train, val, test)`, default `(0.8, 0.1, 0.1)`.
        **knobs: `SyntheticMTConfig` fields. Unknown names raise ValueError.

    Returns:
        A `MultiDomainDataset` named `"synthetic-mt"` with the schema of
        `ml-1m-m3oe`. Ids are label-encoded in sorted order like the MovieLens
        variant (so `uid` is the user index only if every user occurs).
    """
    unknown = sorted(set(knobs) - OPTIONS)
    if unknown:
        raise ValueError(
            f"Unknown synthetic-mt option(s) {unknown}; valid ones are "
            f"{sorted(OPTIONS | {'fractions'})}. Received: {unknown}"
        )
    seed = split_lib.check_seed(seed)
    fractions = split_lib.check_fractions(fractions)
    config = SyntheticMTConfig(**knobs)
    world, raw = generate(config, seed)

    columns: dict[str, np.ndarray] = {"domain": raw["domain"].astype(np.int64)}
    vocab_sizes = {"domain": 3}
    for name in ("uid", "pid", "gender", "occupation", "zip", "cate_id"):
        columns[name], vocab_sizes[name] = m3oe_data.label_encode(raw[name])
    columns["age"], _, _ = m3oe_data.min_max(raw["age_code"])
    columns["click"], columns["like"] = raw["click"], raw["like"]
    n = len(columns["domain"])
    n_train, n_val, _ = m3oe_data.positional_split_sizes(n, fractions)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    splits = {s: {c: v[a:b] for c, v in columns.items()} for s, (a, b) in bounds.items()}
    raw_ids = {s: (raw["uid"][a:b], raw["pid"][a:b], raw["domain"][a:b]) for s, (a, b) in bounds.items()}

    uid, pid, domain = raw_ids["test"]
    test_logits = world.logits(uid, pid)
    oracle = {}
    for t, task in enumerate(m3oe_data.TASKS):
        labels = splits["test"][task]
        per_domain = []
        for d in range(3):
            rows = domain == d
            y = labels[rows]
            per_domain.append(
                None if y.size == 0 or y.min() == y.max()
                else float(roc_auc_score(y, test_logits[rows, t]))
            )
        oracle[task] = per_domain
    both = columns["click"] * columns["like"]
    info = {
        "loader": "synthetic-mt",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()},
        "seed": int(seed),
        "tasks": list(m3oe_data.TASKS),
        "intercepts": world.intercepts.tolist(),
        "positives": {t: int(columns[t].sum()) for t in m3oe_data.TASKS},
        "both_positive": int(both.sum()),
        "split": {
            "method": "positional over rows in (random) generation order",
            "fractions": list(fractions),
            "sizes": [len(splits[s]["domain"]) for s in ("train", "val", "test")],
        },
        "oracle_test_auc": oracle,
        "cache_status": "disabled",
    }
    return MultiDomainDataset(
        name="synthetic-mt",
        n_domains=3,
        vocab_sizes=vocab_sizes,
        domain_names=list(m3oe_data.DOMAIN_NAMES),
        splits=splits,
        info=info,
        features=m3oe_data.FEATURES,
        labels=m3oe_data.TASKS,
        dense_features=m3oe_data.DENSE_FEATURES,
    )
