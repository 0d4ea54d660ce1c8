"""Per-domain stratified train / val / test split (as the original MLoRA code).

For each domain separately the rows are split 60 / 20 / 20, stratified on the
label, with scikit-learn's `train_test_split` and `random_state=seed` (123 in
every original config):

1. `train_test_split(rows, stratify=label, test_size=1 - train_fraction)` gives
   train and a temporary set;
2. if the temporary set has more than one row it is split again the same way
   with `test_size = test_fraction / (val_fraction + test_fraction)` into val and
   test; a single temporary row goes to test (val stays empty).

Sizes follow `split_sizes`. For 60/20/20 and `n` rows, with `a = ceil(2n/5)`:
`train = n - a`, `test = ceil(a/2)` and `val = a - test` when `a >= 2`, and
`1/0/1` for `n = 2`. So `test >= val` always.

Deliberate differences from the original:

- The original shuffled the whole table with an unseeded
  `DataFrame.sample(frac=1.0)` before splitting, so its split membership is not
  reproducible. Here each domain's rows are given to the splitter in source
  (file) order, which makes the split a pure function of the data and the seed.
- The original crashes on a domain that scikit-learn cannot stratify (a label
  class with fewer than 2 members in a set being split). Here that domain falls
  back to an unstratified split of the same sizes, with a warning naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from absl import logging
from sklearn.model_selection import train_test_split

from mlora_tf.data.dataset import SPLITS, InteractionTable

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)
DEFAULT_SEED = 123


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validates `(train, val, test)` fractions and returns them as floats.

    Each fraction must be in (0, 1) and they must add up to 1 (to 1e-9).
    """
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ValueError(
            "`fractions` must be three numbers (train, val, test). "
            f"Received: fractions={fractions!r}"
        ) from None
    if len(values) != 3 or not all(0.0 < f < 1.0 for f in values):
        raise ValueError(
            "`fractions` must be three numbers in (0, 1) (train, val, test). "
            f"Received: fractions={fractions!r}"
        )
    if not math.isclose(sum(values), 1.0, rel_tol=0.0, abs_tol=1e-9):
        raise ValueError(
            f"`fractions` must add up to 1.0. Received: fractions={fractions!r} "
            f"(sum {sum(values)!r})"
        )
    return values  # type: ignore[return-value]


def check_seed(seed: object) -> int:
    """Validates a split seed (a `random_state` for scikit-learn)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
        0 <= seed < 2**32
    ):
        raise ValueError(
            f"`seed` must be an integer in [0, 2**32). Received: seed={seed!r}"
        )
    return int(seed)


def _holdout_size(n: int, test_size: float) -> int:
    """Rows scikit-learn puts in the test part for a float `test_size`."""
    return int(math.ceil(test_size * n))


def split_sizes(
    n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> tuple[int, int, int]:
    """Row counts `(train, val, test)` the splitter gives for `n` rows.

    This is scikit-learn's arithmetic (`n_test = ceil(test_size * n)`,
    `n_train = n - n_test`) applied twice, as in datasets.md §1.3. For the
    default 60/20/20 it equals: `a = ceil(2n/5)`, `train = n - a`, and
    `test = ceil(a/2)`, `val = a - test` if `a >= 2`, else `val = 0, test = 1`.

    Args:
        n: number of rows of one domain.
        fractions: `(train, val, test)` fractions, adding up to 1.

    Raises:
        ValueError: if `n < 2` (the train part would be empty) or the fractions
            are invalid.
    """
    train_f, val_f, test_f = check_fractions(fractions)
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(
            f"Need at least 2 rows to split into train/val/test. Received: n={n!r}"
        )
    n = int(n)
    held_out = _holdout_size(n, 1.0 - train_f)
    train = n - held_out
    if train <= 0 or held_out <= 0:
        raise ValueError(
            f"{n} rows with fractions {fractions} leave an empty train or "
            f"held-out part. Received: n={n}"
        )
    if held_out == 1:
        return train, 0, 1
    test = _holdout_size(held_out, test_f / (val_f + test_f))
    return train, held_out - test, test


def _two_way(
    index: np.ndarray,
    labels: np.ndarray,
    test_size: float,
    seed: int,
    domain_label: str,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One stratified `train_test_split`; unstratified if sklearn refuses."""
    try:
        first, second = train_test_split(
            index, test_size=test_size, random_state=seed, stratify=labels
        )
        return first, second, False
    except ValueError as error:
        logging.warning(
            "Domain %s cannot be stratified on the label (%s); using an "
            "unstratified split of the same sizes.",
            domain_label,
            error,
        )
    first, second = train_test_split(
        index, test_size=test_size, random_state=seed, shuffle=True
    )
    return first, second, True


def split_indices(
    labels: np.ndarray,
    *,
    seed: int = DEFAULT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    domain_label: str = "?",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Splits the rows of one domain; returns positions into `labels`.

    Args:
        labels: the domain's labels, in the row order to split (source order).
        seed: `random_state` of both `train_test_split` calls.
        fractions: `(train, val, test)`.
        domain_label: how to name the domain in warnings and errors.

    Returns:
        `(train, val, test, fell_back)`: int64 position arrays in the order
        scikit-learn returns them, and whether stratification was abandoned.

    Raises:
        ValueError: if the domain has fewer than 2 rows.
    """
    train_f, val_f, test_f = check_fractions(fractions)
    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise ValueError(
            f"Domain {domain_label} has {n} row(s); at least 2 are needed to "
            f"split it into train/val/test. Received: {n} rows"
        )
    index = np.arange(n, dtype=np.int64)
    train, rest, fell_back = _two_way(index, labels, 1.0 - train_f, seed, domain_label)
    if len(rest) == 1:
        return train, rest[:0], rest, fell_back
    val, test, fell_back_2 = _two_way(
        rest, labels[rest], test_f / (val_f + test_f), seed, domain_label
    )
    return train, val, test, fell_back or fell_back_2


def split_by_domain(
    table: InteractionTable,
    *,
    seed: int = DEFAULT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Splits every domain of `table` separately (see the module docstring).

    Returns:
        `(splits, split_info)`: `splits[split][column]` with rows grouped by
        domain (domain 0 first), and a JSON-serialisable description of the
        split (fractions, seed, domains that could not be stratified).

    Raises:
        ValueError: if a domain has fewer than 2 rows (it names the domain).
    """
    fractions = check_fractions(fractions)
    seed = check_seed(seed)
    columns = table.columns
    domain = columns["domain"]
    # Stable sort keeps each domain's rows in source order.
    order = np.argsort(domain, kind="stable")
    bounds = np.searchsorted(domain[order], np.arange(table.n_domains + 1))
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    fallbacks = []
    for d in range(table.n_domains):
        rows = order[bounds[d] : bounds[d + 1]]
        label = f"{d} ('{table.domain_names[d]}') of {table.name}"
        train, val, test, fell_back = split_indices(
            columns[table.labels[0]][rows], seed=int(seed), fractions=fractions,
            domain_label=label,
        )
        if fell_back:
            fallbacks.append(d)
        for split, positions in zip(SPLITS, (train, val, test)):
            parts[split].append(rows[positions])
    splits = {}
    for split in SPLITS:
        rows = np.concatenate(parts[split]) if parts[split] else np.zeros(0, np.int64)
        splits[split] = {c: columns[c][rows] for c in table.column_names}
    split_info = {
        "method": "per-domain stratified train_test_split, source row order",
        "fractions": list(fractions),
        "seed": int(seed),
        "unstratified_domains": fallbacks,
    }
    return splits, split_info
