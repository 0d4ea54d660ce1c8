"""Training phases as data, and the schedules built from them.

A phase names the variable groups that train, where the dense stack's mixture weight
comes from, and which domains feed it. A schedule is a list of phases.
"""

from __future__ import annotations

import dataclasses

GROUPS = ("backbone", "adapter", "gate")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stage of training.

    Attributes:
        name: shown in logs and stored in the result record.
        train_groups: variable groups that train (`backbone`, `adapter`, `gate`);
            every other group is frozen.
        mixture: the dense stack's mixture source (`domain`, `gate`, `zeros`,
            `expert`).
        expert_index: the expert for `mixture="expert"`.
        domains: the domains whose training data feed the phase (None: all).
        baseline_first: evaluate validation once before training and use it as the
            best to beat (the original's fine-tune phase).
    """

    name: str
    train_groups: tuple
    mixture: str
    expert_index: int | None = None
    domains: tuple | None = None
    baseline_first: bool = False

    def __post_init__(self):
        unknown = [g for g in self.train_groups if g not in GROUPS]
        if unknown:
            raise ValueError(f"Unknown variable groups {unknown}. Valid: {GROUPS}")


def joint(adapter: str) -> list[Phase]:
    """Everything trains together; the original `_lora` configs (and every Base run)."""
    if adapter == "none":
        return [Phase("joint", ("backbone",), "zeros")]
    if adapter == "mlora":
        return [Phase("joint", ("backbone", "adapter"), "domain")]
    raise ValueError(f"The joint schedule has no phases for adapter {adapter!r}; use the MoE schedule.")


def pretrain_finetune(adapter: str) -> list[Phase]:
    """The paper's text: the backbone first with adapters off, then the adapters alone
    (backbone and embeddings frozen; `A` is still its random initial value, `B` zero)."""
    if adapter != "mlora":
        raise ValueError(f"schedule 'pretrain_finetune' needs adapter='mlora'. Received: adapter={adapter!r}")
    return [
        Phase("pretrain", ("backbone",), "zeros"),
        Phase("finetune", ("adapter",), "domain", baseline_first=True),
    ]


SCHEDULES = {"joint": joint, "pretrain_finetune": pretrain_finetune}


def schedule_phases(schedule: str, adapter: str) -> list[Phase]:
    try:
        build = SCHEDULES[schedule]
    except KeyError:
        raise ValueError(f"Unknown schedule {schedule!r}. Valid: {', '.join(SCHEDULES)}") from None
    return build(adapter)
