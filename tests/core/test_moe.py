import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import tiny_dataset
from mlora_tf.config import ModelConfig, TrainConfig
from mlora_tf.layers import DomainSelector
from mlora_tf.models import DataSpec, build_model, dense_stack_of, variable_groups
from mlora_tf.training import Trainer, schedule_phases


def _moe_trainer(k=2, **train):
    data = tiny_dataset(n_domains=2)
    model = build_model(
        ModelConfig(name="wdl", adapter="moe", experts_per_domain=k, hidden_units=(16, 8)), DataSpec.from_dataset(data)
    )
    train.setdefault("batch_size", 64)
    train.setdefault("max_epochs", 1)
    return Trainer(model, data, TrainConfig(**train)), data


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_paper_schedule_phases():
    phases = schedule_phases("paper", "moe", n_domains=3, num_experts=6)
    assert [p.name for p in phases] == ["backbone"] + [f"expert_{e}" for e in range(6)] + ["gate"]
    assert phases[0].train_groups == ("backbone",) and phases[0].mixture == "zeros"
    assert [p.domains for p in phases[1:-1]] == [(0,), (1,), (2,), (0,), (1,), (2,)]
    assert all(p.train_slot == p.expert_index for p in phases[1:-1])
    assert phases[-1].train_groups == ("gate",) and phases[-1].mixture == "gate" and phases[-1].domains is None
    assert not any(p.carry_best for p in phases)
    executed = schedule_phases("as_executed", "moe", n_domains=3, num_experts=6)
    assert all(p.train_groups == ("backbone", "adapter") and p.mixture == "gate" and p.carry_best for p in executed)


def test_each_phase_trains_exactly_its_variables():
    trainer, _ = _moe_trainer()
    groups = trainer.groups
    stack = dense_stack_of(trainer.model)
    phases = schedule_phases("paper", "moe", n_domains=2, num_experts=4)
    # phase 1: backbone only; adapters and gate bit-for-bit unchanged
    adapters, gate = _values(groups["adapter"]), _values(groups["gate"])
    backbone = _values(groups["backbone"])
    trainer.run_phase(phases[0])
    assert _same(adapters, groups["adapter"]) and _same(gate, groups["gate"])
    assert not _same(backbone, groups["backbone"])
    # phase 2, expert 1: only its slot moves
    for layer in stack.adapter_layers:  # non-zero B so that A has gradients
        layer.adapter_kernel_b.assign(np.full(layer.adapter_kernel_b.shape, 0.05, "float32"))
    backbone, gate = _values(groups["backbone"]), _values(groups["gate"])
    before = [_values(layer.weights) for layer in stack.adapter_layers]
    trainer.run_phase(phases[2])
    assert _same(backbone, groups["backbone"]) and _same(gate, groups["gate"])
    for layer, old in zip(stack.adapter_layers, before):
        for variable, value, mask in zip(layer.weights, old, layer.slot_masks(1)):
            now = variable.numpy()
            np.testing.assert_array_equal(now[~mask], value[~mask])
            assert not np.array_equal(now[mask], value[mask])
    # phase 3: only the gate moves
    backbone, adapters, gate = _values(groups["backbone"]), _values(groups["adapter"]), _values(groups["gate"])
    trainer.run_phase(phases[-1])
    assert _same(backbone, groups["backbone"]) and _same(adapters, groups["adapter"])
    assert not _same(gate, groups["gate"])


def test_expert_phase_feeds_only_its_domain(monkeypatch):
    trainer, _ = _moe_trainer()
    phase = schedule_phases("paper", "moe", n_domains=2, num_experts=4)[2]  # expert 1 -> domain 1
    trainer._enter_phase(phase)
    seen = []
    real = trainer._train_pass
    monkeypatch.setattr(trainer, "_train_pass", lambda *t: seen.append(np.unique(t[-2].numpy())) or real(*t))
    trainer._train_epoch(phase)
    assert [list(u) for u in seen] == [[1]]


