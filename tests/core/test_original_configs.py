import glob
import json
import os

import pytest

from mlora_tf.config import ModelConfig
from mlora_tf.models import DataSpec, build_model
from mlora_tf.original_config import read_original_config

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "original_configs")
FILES = sorted(glob.glob(os.path.join(FIXTURES, "*", "*.json")))
DATASETS = {"Movielens": ("ml-1m", "gender"), "Taobao_10": ("taobao", "theme_10"), "Amazon_6": ("amazon", "category_6")}


def test_every_shipped_config_shape_is_there():
    assert len(FILES) == 19 + 18 + 19  # original-model-zoo.md §6 / datasets.md §1.7 counts


@pytest.mark.parametrize("path", FILES, ids=lambda p: "/".join(p.split(os.sep)[-2:]))
def test_original_config_loads(path):
    raw = json.load(open(path))
    config = read_original_config(path)
    folder = path.split(os.sep)[-2]
    assert (config.data.dataset, config.data.domain_split) == DATASETS[folder]
    name = raw["model"]["name"]
    expected_backbone = "mlp" if name == "mlora" else name.split("_")[0]
    assert config.model.name == expected_backbone
    expected_adapter = "none" if (name.endswith("_single") or name == "star") else "mlora"
    assert config.model.adapter == expected_adapter
    assert config.model.lora_reduce == raw["model"].get("lora_reduce")
    assert config.train.patience == raw["train"]["patience"]
    assert config.model.user_dim == raw["model"]["user_dim"]
    assert config.model.hidden_units == (256, 128, 64)
    if raw["model"]["dense"] == "mlora_freeze":
        assert config.train.schedule == "pretrain_finetune"


@pytest.mark.parametrize("path", [p for p in FILES if os.sep + "Movielens" + os.sep in p], ids=os.path.basename)
def test_movielens_configs_build(path):
    config = read_original_config(path).model
    model = build_model(config, DataSpec({"uid": 50, "pid": 40, "domain": 2}, 2))
    assert model.count_params() > 0
