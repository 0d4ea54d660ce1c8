"""Training loops as data: the fast default and the original's, factor by factor.

`--loop=original` is what TF 1.12 + DeepCTR 0.9.0 did, step for step
(original-model-zoo.md §5; `docs/fidelity.md` rows 3-5, 10, 21): it is the yardstick
every default of the fast loop is measured against. Each way the two loops differ is
one *factor*, a config field whose unset value (None) the loop fills in, so any
single factor can be switched on its own (`experiments/fidelity_ablation.py`).

Factors the loops share by default (early stopping on the mean 500-threshold AUC,
the reset to the best weights after a non-improving epoch, Adam with epsilon 1e-8,
one domain per batch, the last partial batch kept, the L2 terms of whole tables) are
not factors: they are the original's behaviour in both loops.
"""

from __future__ import annotations

import dataclasses

from mlora_tf.layers.dropout import DROPOUT_IMPLS
from mlora_tf.models.profiles import INIT_SEEDS

LOOPS = ("fast", "original")


@dataclasses.dataclass(frozen=True)
class Factor:
    """One way the fast loop differs from the original's.

    Attributes:
        name: the config field (`RunConfig.<section>.<name>`).
        section: `train` or `model`.
        fast: the fast loop's value.
        original: the original's value.
        what: one line for tables and `--help`.
        reference: where the original's behaviour is recorded.
        alternative: the value the factor ablation switches the original loop to: our
            choice (None: `fast`). It differs from `fast` where the ablation showed our
            choice to move the numbers and the fast loop went back to the original's.
    """

    name: str
    section: str
    fast: object
    original: object
    what: str
    reference: str
    alternative: object = None

    @property
    def ours(self):
        """The value the ablation measures against the original's."""
        return self.fast if self.alternative is None else self.alternative


FACTORS = (
    # The fast loop used a fresh permutation per epoch until the ablation showed it
    # raises Base WAUC by ~0.2 on ML-1M (more epochs before early stopping); it now
    # streams as the original did (docs/fidelity.md, "The original loop").
    Factor("shuffle", "train", "buffer", "buffer",
           "10,000-row shuffle buffer repeating its order every epoch (both loops) vs a fresh full permutation "
           "per epoch (`permutation`, the fast loop's until 2026-12-03)",
           "original-model-zoo.md §5.1; fidelity row 4", alternative="permutation"),
    Factor("loss", "train", "logits", "clipped",
           "BCE from logits vs Keras BCE on probabilities clipped to [1e-7, 1-1e-7]",
           "§5.2; fidelity row 5"),
    Factor("row_groups", "train", None, 1,
           "two row groups per step on a CPU (same gradient to rounding) vs one pass per batch",
           "§5.3; docs/performance.md"),
    Factor("dropout_impl", "model", "fast", "keras",
           "FastDropout (8 random bits per element) vs Keras Dropout (one 32-bit draw per element)",
           "§2.1, §3.1; fidelity row 10"),
    Factor("init_seeds", "model", "independent", "original",
           "independent initial draws vs DeepCTR's op seeds (1024 kernels/heads/A, 2020 embeddings): "
           "same-shaped same-seeded weights start identical",
           "§2.1, §5.7; fidelity rows 3, 21"),
    Factor("restore_ema_state", "train", True, False,
           "the reset to the best weights also resets the partitioned norm's zero-debias state (STAR only) vs "
           "keeps it (it was not in the original's checkpoint)",
           "§4.2, §8 item 9; fidelity row 22"),
)
FACTOR_NAMES = tuple(f.name for f in FACTORS)
CHOICES = {
    "shuffle": ("permutation", "buffer"),
    "loss": ("logits", "clipped"),
    "dropout_impl": DROPOUT_IMPLS,
    "init_seeds": INIT_SEEDS,
}


def get_factor(name: str) -> Factor:
    for factor in FACTORS:
        if factor.name == name:
            return factor
    raise ValueError(f"Unknown loop factor {name!r}. Valid: {', '.join(FACTOR_NAMES)}")


def check_loop_config(config) -> None:
    """Raise ValueError for an unknown loop or factor value of a `RunConfig`."""
    if config.train.loop not in LOOPS:
        raise ValueError(f"`loop` must be one of {list(LOOPS)}. Received: loop={config.train.loop!r}")
    for factor in FACTORS:
        value = getattr(getattr(config, factor.section), factor.name)
        if value is None:
            continue
        if factor.name == "restore_ema_state":
            if not isinstance(value, bool):
                raise ValueError(f"`restore_ema_state` must be true or false. Received: {value!r}")
        elif factor.name == "row_groups":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`row_groups` must be a positive integer. Received: row_groups={value!r}")
        elif value not in CHOICES[factor.name]:
            raise ValueError(
                f"`{factor.name}` must be one of {list(CHOICES[factor.name])}. Received: {factor.name}={value!r}"
            )
    if not isinstance(config.train.shuffle_buffer, int) or config.train.shuffle_buffer < 1:
        raise ValueError(f"`shuffle_buffer` must be a positive integer. Received: {config.train.shuffle_buffer!r}")


def resolve_loop(config):
    """A new `RunConfig` whose unset factors hold the values of `config.train.loop`.

    Factors set explicitly keep their values (that is how the ablation switches one
    factor away from the original's). `row_groups` of the fast loop stays None: the
    trainer picks 2 on a CPU host, 1 elsewhere.
    """
    check_loop_config(config)
    sections = {"train": {}, "model": {}}
    for factor in FACTORS:
        if getattr(getattr(config, factor.section), factor.name) is None:
            value = factor.original if config.train.loop == "original" else factor.fast
            if value is not None:
                sections[factor.section][factor.name] = value
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, **sections["model"]),
        train=dataclasses.replace(config.train, **sections["train"]),
    )


def loop_differences(config) -> dict:
    """`{factor: value}` of a resolved config's factors that differ from the original's."""
    out = {}
    for factor in FACTORS:
        value = getattr(getattr(config, factor.section), factor.name)
        if value != factor.original:
            out[factor.name] = value
    return out
