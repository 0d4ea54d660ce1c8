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
        dropout_impl: `fast` (`FastDropout`, the fast loop's) or `keras` (Keras
            `Dropout`, the original's); None: the `TrainConfig.loop`'s choice.
        init_seeds: `independent` (every initialiser draws from the run seed) or
            `original` (DeepCTR's op seeds 1024 / 2020 under the run seed as graph
            seed, so same-shaped same-seeded weights start identical); None: the
            loop's choice.
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
    dropout_impl: str | None = None
    init_seeds: str | None = None


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
        loop: `fast` (the default) or `original` (what TF 1.12 + DeepCTR did, step
            for step; `mlora_tf.training.loops`). It chooses every factor below (and
            `ModelConfig.dropout_impl`, `init_seeds`) left unset (None).
        shuffle: `buffer` (a 10,000-row shuffle buffer over the split's row order
            whose order repeats every epoch, as `make_csv_dataset` did; both loops) or
            `permutation` (a fresh full permutation of each domain's rows every epoch).
        loss: `logits` (BCE from logits) or `clipped` (Keras' BCE on probabilities
            clipped to [1e-7, 1 - 1e-7]).
        row_groups: row groups a one-device step splits its batch into (None: 2 on a
            CPU host, else 1; the original's is 1).
        shuffle_buffer: rows in the `buffer` shuffle's buffer (the original's 10,000).
        restore_ema_state: whether the reset to the best weights also resets the hidden
            zero-debias state of moving averages (STAR's partitioned norm): the fast
            loop does; the original did not (it was not in its checkpoint).
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
    loop: str = "fast"
    shuffle: str | None = None
    loss: str | None = None
    row_groups: int | None = None
    shuffle_buffer: int = 10000
    restore_ema_state: bool | None = None


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


FUSION_SCHEDULES = ("paper", "as_coded")


@dataclasses.dataclass
class MultiTaskTrainConfig:
    """How a multi-domain multi-task model trains (defaults: M3oE's released code,
    m3oe.md §3.1).

    Attributes:
        batch_size: training batch, rows of every domain mixed (40,960 = `4096*10`).
        eval_batch_size: rows per prediction call.
        learning_rate: the main Adam's (1e-2).
        fusion_learning_rate: the fusion scalars' own Adam (the code's "darts"
            optimizer, 1e-3).
        weight_decay: torch's coupled L2: `weight_decay * w` added to every gradient,
            both optimizers (1e-5).
        adam_epsilon: 1e-8 (torch's; Keras' default is 1e-7).
        max_epochs: 50.
        patience: early stopping after this many epochs without a better validation
            mean AUC (10).
        fusion_schedule: `"paper"` (default): the main optimizer trains the network
            only; once per epoch the fusion scalars take one step of their own
            optimizer on a training batch (the paper's "mini-batch of training data",
            m3oe.md §3.3), loss = the per-pair sum.
            `"as_coded"`: what the released code does (m3oe.md §3.3): the main
            optimizer trains every weight, the scalars included, and once per epoch
            the fusion optimizer steps the scalars on the next batch of a second
            shuffled pass over the training data, loss = mean BCE.
        restore_best: test with the best validation weights (default). False: the
            code's rule, the last epoch's weights unless early stopping fired.
        seed: seed of initialisers, shuffles and fusion batches (the code's 2022..2026).
    """

    batch_size: int = 40960
    eval_batch_size: int = 65536
    learning_rate: float = 1e-2
    fusion_learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    adam_epsilon: float = 1e-8
    max_epochs: int = 50
    patience: int = 10
    fusion_schedule: str = "paper"
    restore_best: bool = True
    seed: int = 2022

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        for name in ("learning_rate", "fusion_learning_rate", "adam_epsilon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"`weight_decay` must be a number >= 0. Received: weight_decay={self.weight_decay!r}")
        if self.fusion_schedule not in FUSION_SCHEDULES:
            raise ValueError(
                f"`fusion_schedule` must be one of {list(FUSION_SCHEDULES)}. "
                f"Received: fusion_schedule={self.fusion_schedule!r}"
            )


def _multitask_model_config(**values):
    from mlora_tf.models.multitask import MultiTaskModelConfig

    return MultiTaskModelConfig.from_config(values)


@dataclasses.dataclass
class MultiTaskRunConfig:
    """One multi-domain multi-task run (`mlora-train --task_set=...`).

    Attributes:
        data: which dataset (a multi-task one: `ml-1m-m3oe`, `ml-100k-m3oe`,
            `synthetic-mt`, or `ml-1m`/`ml-100k`/`synthetic`, which resolve to them).
        model: a `mlora_tf.models.MultiTaskModelConfig` (name and hyper-parameters).
        train: `MultiTaskTrainConfig`.
        tasks: the label columns to train on, in output order (empty: all the
            dataset's). One task is M3oE's "-MDL" setting.
        domains: keep only these domains, renumbered `0..` (empty: all). One domain
            is the "-MTL" setting.
    """

    data: DataConfig = dataclasses.field(default_factory=lambda: DataConfig(dataset="synthetic-mt", domain_split="age3"))
    model: Any = dataclasses.field(default_factory=_multitask_model_config)
    train: MultiTaskTrainConfig = dataclasses.field(default_factory=MultiTaskTrainConfig)
    tasks: tuple = ()
    domains: tuple = ()

    KIND = "multitask"

    def __post_init__(self) -> None:
        self.tasks = tuple(str(t) for t in self.tasks)
        self.domains = tuple(int(d) for d in self.domains)

    def to_dict(self) -> dict:
        return {
            "kind": self.KIND,
            "data": dataclasses.asdict(self.data),
            "model": self.model.get_config(),
            "train": dataclasses.asdict(self.train),
            "tasks": list(self.tasks),
            "domains": list(self.domains),
        }

    @classmethod
    def from_dict(cls, values: dict) -> "MultiTaskRunConfig":
        """Inverse of `to_dict`; unknown keys raise ValueError naming the closest key."""
        values = dict(values)
        if values.pop("kind", cls.KIND) != cls.KIND:
            raise ValueError(f"Not a multi-task run config. Received: kind={values.get('kind')!r}")
        check_keys(values, ("data", "model", "train", "tasks", "domains"), "multi-task run config")
        data = dict(values.get("data", {}))
        check_keys(data, field_names(DataConfig), "[data]")
        train = dict(values.get("train", {}))
        check_keys(train, field_names(MultiTaskTrainConfig), "[train]")
        return cls(
            data=DataConfig(**data),
            model=_multitask_model_config(**values.get("model", {})),
            train=MultiTaskTrainConfig(**train),
            tasks=tuple(values.get("tasks", ())),
            domains=tuple(values.get("domains", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def run_config_from_dict(values: dict):
    """A `RunConfig` or, for `{"kind": "multitask", ...}`, a `MultiTaskRunConfig`."""
    if values.get("kind") == MultiTaskRunConfig.KIND:
        return MultiTaskRunConfig.from_dict(values)
    return RunConfig.from_dict(values)
