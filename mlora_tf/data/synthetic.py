"""A seeded synthetic multi-domain CTR dataset with planted per-domain effects.

The generative model (all draws from one `numpy.random.Generator(seed)`):

- users and items have latent vectors `p_u, q_i ~ N(0, I_k)` (`k = latent_dim`),
  a popularity bias each (`~ N(0, popularity^2)`), an activity weight
  (log-normal, decides how often a user or item appears);
- domain `d` rotates the latent space: in each coordinate plane `(2j, 2j+1)` by
  angle `shift * phi_dj`, `phi_dj ~ U(-pi, pi)`, adds a bias
  `shift * domain_bias * z_d`, `z_d ~ N(0, 1)`, and has its own linear "taste"
  for user and item latents, `a_d, e_d ~ N(0, I_k)`;
- the logit of row `(u, i, d)` is

      signal * <R_d p_u, q_i> / sqrt(k) + b_u + b_i + c
        + shift * (domain_bias * z_d + taste * (<a_d, p_u> + <e_d, q_i>) / sqrt(2k))

  with the intercept `c` calibrated so the mean click probability over the
  generated rows equals `positive_rate`; the label is `Bernoulli(sigmoid(logit))`.

So `shift = 0` makes every domain identical (the logit does not depend on `d`),
and `shift = 1` gives each domain its own user-item affinity, which a shared
model cannot fit but per-domain adapters can.

Domain sizes are deliberately unequal: domain `d` gets a share proportional to
`domain_decay ** d` of the rows. Each user has a home domain where a share
`home_share` of its activity goes; the rest spreads over the other domains, so
most users appear in several domains.

The rows are then split per domain exactly like MovieLens
(`mlora_tf.data.split`). Synthetic data is not cached (generation takes well
under a second for the default 60k rows).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from mlora_tf.data import split as split_lib
from mlora_tf.data.dataset import InteractionTable, MultiDomainDataset


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic generator (all are `load_dataset` options).

    Attributes:
        n_domains: number of domains `D` (>= 1).
        n_users: number of users; uids are `0..n_users-1`.
        n_items: number of items; pids are `0..n_items-1`.
        n_rows: total interactions over all domains.
        shift: strength of the per-domain effects; 0 -> identical domains.
        latent_dim: size `k` of the user / item latent vectors (>= 2).
        signal: scale of the user-item affinity term of the logit.
        domain_bias: standard deviation of the per-domain logit bias (times
            `shift`).
        taste: scale of the per-domain linear readout of user and item
            latents (times `shift`).
        popularity: standard deviation of the user and item logit biases.
        positive_rate: target mean click probability, in (0, 1).
        domain_decay: domain `d` gets rows in proportion to `domain_decay ** d`;
            1 -> equal sizes.
        home_share: share of a user's activity in its home domain, in [0, 1].
    """

    n_domains: int = 3
    n_users: int = 2000
    n_items: int = 1000
    n_rows: int = 60000
    shift: float = 1.0
    latent_dim: int = 8
    signal: float = 2.0
    domain_bias: float = 0.5
    taste: float = 2.0
    popularity: float = 0.7
    positive_rate: float = 0.27
    domain_decay: float = 0.5
    home_share: float = 0.7

    def __post_init__(self) -> None:
        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
                value < minimum
            ):
                raise ValueError(
                    f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
                )

        def number(name: str, low: float, high: float, open_low: bool = False,
                   open_high: bool = False) -> None:
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            if ok:
                value = float(value)
                ok = math.isfinite(value) or high == math.inf
                ok = ok and (value > low if open_low else value >= low)
                ok = ok and (value < high if open_high else value <= high)
            if not ok:
                bracket = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
                raise ValueError(
                    f"`{name}` must be a number in {bracket}. "
                    f"Received: {name}={getattr(self, name)!r}"
                )

        integer("n_domains", 1)
        integer("n_users", 1)
        integer("n_items", 1)
        integer("latent_dim", 2)
        integer("n_rows", 2 * int(self.n_domains) if isinstance(self.n_domains, int) else 2)
        number("shift", 0.0, math.inf, open_high=True)
        number("signal", 0.0, math.inf, open_high=True)
        number("domain_bias", 0.0, math.inf, open_high=True)
        number("taste", 0.0, math.inf, open_high=True)
        number("popularity", 0.0, math.inf, open_high=True)
        number("positive_rate", 0.0, 1.0, open_low=True, open_high=True)
        number("domain_decay", 0.0, 1.0, open_low=True)
        number("home_share", 0.0, 1.0)


