"""Taobao loader (theme selection, embedding filter, negatives, time variant, embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

from mlora_tf.data import amazon, load_dataset, taobao
from mlora_tf.data.prepared import get_extras
from tests.fixtures_taobao import write_taobao

SPLITS = ("train", "val", "test")


@pytest.fixture(autouse=True)
def _isolated_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLORA_TF_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_taobao(tmp_path_factory.mktemp("taobao") / "raw")


@pytest.fixture(scope="module")
def taobao10(fixture):
    return load_dataset("taobao", data_dir=fixture.folder, domain_split="theme_10", cache_dir=False)


def _domain_rows(ds, k):
    return {c: np.concatenate([ds.domain_slice(s, k)[c] for s in SPLITS]) for c in ("uid", "pid", "label")}


def test_theme_selection_is_first_appearance_after_the_filter(fixture, taobao10):
    ds = taobao10
    themes = fixture.themes(10)
    assert ds.n_domains == 10
    assert ds.domain_names == [f"theme_{t}" for t in themes]
    assert ds.info["selected_themes"] == themes
    # The log's first theme lost every row to the embedding filter: domain 0 is its second.
    order = list(dict.fromkeys(t for _, t, _, _ in fixture.clicks))
    assert themes[0] == order[1] and themes != sorted(themes)
    users, items = fixture.maps(10)
    assert ds.vocab_sizes == {"uid": len(users), "pid": len(items), "domain": 10}
    assert ds.info["rho"] == list(amazon.RHO_TABLE_SEED_123[:10])


def test_sizes_positives_and_negatives(fixture, taobao10):
    ds = taobao10
    sizes = ds.sizes()
    for k in range(10):
        rho = amazon.RHO_TABLE_SEED_123[k]
        assert (sizes["train"][k], sizes["val"][k], sizes["test"][k]) == fixture.expected_sizes(10, k, rho)
        rows = _domain_rows(ds, k)
        pos = rows["label"] == 1
        expected = fixture.positives(10, k)
        assert sorted(zip(rows["uid"][pos].tolist(), rows["pid"][pos].tolist())) == sorted(expected)
        own: dict[int, set] = {}
        for u, p in expected:
            own.setdefault(u, set()).add(p)
        pool = {p for _, p in expected}
        counts: dict[int, int] = {}
        for u, p in zip(rows["uid"][~pos].tolist(), rows["pid"][~pos].tolist()):
            assert p in pool and p not in own[u]
            counts[u] = counts.get(u, 0) + 1
        assert counts == {u: m for u, m in fixture.negatives_per_user(10, k, rho).items() if m}


def test_nested_prefixes_share_domains_and_ratios(fixture, taobao10):
    ds5 = load_dataset("taobao", data_dir=fixture.folder, domain_split="theme_5", cache_dir=False)
    assert ds5.domain_names == taobao10.domain_names[:5]
    assert ds5.info["rho"] == taobao10.info["rho"][:5]
    with pytest.raises(ValueError, match="has 11 theme.*30 were asked for"):
        load_dataset("taobao", data_dir=fixture.folder, domain_split="theme_30", cache_dir=False)
    everything = load_dataset("taobao", data_dir=fixture.folder, domain_split="theme_all", cache_dir=False)
    assert everything.n_domains == 11


def test_pretrained_embeddings_rows_follow_the_remapped_ids(fixture, taobao10):
    emb = taobao.pretrained_embeddings(taobao10)
    users, items = fixture.maps(10)
    assert emb["uid"].shape == (len(users), 16) and emb["uid"].dtype == np.float32
    assert emb["pid"].shape == (len(items), 16)
    for raw, new in users.items():
        np.testing.assert_allclose(emb["uid"][new], fixture.user_vectors[raw], rtol=1e-6)
    for raw, new in items.items():
        np.testing.assert_allclose(emb["pid"][new], fixture.item_vectors[raw], rtol=1e-6)
    assert taobao10.info["embedding_dim"] == {"uid": 16, "pid": 16}


def test_embeddings_survive_the_cache_and_a_prepared_folder(fixture, taobao10, tmp_path):
    first = load_dataset("taobao", data_dir=fixture.folder, cache_dir=tmp_path / "c")
    hit = load_dataset("taobao", data_dir=fixture.folder, cache_dir=tmp_path / "c")
    assert (first.info["cache_status"], hit.info["cache_status"]) == ("built", "hit")
    assert first.name == "taobao/theme_10"  # default split
    np.testing.assert_array_equal(taobao.pretrained_embeddings(hit)["pid"],
                                  taobao.pretrained_embeddings(taobao10)["pid"])
    # A damaged sidecar makes both files be rebuilt.
    side = hit.info["extras"]["file"]
    with open(side, "r+b") as f:
        f.truncate(50)
    again = load_dataset("taobao", data_dir=fixture.folder, cache_dir=tmp_path / "c")
    assert again.info["cache_status"] == "built"
    np.testing.assert_array_equal(taobao.pretrained_embeddings(again)["uid"],
                                  taobao.pretrained_embeddings(taobao10)["uid"])
    with pytest.raises(ValueError, match="no pretrained embeddings"):
        taobao.pretrained_embeddings(load_dataset("synthetic", n_rows=200, n_users=20, n_items=20))


def test_time_variant(fixture):
    ds = load_dataset("taobao", data_dir=fixture.folder, domain_split="theme_10_time", cache_dir=False)
    extras = get_extras(ds)
    sizes = ds.sizes()
    for k in range(10):
        rho = amazon.RHO_TABLE_SEED_123[k]
        assert (sizes["train"][k], sizes["val"][k], sizes["test"][k]) == fixture.expected_sizes(10, k, rho, True)
    # The repeated click at another time stays a separate positive.
    assert sum(len(fixture.positives(10, k, True)) for k in range(10)) > sum(
        len(fixture.positives(10, k)) for k in range(10))
    for k in range(10):
        latest_train, earliest_rest = -1, np.inf
        for split in SPLITS:
            start = int(ds._offsets[split][k])
            labels = ds.domain_slice(split, k)["label"]
            times = extras[f"{split}__reach_time"][start:start + len(labels)]
            assert np.all(times[labels == 0] == 0) and np.all(times[labels == 1] > 0)
            if split == "train":
                latest_train = times[labels == 1].max()
            elif (labels == 1).any():
                earliest_rest = min(earliest_rest, times[labels == 1].min())
        assert latest_train <= earliest_rest


@pytest.mark.parametrize("split", ["theme_0", "theme_x", "category_6", "theme_10_times"])
def test_bad_domain_split(fixture, split):
    with pytest.raises(ValueError, match="Unknown Taobao domain split"):
        load_dataset("taobao", data_dir=fixture.folder, domain_split=split, cache_dir=False)


def test_raw_file_errors(tmp_path):
    fx = write_taobao(tmp_path / "raw")
    log = tmp_path / "raw" / "theme_click_log.csv"
    lines = log.read_text().splitlines()
    parts = lines[4].split(",")
    parts[1] = "12x"
    log.write_text("\n".join(lines[:4] + [",".join(parts)] + lines[5:]) + "\n")
    with pytest.raises(ValueError, match=r"line 5 of .*theme_click_log.csv: column user_id .*'12x'"):
        load_dataset("taobao", data_dir=fx.folder, cache_dir=False)
    log.write_text("\n".join(lines).replace(",", ";") + "\n")
    with pytest.raises(ValueError, match="lacks the column.*comma-separated"):
        load_dataset("taobao", data_dir=fx.folder, cache_dir=False)
    log.write_text("\n".join(lines) + "\n")
    emb = tmp_path / "raw" / "item_embedding.csv"
    rows = emb.read_text().splitlines()
    used = fx.maps(10)[1]
    j = next(j for j, row in enumerate(rows) if j >= 2 and int(row.split(",")[0]) in used)
    rows[j] = rows[j].rsplit(" ", 1)[0]  # one number short
    emb.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=f"line {j + 1} of .*item_embedding.csv.*16 numbers"):
        load_dataset("taobao", data_dir=fx.folder, cache_dir=False)
    (tmp_path / "raw" / "user_embedding.csv").unlink()
    with pytest.raises(FileNotFoundError, match="user_embedding.csv"):
        load_dataset("taobao", data_dir=fx.folder, cache_dir=False)


def test_taobao_trains_with_frozen_pretrained_tables(taobao10):
    from mlora_tf.config import ModelConfig, TrainConfig
    from mlora_tf.models import DataSpec, build_model
    from mlora_tf.training import Trainer, schedule_phases

    spec = DataSpec.from_dataset(taobao10)
    assert spec.pretrained is not None
    model = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(16, 8)), spec)
    before = model.get_layer("user_emb").embeddings.numpy().copy()
    np.testing.assert_array_equal(before, taobao.pretrained_embeddings(taobao10)["uid"])
    Trainer(model, taobao10, TrainConfig(max_epochs=1, batch_size=64)).fit(schedule_phases("joint", "mlora"))
    np.testing.assert_array_equal(model.get_layer("user_emb").embeddings.numpy(), before)
