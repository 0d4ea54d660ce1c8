"""The seeded synthetic generator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlora_tf.data import SyntheticConfig, load_dataset, split_sizes
from mlora_tf.data import synthetic

SMALL = dict(n_users=300, n_items=200, n_rows=6000)


def _arrays(ds):
    return {s: {c: a.copy() for c, a in cols.items()} for s, cols in ds.splits.items()}


def _assert_equal(a, b):
    for s in ("train", "val", "test"):
        for c in ("uid", "pid", "domain", "label"):
            np.testing.assert_array_equal(a[s][c], b[s][c])


def test_default_dataset_shape():
    ds = load_dataset("synthetic")
    assert ds.name == "synthetic"
    assert ds.n_domains == 3 and ds.domain_names == ["d0", "d1", "d2"]
    assert ds.vocab_sizes == {"uid": 2000, "pid": 1000, "domain": 3}
    assert sum(ds.num_rows(s) for s in ("train", "val", "test")) == 60000
    assert ds.info["cache_status"] == "disabled"
    assert ds.info["config"] == dataclasses.asdict(SyntheticConfig())
    for split in ("train", "val", "test"):
        assert ds.splits[split]["uid"].dtype == np.int64
        assert ds.splits[split]["label"].dtype == np.float32


def test_deterministic_for_a_seed_and_different_for_another():
    a = load_dataset("synthetic", seed=11, **SMALL)
    b = load_dataset("synthetic", seed=11, **SMALL)
    c = load_dataset("synthetic", seed=12, **SMALL)
    _assert_equal(_arrays(a), _arrays(b))
    assert a.info == b.info
    assert not np.array_equal(a.splits["train"]["uid"], c.splits["train"]["uid"])


def test_knobs_are_respected():
    ds = load_dataset("synthetic", n_domains=5, n_users=123, n_items=45, n_rows=4321,
                      domain_decay=0.8, seed=3)
    assert ds.n_domains == 5 and ds.domain_names == [f"d{d}" for d in range(5)]
    assert ds.vocab_sizes == {"uid": 123, "pid": 45, "domain": 5}
    total = sum(ds.num_rows(s) for s in ("train", "val", "test"))
    assert total == 4321
    for s in ("train", "val", "test"):
        assert ds.splits[s]["uid"].max() < 123 and ds.splits[s]["pid"].max() < 45
    # Domain sizes follow domain_decay ** d.
    per_domain = [sum(ds.num_rows(s, d) for s in ("train", "val", "test")) for d in range(5)]
    weights = 0.8 ** np.arange(5)
    np.testing.assert_allclose(per_domain, 4321 * weights / weights.sum(), atol=1)


def test_domains_are_unequal_and_split_like_movielens():
    ds = load_dataset("synthetic", **SMALL)
    totals = [sum(ds.num_rows(s, d) for s in ("train", "val", "test")) for d in range(3)]
    assert totals[0] > 1.5 * totals[1] > 1.5 * 1.5 * totals[2] > 0
    for d, n in enumerate(totals):
        assert (ds.num_rows("train", d), ds.num_rows("val", d), ds.num_rows("test", d)) == (
            split_sizes(n)
        )


def test_equal_domains_when_decay_is_one():
    ds = load_dataset("synthetic", domain_decay=1.0, n_domains=4, **SMALL)
    totals = [sum(ds.num_rows(s, d) for s in ("train", "val", "test")) for d in range(4)]
    assert totals == [1500] * 4


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_positive_rate_in_range(seed):
    ds = load_dataset("synthetic", seed=seed, **SMALL)
    labels = np.concatenate([ds.splits[s]["label"] for s in ("train", "val", "test")])
    assert 0.20 <= labels.mean() <= 0.35
    for d in range(3):
        assert 0.10 <= ds.positive_rate("train")[d] <= 0.45


def test_positive_rate_knob():
    ds = load_dataset("synthetic", positive_rate=0.1, **SMALL)
    labels = np.concatenate([ds.splits[s]["label"] for s in ("train", "val", "test")])
    assert 0.07 <= labels.mean() <= 0.13


def test_users_appear_in_several_domains():
    ds = load_dataset("synthetic", **SMALL)
    uid = np.concatenate([ds.splits[s]["uid"] for s in ("train", "val", "test")])
    dom = np.concatenate([ds.splits[s]["domain"] for s in ("train", "val", "test")])
    domains_per_user = [len(set(dom[uid == u].tolist())) for u in np.unique(uid)]
    assert np.mean(np.array(domains_per_user) > 1) > 0.5


def _world(shift, seed=5, **kwargs):
    config = SyntheticConfig(shift=shift, **{**SMALL, **kwargs})
    world, table = synthetic.generate(config, seed)
    return world, table


def test_shift_zero_removes_the_domain_effect():
    world, _ = _world(0.0)
    uid = np.arange(50)
    pid = np.arange(50) * 3
    logits = [world.logits(uid, pid, np.full(50, d)) for d in range(3)]
    np.testing.assert_allclose(logits[0], logits[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(logits[0], logits[2], rtol=0, atol=1e-12)


def test_shift_makes_domains_disagree():
    world, _ = _world(1.0)
    uid = np.arange(300)
    pid = np.arange(300) % 200
    logits = [world.logits(uid, pid, np.full(300, d)) for d in range(3)]
    for d in (1, 2):
        gap = np.abs(logits[0] - logits[d]).mean()
        assert gap > 0.5, gap
        # Not just an offset: the ranking of (user, item) pairs changes.
        assert np.corrcoef(logits[0], logits[d])[0, 1] < 0.9


def test_shift_only_scales_the_draws():
    a, table_a = _world(0.0)
    b, table_b = _world(1.0)
    np.testing.assert_array_equal(table_a.columns["uid"], table_b.columns["uid"])
    np.testing.assert_array_equal(table_a.columns["pid"], table_b.columns["pid"])
    np.testing.assert_array_equal(a.user_vectors, b.user_vectors)


def test_labels_follow_the_true_probabilities():
    world, table = _world(1.0, n_rows=20000)
    c = table.columns
    p = world.probabilities(c["uid"], c["pid"], c["domain"])
    high, low = p > 0.7, p < 0.1
    assert c["label"][high].mean() > 0.65 and c["label"][low].mean() < 0.12
    assert abs(c["label"].mean() - p.mean()) < 0.02


def test_oracle_auc_is_recorded_and_high():
    ds = load_dataset("synthetic", **SMALL)
    assert len(ds.info["oracle_test_auc"]) == 3
    assert all(0.75 < auc <= 1.0 for auc in ds.info["oracle_test_auc"])


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match=r"\['n_user'\]"):
        load_dataset("synthetic", n_user=10)


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(n_domains=0), "n_domains"), (dict(shift=-0.1), "shift"),
     (dict(positive_rate=1.0), "positive_rate"), (dict(n_users=2.5), "n_users"),
     (dict(domain_decay=0.0), "domain_decay"), (dict(latent_dim=1), "latent_dim"),
     (dict(home_share=1.5), "home_share"), (dict(n_rows=5, n_domains=3), "n_rows"),
     (dict(shift=float("nan")), "shift")],
)
def test_bad_knob_values_are_rejected(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`.*Received"):
        load_dataset("synthetic", **kwargs)


def test_tiny_last_domain_is_reported():
    with pytest.raises(ValueError, match=r"leaves domain 2 with 0 row.*\[18, 2, 0, 0, 0\]"):
        load_dataset("synthetic", n_domains=5, n_rows=20, domain_decay=0.1)


def test_data_dir_and_domain_split_are_ignored():
    a = load_dataset("synthetic", data_dir="/nonexistent", domain_split="age", **SMALL)
    b = load_dataset("synthetic", **SMALL)
    _assert_equal(_arrays(a), _arrays(b))
