import json
import os
import subprocess
import sys

import pytest

from mlora_tf.config import ModelConfig, RunConfig, DataConfig, TrainConfig
from mlora_tf.original_config import read_original_config
from mlora_tf.runs.train import train_run

REQUIRED = {"wauc", "mean_auc", "domain_auc", "domain_test_size", "logloss", "params_backbone",
            "params_adapter", "epochs", "seconds", "config"}
SMALL = ["--data_options=n_rows=4000,n_users=300,n_items=200", "--max_epochs=2", "--hidden_units=32,16"]


def _cli(*args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "mlora_tf.cli.train", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_mlora_train_writes_a_valid_result(tmp_path):
    out = tmp_path / "run"
    proc = _cli("--dataset=synthetic", "--model=wdl", "--adapter=mlora", f"--output_dir={out}", "--tensorboard", *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "result.json").read_text())
    assert REQUIRED <= set(record)
    assert set(record["domain_auc"]) == set(record["domain_test_size"]) and len(record["domain_auc"]) == 3
    assert record["params_adapter"] > 0 and record["epochs"] == 2
    assert record["config"]["model"]["adapter"] == "mlora"
    assert (out / "model.keras").exists() and any((out / "tensorboard").iterdir())
    assert "WAUC" in proc.stdout
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_list_models():
    proc = _cli("--list_models")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert {"mlp", "wdl"} <= set(names)


def test_missing_movielens_files_give_a_clear_message(tmp_path):
    proc = _cli("--dataset=ml-1m", f"--data_dir={tmp_path}", "--model=wdl")
    assert proc.returncode != 0
    assert "ratings.dat" in proc.stderr and "Traceback" not in proc.stderr


def test_original_style_config(tmp_path):
    path = tmp_path / "wdl_mlora.json"
    path.write_text(json.dumps({
        "dataset": {"name": "Movielens", "dataset_path": "dataset/Movielens", "domain_split_path": "split_by_age",
                    "batch_size": 1024, "shuffle_buffer_size": 10000, "num_parallel_reads": 8, "seed": 123},
        "model": {"name": "wdl_lora", "hidden_dim": [256, 128, 64], "dropout": 0.5, "lora_r": -1, "lora_reduce": 16,
                  "user_dim": 8, "item_dim": 8, "domain_dim": 8, "auxiliary_dim": 128, "norm": "none", "dense": "dense"},
        "train": {"epoch": 99999, "learning_rate": 0.001, "optimizer": "adam", "loss": "binary_crossentropy",
                  "patience": 5, "histogram_freq": 0, "checkpoint_path": "checkpoint", "result_save_path": "result"},
    }))
    config = read_original_config(str(path))
    assert (config.model.name, config.model.adapter, config.model.lora_reduce) == ("wdl", "mlora", 16)
    assert (config.data.dataset, config.data.domain_split) == ("ml-1m", "age")
    assert config.train.patience == 5 and config.model.hidden_units == (256, 128, 64)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"name": "wdl_lora", "lora_redcue": 16}}))
    with pytest.raises(ValueError, match="'lora_redcue'.*Did you mean 'lora_reduce'"):
        read_original_config(str(bad))


def test_mlora_beats_base_on_planted_domain_effects():
    data = DataConfig(dataset="synthetic", options={"shift": 1.5, "n_rows": 30000})
    wauc = {}
    for adapter in ("none", "mlora"):
        config = RunConfig(data=data, model=ModelConfig(name="wdl", adapter=adapter), train=TrainConfig(max_epochs=15))
        wauc[adapter] = train_run(config)["wauc"]
    assert wauc["mlora"] > wauc["none"] + 0.01, wauc


def test_train_run_reuses_the_last_phase_scores(monkeypatch):
    import mlora_tf.runs.train as run_module
    from mlora_tf.training import Trainer

    made, calls = [], []

    class Spy(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def evaluate(self, split):
            calls.append(split)
            return super().evaluate(split)

    monkeypatch.setattr(run_module, "Trainer", Spy)
    config = RunConfig(
        data=DataConfig(dataset="synthetic", options={"n_rows": 3000, "n_users": 200, "n_items": 150}),
        model=ModelConfig(name="wdl", adapter="mlora", hidden_units=(16, 8)),
        train=TrainConfig(max_epochs=2, patience=2),
    )
    record = train_run(config)
    assert calls == ["val", "val", "test"]  # nothing scored twice
    val, test = made[0].evaluate("val"), made[0].evaluate("test")
    for key in ("wauc", "mean_auc", "wauc500", "mean_auc500", "domain_auc", "domain_auc500", "logloss"):
        assert record[key] == test[key]
    assert record["domain_logloss"] == test["domain_logloss"] and record["domain_test_size"] == test["domain_size"]
    assert record["val"] == {k: val[k] for k in ("wauc", "mean_auc", "mean_auc500", "domain_auc", "logloss")}