OPTIONS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(SyntheticConfig))


@dataclasses.dataclass
class SyntheticWorld:
    """The hidden parameters of a synthetic dataset; gives true logits.

    Attributes:
        config: the generator settings.
        user_vectors: `(n_users, k)` latent vectors.
        item_vectors: `(n_items, k)` latent vectors.
        user_bias: `(n_users,)` popularity bias.
        item_bias: `(n_items,)` popularity bias.
        rotations: `(D, k, k)` per-domain rotations of the user vectors.
        domain_offsets: `(D,)` per-domain logit bias (already times `shift`).
        user_taste: `(D, k)` per-domain readout of user vectors (times
            `shift * taste / sqrt(2k)`).
        item_taste: `(D, k)` per-domain readout of item vectors (same scale).
        intercept: calibrated global intercept `c`.
    """

    config: SyntheticConfig
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    rotations: np.ndarray
    domain_offsets: np.ndarray
    user_taste: np.ndarray
    item_taste: np.ndarray
    intercept: float = 0.0

    def logits(self, uid: np.ndarray, pid: np.ndarray, domain: np.ndarray) -> np.ndarray:
        """True logits of rows `(uid, pid, domain)` (broadcast 1-D arrays)."""
        uid, pid, domain = np.broadcast_arrays(
            np.asarray(uid), np.asarray(pid), np.asarray(domain)
        )
        k = self.config.latent_dim
        rotated = np.einsum("nk,nkj->nj", self.user_vectors[uid], self.rotations[domain])
        affinity = np.sum(rotated * self.item_vectors[pid], axis=-1) / math.sqrt(k)
        taste = np.sum(self.user_vectors[uid] * self.user_taste[domain], axis=-1) + np.sum(
            self.item_vectors[pid] * self.item_taste[domain], axis=-1
        )
        return (
            self.config.signal * affinity
            + taste
            + self.user_bias[uid]
            + self.item_bias[pid]
            + self.domain_offsets[domain]
            + self.intercept
        )

    def probabilities(self, uid: np.ndarray, pid: np.ndarray, domain: np.ndarray) -> np.ndarray:
        """True click probabilities `sigmoid(logits)`."""
        return _sigmoid(self.logits(uid, pid, domain))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _rotations(angles: np.ndarray, k: int) -> np.ndarray:
    """`(D, k, k)` block rotations; `angles` is `(D, k // 2)`."""
    n_domains = angles.shape[0]
    out = np.tile(np.eye(k), (n_domains, 1, 1))
    for j in range(k // 2):
        a, b = 2 * j, 2 * j + 1
        cos, sin = np.cos(angles[:, j]), np.sin(angles[:, j])
        out[:, a, a], out[:, a, b] = cos, -sin
        out[:, b, a], out[:, b, b] = sin, cos
    return out


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `weights`."""
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = total - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def _calibrate_intercept(base: np.ndarray, target: float) -> float:
    """`c` with `mean(sigmoid(base + c)) == target` (bisection)."""
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if _sigmoid(base + mid).mean() < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def generate(config: SyntheticConfig, seed: int) -> tuple[SyntheticWorld, InteractionTable]:
    """Draws the hidden world and the unsplit interaction table.

    The random draws do not depend on `shift` (it only scales them), so two
    configs that differ only in `shift` share users, items and row ids.
    """
    rng = np.random.default_rng(seed)
    c = config
    k, n_domains = c.latent_dim, c.n_domains
    user_vectors = rng.standard_normal((c.n_users, k))
    item_vectors = rng.standard_normal((c.n_items, k))
    user_bias = c.popularity * rng.standard_normal(c.n_users)
    item_bias = c.popularity * rng.standard_normal(c.n_items)
    angles = rng.uniform(-np.pi, np.pi, size=(n_domains, k // 2))
    domain_z = rng.standard_normal(n_domains)
    user_taste = rng.standard_normal((n_domains, k))
    item_taste = rng.standard_normal((n_domains, k))
    user_activity = rng.lognormal(0.0, 1.0, size=c.n_users)
    item_activity = rng.lognormal(0.0, 1.0, size=c.n_items)
    domain_weights = c.domain_decay ** np.arange(n_domains, dtype=np.float64)
    domain_weights /= domain_weights.sum()
    home = rng.choice(n_domains, size=c.n_users, p=domain_weights)

    counts = _largest_remainder(c.n_rows, domain_weights)
    if counts.min() < 2:
        raise ValueError(
            f"n_rows={c.n_rows} with domain_decay={c.domain_decay} leaves domain "
            f"{int(np.argmin(counts))} with {int(counts.min())} row(s); at least 2 are "
            f"needed. Received: per-domain rows {counts.tolist()}"
        )
    item_p = item_activity / item_activity.sum()
    uid_parts, pid_parts, domain_parts = [], [], []
    for d in range(n_domains):
        if n_domains == 1:
            share = np.ones(c.n_users)
        else:
            share = np.where(home == d, c.home_share, (1.0 - c.home_share) / (n_domains - 1))
        user_p = user_activity * share
        if user_p.sum() <= 0:  # home_share == 1 and nobody lives here.
            user_p = user_activity.copy()
        user_p /= user_p.sum()
        uid_parts.append(rng.choice(c.n_users, size=int(counts[d]), p=user_p))
        pid_parts.append(rng.choice(c.n_items, size=int(counts[d]), p=item_p))
        domain_parts.append(np.full(int(counts[d]), d, dtype=np.int64))
    uid = np.concatenate(uid_parts).astype(np.int64)
    pid = np.concatenate(pid_parts).astype(np.int64)
    domain = np.concatenate(domain_parts)

    world = SyntheticWorld(
        config=c,
        user_vectors=user_vectors,
        item_vectors=item_vectors,
        user_bias=user_bias,
        item_bias=item_bias,
        rotations=_rotations(c.shift * angles, k),
        domain_offsets=c.shift * c.domain_bias * domain_z,
        user_taste=(c.shift * c.taste / math.sqrt(2 * k)) * user_taste,
        item_taste=(c.shift * c.taste / math.sqrt(2 * k)) * item_taste,
    )
    world.intercept = _calibrate_intercept(world.logits(uid, pid, domain), c.positive_rate)
    probability = world.probabilities(uid, pid, domain)
    label = (rng.random(len(uid)) < probability).astype(np.float32)

    table = InteractionTable(
        name="synthetic",
        n_domains=n_domains,
        vocab_sizes={"uid": c.n_users, "pid": c.n_items, "domain": n_domains},
        domain_names=[f"d{d}" for d in range(n_domains)],
        columns={"uid": uid, "pid": pid, "domain": domain, "label": label},
        info={
            "loader": "synthetic",
            "config": dataclasses.asdict(c),
            "seed": int(seed),
            "intercept": float(world.intercept),
            "domain_weights": domain_weights.tolist(),
            "true_positive_rate": [
                float(probability[domain == d].mean()) for d in range(n_domains)
            ],
        },
    )
    return world, table


def _oracle_auc(world: SyntheticWorld, columns: dict[str, np.ndarray]) -> float | None:
    labels = columns["label"]
    if labels.size == 0 or labels.min() == labels.max():
        return None
    scores = world.logits(columns["uid"], columns["pid"], columns["domain"])
    return float(roc_auc_score(labels, scores))


def load_synthetic(
    *,
    seed: int = split_lib.DEFAULT_SEED,
    fractions: Sequence[float] = split_lib.DEFAULT_FRACTIONS,
    **knobs,
) -> MultiDomainDataset:
    """Generates and splits the synthetic dataset.

    Args:
        seed: seeds both the generator and the split.
        fractions: `(train, val, test)` split fractions.
        **knobs: `SyntheticConfig` fields (`n_domains`, `n_users`, `n_items`,
            `n_rows`, `shift`, ...). Unknown names raise ValueError.

    Returns:
        A `MultiDomainDataset` named `"synthetic"`. `info["oracle_test_auc"]`
        holds, per domain, the test AUC of the true logits (an upper bound
        for any model).
    """
    unknown = sorted(set(knobs) - OPTIONS)
    if unknown:
        raise ValueError(
            f"Unknown synthetic option(s) {unknown}; valid ones are "
            f"{sorted(OPTIONS | {'fractions'})}. Received: {unknown}"
        )
    seed = split_lib.check_seed(seed)
    config = SyntheticConfig(**knobs)
    world, table = generate(config, seed)
    splits, split_info = split_lib.split_by_domain(table, seed=seed, fractions=fractions)
    info = dict(table.info)
    info["split"] = split_info
    dataset = MultiDomainDataset(
        name=table.name,
        n_domains=table.n_domains,
        vocab_sizes=table.vocab_sizes,
        domain_names=table.domain_names,
        splits=splits,
        info=info,
    )
    dataset.info["oracle_test_auc"] = [
        _oracle_auc(world, dataset.domain_slice("test", d)) for d in range(table.n_domains)
    ]
    dataset.info["cache_status"] = "disabled"
    return dataset
