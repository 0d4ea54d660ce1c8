import numpy as np
import pytest

from helpers import tiny_dataset
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
    monkeypatch.setattr(trainer, "_train_pass", lambda *t: seen.append(np.unique(t[2].numpy())) or real(*t))
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
