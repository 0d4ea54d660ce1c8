"""Run configuration as data: dataclasses for data, model and training settings.

Flags of `mlora-train` and the keys of an original-style JSON config both resolve to a
`RunConfig` (see `mlora_tf.original_config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any


@dataclasses.dataclass
class DataConfig:
    """Which dataset to load and how to split it.

    Attributes:
        dataset: loader name (`synthetic`, `ml-1m`, `ml-100k`, `amazon`, `taobao`, `csv`;
            `mlora_tf.data.available_datasets()`).
        data_dir: folder with the raw files (MovieLens).
        domain_split: how rows become domains (`gender`, `age`, `occupation`).
        cache_dir: prepared-split cache folder (None: the default, `~/.cache/mlora_tf`).
        split_seed: seed of the per-domain stratified 60/20/20 split (original: 123).
        options: loader-specific knobs (synthetic generator sizes and shift).
    """

    dataset: str = "synthetic"
    data_dir: str | None = None
    domain_split: str = "gender"
    cache_dir: str | None = None
    split_seed: int = 123
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ModelConfig:
    """Backbone and adapter.

    Attributes:
        name: backbone name in the registry (`mlora-train --list_models`).
        adapter: `none` (Base), `mlora`, or `moe` (MoE-MLoRA).
        hidden_units: the dense stack's widths.
        dropout: dropout rate of the dense stack; None takes the backbone's original
            value (0.5; STAR 0).
        lora_reduce: the paper's temperature alpha (rank = units // alpha); None takes the
            backbone's MovieLens value from the original configs.
        lora_rank: explicit rank when >= 1 (the original's `lora_r`, -1 = unused).
        user_dim, item_dim, domain_dim: embedding sizes of the three fields; None takes
            the original MovieLens value (8; STAR 128).
        l2_reg_embedding: L2 factor over whole embedding tables (DeepCTR backbones).
        l2_reg_linear: L2 factor of the linear (wide) tables.
        experts_per_domain: MoE-MLoRA experts per domain.
        num_experts: the fork's total expert count (-1: unused; else it must be a
            multiple of the number of domains and sets `experts_per_domain`).
        as_shipped: reproduce the original's routing quirks (xDeepFM builds DeepFM).
        auxiliary_net: STAR's auxiliary network (added to the last hidden layer).
        load_pretrain_emb: start uid/pid tables from the dataset's pretrained vectors
            when it has them (Taobao).
        emb_trainable: let pretrained tables train (the original's Taobao configs: no).
    """

    name: str = "wdl"
    adapter: str = "mlora"
    hidden_units: tuple = (256, 128, 64)
    dropout: float | None = None
    lora_reduce: float | None = None
    lora_rank: int = -1
    user_dim: int | None = None
    item_dim: int | None = None
    domain_dim: int | None = None
    l2_reg_embedding: float = 1e-5
    l2_reg_linear: float = 1e-5
    experts_per_domain: int = 1
    num_experts: int = -1
    as_shipped: bool = False
    auxiliary_net: bool = False
    load_pretrain_emb: bool = True
    emb_trainable: bool = False


@dataclasses.dataclass
class TrainConfig:
    """The training loop (original-model-zoo.md §5).

    Attributes:
        batch_size: training batch size (1024 in every original config).
        eval_batch_size: batch size for validation and test prediction (no effect on
            the numbers: evaluation is deterministic).
        learning_rate: Adam learning rate.
        adam_epsilon: Adam epsilon (TF 1's 1e-8, not Keras 3's 1e-7).
        patience: early-stopping patience on the mean validation AUC.
        max_epochs: epoch limit (the original's 99999 is effectively unlimited).
        restore_best_each_epoch: after a non-improving epoch, reset the weights to the
            best epoch's, keeping the optimizer state (the original's behaviour).
        schedule: `joint` (adapters and backbone together, what the original `_lora`
            configs ran) or `pretrain_finetune` (backbone first, then adapters alone).
        mixed_batches: draw training batches across domains instead of one domain a batch.
        early_stop_metric: `auc500` (the original's 500-threshold AUC) or `auc` (exact).
        seed: seed of initialisers, shuffles and the domain order.
        moe_schedule: MoE-MLoRA schedule: `paper` (three phases with real freezing and
            path switching) or `as_executed` (what the fork ran under TF 1.12).
        moe_carry_best: carry the best validation metric across phases (the fork's
            bug); None: the schedule's default (off for `paper`, on for `as_executed`).
        share_optimizer: one Adam for every phase (the fork); default one per phase.
    """

    batch_size: int = 1024
    eval_batch_size: int = 16384
    learning_rate: float = 1e-3
    adam_epsilon: float = 1e-8
    patience: int = 3
    max_epochs: int = 100
    restore_best_each_epoch: bool = True
    schedule: str = "joint"
    mixed_batches: bool = False
    early_stop_metric: str = "auc500"
    seed: int = 2024
    moe_schedule: str = "paper"
    moe_carry_best: bool | None = None
    share_optimizer: bool = False


@dataclasses.dataclass
class RunConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """Inverse of `to_dict`; unknown keys raise ValueError naming the closest key."""
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
        check_keys(values, sections, "run config")
        built = {}
        for section, klass in sections.items():
            part = dict(values.get(section, {}))
            check_keys(part, {f.name: None for f in dataclasses.fields(klass)}, f"[{section}]")
            if "hidden_units" in part:
                part["hidden_units"] = tuple(part["hidden_units"])
            built[section] = klass(**part)
        return cls(**built)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def check_keys(values: dict, valid, where: str) -> None:
    """Raise ValueError for the first key of `values` not in `valid`, naming the closest."""
    valid = list(valid)
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown key {key!r} in {where}.{hint} Valid keys: {', '.join(sorted(valid))}")


def parse_value(text: str):
    """`"3"` -> 3, `"1.5"` -> 1.5, `"true"` -> True, anything else stays a string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_options(items) -> dict:
    """`["n_rows=3000", "shift=1.5"]` -> `{"n_rows": 3000, "shift": 1.5}`."""
    options = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"Options are key=value items. Received: {item!r}")
        key, value = item.split("=", 1)
        options[key.strip()] = parse_value(value.strip())
    return options


def field_names(klass) -> list[str]:
    return [f.name for f in dataclasses.fields(klass)]


def replace(obj: Any, **changes):
    return dataclasses.replace(obj, **changes)
