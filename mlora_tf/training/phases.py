"""Training phases as data, and the schedules built from them.

A phase names the variable groups that train, where the dense stack's mixture weight
comes from, and which domains feed it. A schedule is a list of phases.
"""

from __future__ import annotations

import dataclasses

from mlora_tf.layers.adapted_dnn import Routing

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
        train_slot: with `adapter` in `train_groups`, only this adapter slot (expert)
            trains; the other slots end the phase bit-for-bit unchanged.
        carry_best: start from the best validation metric and weights of the phases
            before (the MoE-MLoRA fork's `reset_early_stop` bug) instead of afresh.
    """

    name: str
    train_groups: tuple
    mixture: str
    expert_index: int | None = None
    domains: tuple | None = None
    baseline_first: bool = False
    train_slot: int | None = None
    carry_best: bool = False

    def __post_init__(self):
        unknown = [g for g in self.train_groups if g not in GROUPS]
        if unknown:
            raise ValueError(f"Unknown variable groups {unknown}. Valid: {GROUPS}")

    @property
    def routing(self) -> Routing:
        """How the phase's steps route rows to the dense stack's adapter slots."""
        return Routing(mixture=self.mixture, expert_index=self.expert_index)


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


def moe_paper(n_domains: int, num_experts: int, carry_best: bool = False) -> list[Phase]:
    """MoE-MLoRA as the paper describes it (fork §7.3, intended semantics).

    1. backbone: mixture zeros, everything but adapters and gate trains, all domains;
    2. expert e = 0..E-1: forward backbone + expert e, only expert e's slot trains, on
       domain `e mod D` only;
    3. gate: forward backbone + gated mixture, only the gate trains, all domains.
    """
    phases = [Phase("backbone", ("backbone",), "zeros", carry_best=carry_best)]
    for e in range(num_experts):
        phases.append(
            Phase(f"expert_{e}", ("adapter",), "expert", expert_index=e, domains=(e % n_domains,),
                  train_slot=e, carry_best=carry_best)
        )
    phases.append(Phase("gate", ("gate",), "gate", carry_best=carry_best))
    return phases


def moe_as_executed(n_domains: int, num_experts: int, carry_best: bool = True) -> list[Phase]:
    """What the fork really ran under TF 1.12 (fork §7.4): one fixed forward (backbone +
    the never-trained random gate's near-uniform mixture of all experts), nothing but
    the gate frozen, three early-stopped stages of which the second is E successive
    fine-tunings of the whole network on domain `i mod D`; best metric carried over."""
    trainable = ("backbone", "adapter")
    phases = [Phase("backbone", trainable, "gate", carry_best=carry_best)]
    phases += [
        Phase(f"expert_{e}", trainable, "gate", domains=(e % n_domains,), carry_best=carry_best)
        for e in range(num_experts)
    ]
    phases.append(Phase("gate", trainable, "gate", carry_best=carry_best))
    return phases


SCHEDULES = {"joint": joint, "pretrain_finetune": pretrain_finetune}
MOE_SCHEDULES = {"paper": moe_paper, "as_executed": moe_as_executed}


def schedule_phases(
    schedule: str, adapter: str, n_domains: int | None = None, num_experts: int | None = None,
    carry_best: bool | None = None,
) -> list[Phase]:
    """The phases of `schedule` for `adapter`.

    For `adapter="moe"`, `schedule` names a MoE schedule (`paper`, `as_executed`) and
    `n_domains` / `num_experts` are required; `carry_best` overrides the schedule's
    default (False for `paper`, True for `as_executed`).
    """
    if adapter == "moe":
        try:
            build = MOE_SCHEDULES[schedule]
        except KeyError:
            raise ValueError(f"Unknown MoE schedule {schedule!r}. Valid: {', '.join(MOE_SCHEDULES)}") from None
        if not n_domains or not num_experts:
            raise ValueError("MoE schedules need `n_domains` and `num_experts`.")
        kwargs = {} if carry_best is None else {"carry_best": carry_best}
        return build(n_domains, num_experts, **kwargs)
    try:
        build = SCHEDULES[schedule]
    except KeyError:
        raise ValueError(f"Unknown schedule {schedule!r}. Valid: {', '.join(SCHEDULES)}") from None
    return build(adapter)
