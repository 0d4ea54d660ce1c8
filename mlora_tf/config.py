"""Run configuration as data: dataclasses for data, model and training settings.

Flags of `mlora-train` and the keys of an original-style JSON config both resolve to a
`RunConfig` (see `mlora_tf.original_config`); `mlora-train --task_set=...` to a
`MultiTaskRunConfig`, whose model is a `MultiTaskModelConfig` (M3oE's `M3oEConfig`
plus the model's name). Config sits below the models: it imports no model module.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from typing import Any

from mlora_tf.layers.m3oe import FUSION_MODES


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


# ------------------------------------------------------------- multi-task runs
DEFAULT_SPARSE_FEATURES: tuple[str, ...] = (
    "uid", "pid", "gender", "occupation", "zip", "cate_id", "domain",
)
DEFAULT_DENSE_FEATURES: tuple[str, ...] = ("age",)


@dataclasses.dataclass
class M3oEConfig:
    """Hyper-parameters of M3oE (defaults: the released code's, m3oe.md §2-3).

    Attributes:
        sparse_features: embedded id inputs, in the order their embeddings are
            concatenated; must include `"domain"` (also the routing key).
        dense_features: float inputs appended after the embeddings.
        embedding_dim: size of every embedding (16).
        embedding_stddev: embeddings start `N(0, embedding_stddev)` (1e-4).
        star_units: width of the domain projection `f_DR` (512, `fcn_dims[0]`).
        hidden_units: width of `h` (256, `fcn_dims[1]`).
        expert_units: output width of every expert (64, `fcn_dims[3]`).
        tower_units: hidden width of every tower (64).
        num_shared_experts: `N` (4, the code's `--expert_num` default; the paper's
            best MovieLens setting is 1, m3oe.md §2.3 item 4).
        layer_norm_epsilon: LayerNorm epsilon everywhere (1e-5, torch's default).
        gate_stop_gradient: gates see `stop_gradient(h)`, as the code (True).
        fusion: `"learned"` (sigmoid-parameterised trainable scalars) or `"fixed"`
            (all four weights 0.5, frozen: Table 3 "w/o AutoML").
        fusion_init: raw (pre-sigmoid) initial values of `(alpha_D, alpha_T,
            beta_D, beta_T)`, the code's `--exp_d --exp_t --bal_d --bal_t` (1.0
            each, so every weight starts at 0.731). Ignored with `fusion="fixed"`.
        concat_modules: Table 3 "concat modules": concatenate the three views
            instead of the alpha-weighted sum.
        fully_gated: Table 3 "fully gated": each (domain, task) gate mixes the
            shared, domain and task experts together; no fusion scalars.
        domain_experts: use the domain experts (False: Table 3 "w/o domain").
        task_experts: use the task experts (False: "w/o task"; both False: "w/o
            domain & task").
    """

    sparse_features: tuple[str, ...] = DEFAULT_SPARSE_FEATURES
    dense_features: tuple[str, ...] = DEFAULT_DENSE_FEATURES
    embedding_dim: int = 16
    embedding_stddev: float = 1e-4
    star_units: int = 512
    hidden_units: int = 256
    expert_units: int = 64
    tower_units: int = 64
    num_shared_experts: int = 4
    layer_norm_epsilon: float = 1e-5
    gate_stop_gradient: bool = True
    fusion: str = "learned"
    fusion_init: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    concat_modules: bool = False
    fully_gated: bool = False
    domain_experts: bool = True
    task_experts: bool = True

    def __post_init__(self) -> None:
        self.sparse_features = tuple(self.sparse_features)
        self.dense_features = tuple(self.dense_features)
        self.fusion_init = tuple(self.fusion_init)  # type: ignore[assignment]
        for name in ("embedding_dim", "star_units", "hidden_units", "expert_units",
                     "tower_units", "num_shared_experts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        for name in ("embedding_stddev", "layer_norm_epsilon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
        for name in ("gate_stop_gradient", "concat_modules", "fully_gated", "domain_experts",
                     "task_experts"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}")
        if self.fusion not in FUSION_MODES:
            raise ValueError(
                f"`fusion` must be one of {list(FUSION_MODES)}. Received: fusion={self.fusion!r}"
            )
        if len(self.fusion_init) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in self.fusion_init
        ):
            raise ValueError(
                "`fusion_init` must be four finite numbers (alpha_D, alpha_T, beta_D, beta_T). "
                f"Received: fusion_init={self.fusion_init!r}"
            )
        if "domain" not in self.sparse_features:
            raise ValueError(
                "`sparse_features` must include 'domain' (the routing key). "
                f"Received: sparse_features={list(self.sparse_features)}"
            )
        names = self.sparse_features + self.dense_features
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"Feature names must be unique. Received: duplicates {duplicates}"
            )
        if self.fully_gated and self.concat_modules:
            raise ValueError(
                "`fully_gated` and `concat_modules` are separate ablations; choose one. "
                "Received: fully_gated=True, concat_modules=True"
            )
        if self.fully_gated and self.fusion == "fixed":
            raise ValueError(
                "`fully_gated` has no fusion scalars, so `fusion='fixed'` does not apply. "
                "Received: fully_gated=True, fusion='fixed'"
            )

    @property
    def variant(self) -> str:
        """The paper's Table 3 name of this configuration."""
        if self.fully_gated:
            base = "fully gated"
        elif self.concat_modules:
            base = "concat modules"
        else:
            base = "M3oE"
        missing = [n for n, on in (("domain", self.domain_experts), ("task", self.task_experts)) if not on]
        if missing:
            base += " w/o " + " & ".join(missing)
        if self.fusion == "fixed":
            base += " w/o AutoML"
        return base

    def get_config(self) -> dict[str, Any]:
        config = dataclasses.asdict(self)
        for key in ("sparse_features", "dense_features", "fusion_init"):
            config[key] = list(config[key])
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "M3oEConfig":
        """Builds a config from a dict; unknown keys are rejected by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"Unknown M3oE config key(s) {unknown}; valid keys are {sorted(known)}. "
                f"Received: {unknown}"
            )
        return cls(**dict(config))


@dataclasses.dataclass
class MultiTaskModelConfig(M3oEConfig):
    """Which MDMT model, and its hyper-parameters.

    The widths, features and initialisation of `M3oEConfig` are shared by every model
    (the baselines are sized like M3oE's parts, m3oe.md §2.1); M3oE's ablation flags
    (`fusion`, `concat_modules`, `fully_gated`, `domain_experts`, `task_experts`) apply
    to `m3oe` only.

    Attributes:
        name: the registered model (`mlora-train --model`), default `"m3oe"`.
        specific_experts: PLE: experts owned by each (domain, task) objective.
        lora_reduce: MLoRA-SB: the temperature alpha, rank `max(units // alpha, 1)`.
    """

    name: str = "m3oe"
    specific_experts: int = 1
    lora_reduce: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a model name. Received: name={self.name!r}")
        value = self.specific_experts
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`specific_experts` must be a positive integer. Received: specific_experts={value!r}")
        value = self.lora_reduce
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"`lora_reduce` must be a positive number. Received: lora_reduce={value!r}")

    @property
    def m3oe_ablations_set(self) -> list[str]:
        """The M3oE-only fields that differ from their defaults."""
        default = M3oEConfig()
        return [
            f for f in ("fusion", "concat_modules", "fully_gated", "domain_experts", "task_experts")
            if getattr(self, f) != getattr(default, f)
        ]


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