def test_one_hot_gate_with_one_expert_per_domain_equals_mlora(monkeypatch):
    spec = DataSpec({"uid": 30, "pid": 30, "domain": 3}, 3)
    moe = build_model(ModelConfig(name="wdl", adapter="moe", experts_per_domain=1, hidden_units=(16, 8)), spec)
    mlora = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(16, 8)), spec)
    rng = np.random.default_rng(0)
    moe_vars = [v for v in moe.variables if v.name != "seed_generator_state" and not any(v is g for g in variable_groups(moe)["gate"])]
    mlora_vars = [v for v in mlora.variables if v.name != "seed_generator_state"]
    assert [tuple(v.shape) for v in moe_vars] == [tuple(v.shape) for v in mlora_vars]
    for a, b in zip(moe_vars, mlora_vars):
        value = rng.normal(size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    gate = dense_stack_of(moe).mixture_layer  # force the gate to one-hot(domain)
    monkeypatch.setattr(gate, "call", lambda domain: DomainSelector.one_hot(domain, 3))
    x = {"uid": rng.integers(0, 30, 9), "pid": rng.integers(0, 30, 9), "domain": np.array([0, 1, 2, 2, 1, 0, 0, 1, 2])}
    np.testing.assert_allclose(moe(x)["logit"].numpy(), mlora(x)["logit"].numpy(), rtol=1e-5, atol=1e-5)


def test_as_executed_never_moves_the_gate_and_trains_the_rest():
    trainer, _ = _moe_trainer(k=1)
    groups = trainer.groups
    gate = _values(groups["gate"])
    rest = _values(groups["backbone"] + groups["adapter"])
    phases = schedule_phases("as_executed", "moe", n_domains=2, num_experts=2)
    results = trainer.fit(phases)
    assert len(results) == 4 and _same(gate, groups["gate"])
    assert not _same(rest[: len(groups["backbone"])], groups["backbone"])
    g = dense_stack_of(trainer.model).mixture_layer(np.array([0, 1]))
    assert np.abs(g.numpy() - 0.5).max() < 0.2  # the untrained gate is near-uniform


def test_carry_best_keeps_the_global_best(monkeypatch):
    trainer, _ = _moe_trainer(k=1, patience=1)
    metrics = iter([0.7, 0.6, 0.65, 0.5, 0.55, 0.6])
    monkeypatch.setattr(trainer, "_stop_metric", lambda _: next(metrics))
    phases = schedule_phases("paper", "moe", n_domains=2, num_experts=2, carry_best=True)[:2]
    first, second = trainer.run_phase(phases[0]), trainer.run_phase(phases[1])
    assert first.best_val_metric == pytest.approx(0.7) and second.best_val_metric == pytest.approx(0.7)
    assert second.best_epoch == 0  # never beat the carried best


SCRIPT = """
import sys
from absl import logging
logging.set_verbosity(logging.INFO)
from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mlora_tf.runs.train import train_run
from mlora_tf.training.loop import Checkpoint
cfg = RunConfig(data=DataConfig(options={"n_rows": 3000, "n_users": 200, "n_items": 100, "n_domains": 2}),
                model=ModelConfig(name="wdl", adapter="moe", hidden_units=(16, 8)), train=TrainConfig(max_epochs=1))
if sys.argv[2] == "slow":  # pause after the second phase so the test kills the process between phases
    import time
    real = Checkpoint.save
    def save(self, state, arrays):
        real(self, state, arrays)
        print("SAVED", len(state["finished"]), flush=True)
        if len(state["finished"]) == 2:
            time.sleep(60)
    Checkpoint.save = save
train_run(cfg, output_dir=sys.argv[1])
print("DONE", flush=True)
"""


def test_resume_after_kill_between_phases(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), "slow"], stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    for line in proc.stdout:
        if line.startswith("SAVED 2") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert [p["name"] for p in state["finished"]] == ["backbone", "expert_0"]
    assert not (out / "result.json").exists()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out), "fast"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming after phase 'expert_0' (2 of 4 done)" in done.stderr
    record = json.loads((out / "result.json").read_text())
    assert [p["name"] for p in record["phases"]] == ["backbone", "expert_0", "expert_1", "gate"]
    assert record["phases"][0]["test"]["wauc"] == state["finished"][0]["test"]["wauc"]
