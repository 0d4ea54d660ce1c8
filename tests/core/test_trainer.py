import json

import numpy as np
import pytest

from helpers import graph_op_types, tiny_dataset
from mlora_tf.config import ModelConfig, TrainConfig
from mlora_tf.models import DataSpec, build_model, dense_stack_of, variable_groups
from mlora_tf.training import Phase, Trainer, schedule_phases


def _trainer(adapter="mlora", **train):
    data = tiny_dataset()
    model = build_model(ModelConfig(name="wdl", adapter=adapter, hidden_units=(16, 8)), DataSpec.from_dataset(data))
    train.setdefault("batch_size", 64)
    return Trainer(model, data, TrainConfig(**train)), data


def _values(variables):
    return [v.numpy().copy() for v in variables]


@pytest.mark.parametrize(
    "phase, trains, frozen",
    [
        (Phase("p", ("backbone",), "zeros"), "backbone", "adapter"),
        (Phase("f", ("adapter",), "domain"), "adapter", "backbone"),
    ],
)
def test_phase_trains_exactly_its_groups(phase, trains, frozen):
    trainer, _ = _trainer()
    groups = trainer.groups
    # give B non-zero values so the adapter path has gradients in every phase
    for w in groups["adapter"]:
        w.assign(np.full(w.shape, 0.01, "float32"))
    trainer._enter_phase(phase)
    assert {id(v) for v in trainer.model.trainable_variables} == {id(v) for v in groups[trains]}
    before_frozen, before_trained = _values(groups[frozen]), _values(groups[trains])
    trainer._train_epoch(phase)
    for b, v in zip(before_frozen, groups[frozen]):
        np.testing.assert_array_equal(b, v.numpy())
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before_trained, groups[trains])]
    assert all(moved), f"{sum(moved)}/{len(moved)} trained variables moved"


def test_pretrain_finetune_schedule():
    phases = schedule_phases("pretrain_finetune", "mlora")
    assert [p.train_groups for p in phases] == [("backbone",), ("adapter",)]
    assert [p.mixture for p in phases] == ["zeros", "domain"]
    with pytest.raises(ValueError, match="needs adapter='mlora'"):
        schedule_phases("pretrain_finetune", "none")
    with pytest.raises(ValueError, match="Unknown schedule"):
        schedule_phases("alternate", "mlora")


def test_early_stopping_restores_best_weights_and_keeps_optimizer(monkeypatch):
    trainer, _ = _trainer(patience=2, max_epochs=10)
    metrics = iter([0.60, 0.70, 0.65, 0.70, 0.69])  # best at epoch 2; ties do not count
    snapshots = {}

    def fake_metric(_):
        return next(metrics)

    monkeypatch.setattr(trainer, "_stop_metric", fake_metric)
    real_train_epoch = trainer._train_epoch

    def spy_train_epoch(phase):
        out = real_train_epoch(phase)
        snapshots[len(snapshots) + 1] = trainer._snapshot()
        return out

    monkeypatch.setattr(trainer, "_train_epoch", spy_train_epoch)
    result = trainer.run_phase(schedule_phases("joint", "mlora")[0])
    assert result.epochs == 4 and result.best_epoch == 2 and result.best_val_metric == pytest.approx(0.70)
    for best, now in zip(snapshots[2], trainer._snapshot()):
        np.testing.assert_array_equal(best, now)
    assert int(trainer.optimizer.iterations.numpy()) > 0  # optimizer state was kept across restores


def test_restore_after_non_improving_epoch(monkeypatch):
    trainer, _ = _trainer(patience=5, max_epochs=3)
    metrics = iter([0.7, 0.6, 0.5])
    monkeypatch.setattr(trainer, "_stop_metric", lambda _: next(metrics))
    starts = []
    real = trainer._train_epoch

    def spy(phase):
        starts.append(trainer._snapshot())
        return real(phase)

    monkeypatch.setattr(trainer, "_train_epoch", spy)
    trainer.run_phase(schedule_phases("joint", "mlora")[0])
    after_epoch1 = starts[1]  # epoch 2 started from epoch 1's (best) weights
    for a, b in zip(after_epoch1, starts[2]):  # epoch 3 started from the restored best again
        np.testing.assert_array_equal(a, b)


