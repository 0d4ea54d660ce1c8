"""The multi-task trainer, the run record and `mlora-train --task_set`."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.config import MultiTaskRunConfig, MultiTaskTrainConfig
from mlora_tf.data.registry import load_dataset
from mlora_tf.models import MultiTaskModelConfig, build_multitask_model
from mlora_tf.models import m3oe as m3oe_lib
from mlora_tf.models import DataSpec
from mlora_tf.runs.multitask import load_multitask_dataset, resolve_data, train_multitask_run
from mlora_tf.training.multitask import MultiTaskTrainer, pair_mean_loss

TINY = dict(star_units=16, hidden_units=8, expert_units=4, tower_units=4, embedding_dim=4)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic-mt", n_rows=3000, n_users=200, n_items=100)


def _trainer(dataset, model="m3oe", seed=2022, **train):
    keras.utils.set_random_seed(seed)
    options = dict(TINY)
    if "fusion" in train:
        options["fusion"] = train.pop("fusion")
    net = build_multitask_model(MultiTaskModelConfig(name=model, **options), DataSpec.from_dataset(dataset))
    settings = dict(batch_size=256, max_epochs=2, patience=5, seed=seed)
    settings.update(train)
    return MultiTaskTrainer(net, dataset, MultiTaskTrainConfig(**settings))


def _raw_fusion(trainer):
    layer = m3oe_lib.fusion_layer(trainer.model)
    return {k: float(v.numpy()[0]) for k, v in layer._raw.items()}


# ----------------------------------------------------------------- the loss
def test_pair_loss_is_the_sum_of_per_domain_task_means():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (40, 2)).astype(np.float32)
    logits = rng.normal(size=(40, 2)).astype(np.float32)
    domain = rng.integers(0, 3, 40)
    domain[domain == 2] = 1  # domain 2 absent from the batch: adds nothing
    bce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    expected = sum(bce[domain == d, t].mean() for d in (0, 1) for t in (0, 1))
    got = float(pair_mean_loss(tf.constant(labels), tf.constant(logits), tf.constant(domain), 3))
    assert got == pytest.approx(expected, rel=1e-5)
    # Not the plain mean over the batch (which would weight domains by their rows).
    assert got != pytest.approx(2 * bce.mean(), rel=1e-3)


def test_loss_form_follows_the_setting(dataset):
    assert _trainer(dataset).pair_loss
    assert not _trainer(dataset.select_labels(["click"])).pair_loss  # -MDL
    assert not _trainer(dataset.select_domains([1])).pair_loss  # -MTL


# ---------------------------------------------------------- fusion weights
def test_paper_schedule_moves_the_scalars_only_in_their_own_step(dataset):
    trainer = _trainer(dataset)
    before = _raw_fusion(trainer)
    inputs, labels, _ = trainer._split_tensors("train")
    order = tf.constant(np.arange(int(labels.shape[0]), dtype=np.int32))
    trainer._train_pass(*inputs, labels, order)
    assert _raw_fusion(trainer) == before  # the network trained, the scalars did not
    trainer.train_epoch()
    after = _raw_fusion(trainer)
    assert all(after[k] != before[k] for k in before)
    # One Adam step of lr 1e-3 moves each raw scalar by about 1e-3 (times the passes).
    assert all(abs(after[k] - before[k]) < 5e-3 for k in before)


@pytest.mark.parametrize("schedule", ["paper", "as_coded"])
def test_fusion_step_draws_training_batches(dataset, schedule):
    # The paper: "a mini-batch of training data" after each epoch (m3oe.md §3.3); never validation rows.
    trainer = _trainer(dataset, fusion_schedule=schedule)
    assert trainer._fusion_split == "train"
    assert trainer._fusion_batches.n == dataset.num_rows("train")


def test_as_coded_schedule_moves_the_scalars_with_the_network(dataset):
    trainer = _trainer(dataset, fusion_schedule="as_coded")
    before = _raw_fusion(trainer)
    inputs, labels, _ = trainer._split_tensors("train")
    order = tf.constant(np.arange(int(labels.shape[0]), dtype=np.int32))
    trainer._train_pass(*inputs, labels, order)
    moved = _raw_fusion(trainer)
    # The main optimizer (lr 1e-2, 10 batches) moved them: far more than one 1e-3 step.
    assert all(abs(moved[k] - before[k]) > 5e-3 for k in before)
    assert trainer._fusion_split == "train"


def test_fixed_fusion_never_moves(dataset):
    trainer = _trainer(dataset, fusion="fixed")
    assert trainer.fusion_variables == [] and trainer.fusion_optimizer is None
    trainer.fit()
    assert set(trainer.fusion_weights().values()) == {0.5}


def test_baselines_train_without_a_fusion_step(dataset):
    trainer = _trainer(dataset, model="shared_bottom", max_epochs=1)
    assert trainer.fusion_variables == [] and trainer._fusion_step is None
    result = trainer.fit()
    assert result["epochs"] == 1 and np.isfinite(result["history"][0]["train_loss"])


def test_coupled_weight_decay_reaches_every_gradient(dataset):
    """A zero loss gradient leaves only `g = weight_decay * w`: Adam's first step (TF's
    kernel: epsilon added to `sqrt(v)` before bias correction) then moves every weight
    by `-lr * g / (|g| + eps / sqrt(1 - beta_2))`; without decay nothing moves."""
    for decay, moves in ((1e-5, True), (0.0, False)):
        trainer = _trainer(dataset, weight_decay=decay)
        variables = trainer.main_variables
        before = [v.numpy().copy() for v in variables]
        with tf.GradientTape() as tape:
            loss = 0.0 * tf.add_n([tf.reduce_sum(v) for v in variables])
        trainer._apply(trainer.optimizer, loss, tape, variables)
        for v, b in zip(variables, before):
            delta = v.numpy() - b
            if moves:
                g = decay * b.astype(np.float64)
                expected = -1e-2 * g / (np.abs(g) + 1e-8 / np.sqrt(1 - 0.999))
                np.testing.assert_allclose(delta, expected, rtol=2e-3, atol=1e-7)
            else:
                assert not delta.any()


# ------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_epoch(dataset):
    trainer = _trainer(dataset, max_epochs=30, patience=1, learning_rate=0.05)
    result = trainer.fit()
    history = result["history"]
    assert result["stopped_early"] and result["epochs"] == len(history) < 30
    assert history[-1]["val_auc"] <= result["best_val_auc"]
    assert result["best_val_auc"] == max(h["val_auc"] for h in history)
    assert trainer.evaluate("val")["overall_auc"] == pytest.approx(result["best_val_auc"], abs=1e-6)


def test_restore_best_false_keeps_the_last_weights_without_early_stop(dataset):
    trainer = _trainer(dataset, max_epochs=3, patience=10, restore_best=False)
    result = trainer.fit()
    assert not result["stopped_early"]
    assert trainer.evaluate("val")["overall_auc"] == pytest.approx(result["history"][-1]["val_auc"], abs=1e-6)


def test_a_killed_run_resumes_after_its_last_epoch(dataset, tmp_path):
    folder = str(tmp_path / "ckpt")
    first = _trainer(dataset, max_epochs=2)
    first.fit(checkpoint_dir=folder)
    resumed = _trainer(dataset, max_epochs=3)
    result = resumed.fit(checkpoint_dir=folder)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    assert result["history"][:2] == json.loads(json.dumps(first.history))
    # The third epoch continued from the second's weights, not from scratch.
    assert result["history"][2]["val_auc"] != pytest.approx(first.history[0]["val_auc"], abs=1e-9)


def test_tensorboard_scalars_of_every_epoch(dataset, tmp_path):
    import tensorflow as tf

    trainer = _trainer(dataset, max_epochs=2, patience=5)
    result = trainer.fit(tensorboard_dir=str(tmp_path / "tb"))
    events = [str(p) for p in (tmp_path / "tb").iterdir()]
    assert events
    values = {}
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for v in event.summary.value:
            values.setdefault(v.tag, []).append((event.step, v.simple_value))
    assert [s for s, _ in values["train/val_mean_auc"]] == [1, 2]
    assert [v for _, v in values["train/val_mean_auc"]] == pytest.approx([h["val_auc"] for h in result["history"]])


# ------------------------------------------------------------ the record
def _config(**changes) -> MultiTaskRunConfig:
    config = MultiTaskRunConfig()
    config.data.options.update(n_rows=3000, n_users=200, n_items=100)
    config.model = dataclasses.replace(config.model, **TINY)
    config.train = MultiTaskTrainConfig(batch_size=256, max_epochs=1)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def test_record_overall_auc_is_the_mean_of_the_pair_aucs(tmp_path):
    record = train_multitask_run(_config(), output_dir=str(tmp_path / "run"))
    pairs = record["pair_auc"]
    assert sorted(pairs) == ["d0t0", "d0t1", "d1t0", "d1t1", "d2t0", "d2t1"]
    assert record["overall_auc"] == pytest.approx(np.mean(list(pairs.values())))
    assert record["mean_auc"] == record["overall_auc"]
    assert record["overall_logloss"] == pytest.approx(np.mean(list(record["pair_logloss"].values())))
    assert record["tasks"] == ["click", "like"] and record["kind"] == "multitask"
    for name in ("result.json", "model.keras", "vocab.npz"):
        assert os.path.exists(tmp_path / "run" / name)
    with open(tmp_path / "run" / "result.json") as f:
        saved = json.load(f)
    assert MultiTaskRunConfig.from_dict(saved["config"]).to_dict() == saved["config"]


def test_a_one_class_pair_is_undefined_not_half(dataset):
    test = dict(dataset.splits["test"])
    like = test["like"].copy()
    like[test["domain"] == 0] = 0.0  # domain 0 has no positive `like` in test
    test["like"] = like
    one_class = dataclasses.replace(dataset, splits=dict(dataset.splits, test=test))
    trainer = _trainer(one_class, max_epochs=1)
    trainer.fit()
    metrics = trainer.evaluate("test")
    assert metrics["auc"][0][1] is None and metrics["undefined_auc_pairs"] == ["d0t1"]
    defined = [v for row in metrics["auc"] for v in row if v is not None]
    assert len(defined) == 5 and metrics["overall_auc"] == pytest.approx(np.mean(defined))


def test_settings_select_the_right_data():
    mdmt = load_multitask_dataset(_config())
    mdl = load_multitask_dataset(_config(tasks=("click",)))
    mtl = load_multitask_dataset(_config(domains=(1,)))
    assert mdmt.labels == ("click", "like") and mdmt.n_domains == 3
    assert mdl.labels == ("click",) and mdl.n_domains == 3 and mdl.num_rows("train") == mdmt.num_rows("train")
    assert mtl.labels == ("click", "like") and mtl.n_domains == 1
    assert mtl.num_rows("train") == mdmt.num_rows("train", 1)
    assert mtl.domain_names == [mdmt.domain_names[1]] and set(mtl.splits["train"]["domain"]) == {0}
    np.testing.assert_array_equal(mtl.splits["test"]["like"], mdmt.domain_slice("test", 1)["like"])


def test_dataset_names_resolve_to_their_multitask_variants():
    from mlora_tf.config import DataConfig

    assert resolve_data(DataConfig(dataset="ml-1m", domain_split="m3oe_age")).dataset == "ml-1m-m3oe"
    assert resolve_data(DataConfig(dataset="ml-100k")).domain_split == "age3"
    assert resolve_data(DataConfig(dataset="synthetic")).dataset == "synthetic-mt"
    with pytest.raises(ValueError, match="m3oe_age"):
        resolve_data(DataConfig(dataset="ml-1m", domain_split="occupation"))


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="'ctr'"):
        load_multitask_dataset(_config(tasks=("click", "ctr")))


# ------------------------------------------------------------------- CLI
# Every `mlora-train` case runs in one fresh process (the programs' absl flags must not
# meet the other programs' flags that the test session has defined), one after another.
_CLI_HARNESS = """
import contextlib, io, json, sys
from absl import flags
from mlora_tf.cli import train as train_cli
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["mlora-train", *argv])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = train_cli.main([])
    results.append([rc, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cases = [
        ["--task_set=click,like", "--model=m3oe", "--dataset=synthetic",
         "--data_options=n_rows=3000,n_users=200,n_items=100", "--max_epochs=1", "--batch_size=512",
         "--m3oe_fusion=as_coded", "--num_shared_experts=1", f"--output_dir={tmp / 'run'}"],
        ["--task_set=click", "--adapter=mlora"],
        ["--m3oe_fusion=fixed", "--model=wdl"],
        # `mlp` is a single-task backbone unless --task_set makes it the multi-task baseline.
        ["--model=mlp", "--adapter=mlora", "--m3oe_fusion=fixed"],
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MLORA_TF_CACHE=str(tmp / "cache"))
    done = subprocess.run([sys.executable, "-c", _CLI_HARNESS, json.dumps(cases)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, json.loads(done.stdout.strip().splitlines()[-1])


def test_cli_trains_m3oe_with_a_task_set(cli_results):
    tmp, results = cli_results
    rc, stdout, stderr = results[0]
    assert rc == 0, stderr[-2000:]
    assert "overall AUC" in stdout and "age<25 / like" in stdout
    with open(tmp / "run" / "result.json") as f:
        record = json.load(f)
    assert record["config"]["train"]["fusion_schedule"] == "as_coded"
    assert record["config"]["model"]["num_shared_experts"] == 1
    assert record["dataset"]["name"].startswith("synthetic-mt")


def test_cli_refuses_single_task_flags_in_a_multitask_run(cli_results):
    _, results = cli_results
    rc, _, stderr = results[1]
    assert rc == 2 and "--adapter" in stderr and "single-task" in stderr
    for rc, _, stderr in results[2:]:
        assert rc == 2 and "--task_set" in stderr
