"""Read an original-style JSON config (gaohaining/MLoRA `config/<Dataset>/<model>.json`).

The original's configs have sections (`dataset`, `model`, `train`, ...) holding the
keys listed in original-model-zoo.md §6. Every known key maps to a `RunConfig` field or
is known to be read by nothing (MAMDR leftovers) and ignored; an unknown key is an
error naming the closest known one.
"""

from __future__ import annotations

import json
import os

from absl import logging

from mlora_tf.config import RunConfig, check_keys

# Original `model.name` -> (backbone, adapter). `_single` = Base, `_lora` = MLoRA.
_BACKBONES = ("mlp", "wdl", "nfm", "autoint", "pnn", "dcn", "fibinet", "deepfm", "xdeepfm")
MODEL_NAMES = {f"{b}_single": (b, "none") for b in _BACKBONES}
MODEL_NAMES.update({f"{b}_lora": (b, "mlora") for b in _BACKBONES})
MODEL_NAMES.update({"mlora": ("mlp", "mlora"), "star": ("star", "none"), "star_single": ("star", "none")})
MODEL_NAMES["pnn_mlora"] = ("pnn", "mlora")  # Amazon_6; the original builds a plain MLP (see docs/fidelity.md)

DATASET_NAMES = {"Movielens": "ml-1m", "Taobao": "taobao", "Amazon": "amazon"}
SPLIT_PATHS = {"split_by_gender": "gender", "split_by_age": "age", "split_by_occupation": "occupation"}

# key -> (section, field) of RunConfig, or None for keys the original reads nowhere.
_MAPPED = {
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "patience": ("train", "patience"),
    "epoch": ("train", "max_epochs"),
    "seed": ("train", "seed"),
    "hidden_dim": ("model", "hidden_units"),
    "dropout": ("model", "dropout"),
    "lora_reduce": ("model", "lora_reduce"),
    "lora_r": ("model", "lora_rank"),
    "user_dim": ("model", "user_dim"),
    "item_dim": ("model", "item_dim"),
    "domain_dim": ("model", "domain_dim"),
    "num_experts": ("model", "num_experts"),
    "auxiliary_net": ("model", "auxiliary_net"),
    "load_pretrain_emb": ("model", "load_pretrain_emb"),
    "emb_trainable": ("model", "emb_trainable"),
}
_SPECIAL = {"name", "dataset_path", "domain_split_path", "dense"}
_IGNORED = {
    "shuffle_buffer_size", "num_parallel_reads", "optimizer", "loss", "histogram_freq",
    "checkpoint_path", "result_save_path", "norm",
    "auxiliary_dim", "train_from_ckp", "pretrain_judge",
    "sample_num", "merged_method", "val_every_step", "shuffle_buff_size", "rebuild",
}
KNOWN_KEYS = set(_MAPPED) | _SPECIAL | _IGNORED


def _leaves(values: dict, section: str = ""):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _leaves(value, key)
        else:
            yield section, key, value


def read_original_config(path: str, base: RunConfig | None = None) -> RunConfig:
    """Apply the original-style config at `path` on top of `base` (default RunConfig()).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: invalid JSON, an unknown key (with the closest known key), or an
            unknown model / dataset / split name.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level.")
    if set(raw) <= {"data", "model", "train"} and "data" in raw:
        return RunConfig.from_dict(raw)  # our own RunConfig.to_json() format
    config = base or RunConfig()
    for section, key, value in _leaves(raw):
        if key.startswith("meta_"):
            continue
        check_keys({key: value}, KNOWN_KEYS, f"{path} [{section or 'top level'}]")
        if key in _IGNORED:
            logging.debug("%s: key %r is read by nothing in the original; ignored.", path, key)
        elif key == "name" and section == "model":
            if value not in MODEL_NAMES:
                raise ValueError(f"{path}: unknown model.name {value!r}. Known: {', '.join(sorted(MODEL_NAMES))}")
            config.model.name, config.model.adapter = MODEL_NAMES[value]
        elif key == "name":
            if value not in DATASET_NAMES:
                raise ValueError(f"{path}: unknown dataset name {value!r}. Known: {', '.join(DATASET_NAMES)}")
            config.data.dataset = DATASET_NAMES[value]
        elif key == "domain_split_path":
            split = SPLIT_PATHS.get(value, value.replace("split_by_", ""))
            config.data.domain_split = split
        elif key == "dense":
            # `mlora_freeze` (Taobao_10, Amazon_6 `mlora.json`): the two-phase pipeline,
            # which crashes as shipped; here it runs as `pretrain_finetune`.
            if "freeze" in str(value):
                config.train.schedule = "pretrain_finetune"
        elif key == "dataset_path":
            continue  # the original's repository-relative folder; --data_dir says where ours are
        else:
            target, field = _MAPPED[key]
            if field == "hidden_units":
                value = tuple(int(v) for v in value)
            setattr(getattr(config, target), field, value)
    return config