def test_training_batches_never_mix_domains(monkeypatch):
    trainer, data = _trainer()
    phase = schedule_phases("joint", "mlora")[0]
    trainer._enter_phase(phase)
    seen = []
    real = trainer._train_pass
    monkeypatch.setattr(trainer, "_train_pass", lambda *t: seen.append(np.unique(t[-2].numpy())) or real(*t))
    trainer._train_epoch(phase)
    assert sorted(int(u[0]) for u in seen) == [0, 1] and all(len(u) == 1 for u in seen)
    trainer.config.mixed_batches = True
    seen.clear()
    trainer._train_epoch(phase)
    assert len(seen) == 1 and len(seen[0]) == 2


def test_joint_training_learns_and_reports():
    trainer, _ = _trainer(max_epochs=3, patience=3)
    before = trainer.evaluate("val")
    results = trainer.fit(schedule_phases("joint", "mlora"))
    assert results[0].epochs == 3 and len(results[0].history) == 3
    test = trainer.evaluate("test")
    assert set(test["domain_auc"]) == {"d0", "d1"}
    assert 0.0 <= test["wauc"] <= 1.0 and before["logloss"] != test["logloss"]
    assert trainer.param_counts()["adapter"] > 0
    assert dense_stack_of(trainer.model).mixture_source == "domain"
    assert variable_groups(trainer.model)["gate"] == []


def test_one_domain_pass_is_traced_without_cond_and_matches_the_per_row_pass():
    import keras

    from mlora_tf.training.trainer import _ID_SPEC, _LABEL_SPEC, _ORDER_SPEC

    runs = []
    for one_domain in (True, False):
        keras.utils.set_random_seed(0)  # same initial weights, dropout masks and shuffles
        trainer, _ = _trainer(batch_size=32)
        for w in trainer.groups["adapter"]:  # non-zero B so the adapters matter from step one
            w.assign(np.full(w.shape, 0.01, "float32"))
        phase = schedule_phases("joint", "mlora")[0]
        trainer._enter_phase(phase)
        train_pass = trainer._make_train_pass(one_domain)
        conds = {"If", "StatelessIf"} & graph_op_types(
            train_pass.get_concrete_function(
                *([_ORDER_SPEC] if trainer.shuffle == "buffer" else []), _ID_SPEC, _ID_SPEC, _ID_SPEC, _LABEL_SPEC
            )
        )
        assert bool(conds) != one_domain  # the per-row pass keeps the stack's per-batch test
        trainer._train_pass = train_pass
        trainer._train_epoch(phase)
        runs.append(trainer._snapshot())
    for promised, tested in zip(*runs):
        np.testing.assert_allclose(promised, tested, rtol=1e-5, atol=1e-6)


def test_domain_tensors_refuse_rows_of_other_domains(monkeypatch):
    trainer, data = _trainer()
    real = data.domain_slice
    monkeypatch.setattr(data, "domain_slice", lambda split, d: real(split, 1 - d))
    with pytest.raises(ValueError, match="other domains"):
        trainer._domain_tensors("train", 0)


def test_mixed_batches_switch_takes_the_per_row_pass():
    trainer, _ = _trainer()
    phase = schedule_phases("joint", "mlora")[0]
    trainer._enter_phase(phase)
    stack = dense_stack_of(trainer.model)
    promised = []
    real_run = stack._run
    stack._run = lambda *a, **k: promised.append(stack._single_domain) or real_run(*a, **k)
    trainer._train_epoch(phase)
    assert promised and all(promised)  # traced under the one-domain promise
    promised.clear()
    trainer.config.mixed_batches = True
    trainer._train_epoch(phase)  # traced anew, without the promise
    assert promised and not any(promised)


def test_final_evaluation_is_scored_once_and_reused(monkeypatch):
    trainer, _ = _trainer(max_epochs=3, patience=1)
    calls = []
    real = trainer.evaluate
    monkeypatch.setattr(trainer, "evaluate", lambda split: calls.append(split) or real(split))
    results = trainer.fit(schedule_phases("joint", "mlora"))
    epochs = results[0].epochs
    # one validation per epoch, then only the test split: the best epoch's validation
    # metrics are those of the weights the phase ends with
    assert calls == ["val"] * epochs + ["test"]
    final = trainer.final_metrics
    assert final["val"] == real("val") and final["test"] == real("test")
    assert results[0].val == {k: final["val"][k] for k in results[0].val}
    assert results[0].test == {k: final["test"][k] for k in results[0].test}


def _batch(data, rows):
    import tensorflow as tf

    train = data.splits["train"]
    return [tf.constant(np.asarray(train[f][rows])) for f in ("uid", "pid", "domain", "label")]


@pytest.mark.parametrize("rows, parts", [(slice(0, 90), 2), (slice(0, 1), 2), (slice(0, 3), 4), (slice(5, 12), 3)])
def test_batch_parts_give_the_whole_batch_loss_and_gradients(rows, parts):
    import tensorflow as tf

    data = tiny_dataset()
    model = build_model(
        ModelConfig(name="wdl", adapter="mlora", hidden_units=(16, 8), dropout=0.0), DataSpec.from_dataset(data)
    )
    trainer = Trainer(model, data, TrainConfig(batch_size=64), batch_parts=1)
    for w in trainer.groups["adapter"]:
        w.assign(np.random.default_rng(0).normal(size=w.shape).astype("float32") * 0.1)
    batch = _batch(data, rows)
    results = []
    for k, shared in ((1, False), (parts, False), (parts, True)):
        with tf.GradientTape() as tape, trainer._single_domain(), trainer._shared_slots(shared):
            loss = trainer._batch_loss(*batch, parts=k)
        grads = tape.gradient(loss, model.trainable_variables)
        results.append((loss.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]))
    whole, whole_grads = results[0]
    for split, split_grads in results[1:]:  # the groups' own slices, or shared ones
        np.testing.assert_allclose(split, whole, rtol=1e-6)
        for a, b in zip(split_grads, whole_grads):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_default_batch_parts(monkeypatch):
    import keras
    import tensorflow as tf

    from mlora_tf.training.trainer import default_batch_parts

    data = tiny_dataset()
    spec = DataSpec.from_dataset(data)
    wdl = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(16, 8)), spec)
    star = build_model(ModelConfig(name="star", adapter="mlora", hidden_units=(16, 8)), spec)
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 2)
    assert default_batch_parts(wdl) == 2
    assert default_batch_parts(star) == 1  # batch statistics (partitioned normalisation)
    x = keras.Input((3,))
    assert default_batch_parts(keras.Model(x, keras.layers.BatchNormalization()(x))) == 1
    adaptdhm = build_model(ModelConfig(name="adaptdhm", hidden_units=(16, 8)), spec)
    assert default_batch_parts(adaptdhm) == 1  # the online k-means updates from the batch
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: 1)
    assert default_batch_parts(wdl) == 1
    assert Trainer(wdl, data, TrainConfig(), batch_parts=3).batch_parts == 3
    with pytest.raises(ValueError, match="batch_parts"):
        Trainer(wdl, data, TrainConfig(), batch_parts=0)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("adapter, kill_after", [("mlora", 2), ("moe", 3)])
def test_resume_inside_a_phase_gives_the_weights_of_an_unbroken_run(tmp_path, monkeypatch, adapter, kill_after):
    # The checkpoint after every epoch: a run killed after its `kill_after`-th save
    # (inside a phase) and started again ends where a run never stopped ends.
    import keras

    from mlora_tf.training.loop import Checkpoint

    def run(folder, kill=None):
        keras.utils.set_random_seed(7)
        data = tiny_dataset()
        model = build_model(
            ModelConfig(name="wdl", adapter=adapter, hidden_units=(16, 8), experts_per_domain=1),
            DataSpec.from_dataset(data),
        )
        trainer = Trainer(model, data, TrainConfig(batch_size=64, max_epochs=3, patience=2, seed=3))
        stack = dense_stack_of(model)
        phases = (
            schedule_phases("paper", "moe", data.n_domains, stack.num_slots) if adapter == "moe"
            else schedule_phases("joint", "mlora")
        )
        saves = []
        real = Checkpoint.save

        def save(self, state, arrays):
            real(self, state, arrays)
            saves.append(state.get("current"))
            if kill is not None and len(saves) == kill:
                raise _Killed

        monkeypatch.setattr(Checkpoint, "save", save)
        try:
            results = trainer.fit(phases, checkpoint_dir=str(folder))
        except _Killed:
            return None, saves
        return (results, trainer._snapshot(), trainer.evaluate("test")), saves

    (unbroken, weights, test), _ = run(tmp_path / "a")
    assert run(tmp_path / "b", kill=kill_after)[0] is None
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["current"] is not None  # killed inside a phase, not between two
    (resumed, resumed_weights, resumed_test), _ = run(tmp_path / "b")
    assert [r.name for r in resumed] == [r.name for r in unbroken]
    assert [r.epochs for r in resumed] == [r.epochs for r in unbroken]
    assert [h["val_metric"] for r in resumed for h in r.history] == [h["val_metric"] for r in unbroken for h in r.history]
    for a, b in zip(weights, resumed_weights):
        np.testing.assert_array_equal(a, b)
    assert resumed_test["wauc"] == test["wauc"]
