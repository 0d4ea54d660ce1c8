"""`variable_groups`: a model's trainable variables by the group a trainer treats alike,
for either kind of model.

- **single_task** (`build_model`): `backbone`, `adapter`, `gate`. Layers that expose
  `variable_groups()` (the dense stack) sort their own; every other trainable variable
  is `backbone`. The MLoRA and MoE-MLoRA schedules freeze and train these groups.
- **multi_task** (`build_multitask_model`): `main` and `fusion`. Layers that expose
  `fusion_variables` (M3oE's `ExpertFusion`) give `fusion`; every other trainable
  variable is `main`. The original steps the fusion scalars with a second optimizer
  once per epoch and, through a filter bug, also with the main one (m3oe.md §3.3): a
  trainer reproducing the code puts `main + fusion` in the main optimizer; one
  following the paper's bi-level intent puts only `main` there.

Call it before freezing anything: only trainable variables are grouped.
"""

from __future__ import annotations

from typing import Any

import keras

from mlora_tf.models.registry import KINDS, MULTI_TASK, SINGLE_TASK


def _dense_stack_groups(layer) -> dict[str, list[Any]]:
    return layer.variable_groups() if hasattr(layer, "variable_groups") else {}


def _fusion_groups(layer) -> dict[str, list[Any]]:
    return {"fusion": list(layer.fusion_variables)} if hasattr(layer, "fusion_variables") else {}


# kind -> (its groups in order, the group of unclaimed variables, what a layer claims)
_GROUPING = {
    SINGLE_TASK: (("backbone", "adapter", "gate"), "backbone", _dense_stack_groups),
    MULTI_TASK: (("main", "fusion"), "main", _fusion_groups),
}


def variable_groups(model: keras.Model, kind: str = SINGLE_TASK) -> dict[str, list[Any]]:
    """The trainable variables of `model` by group.

    Args:
        model: a model of `kind`.
        kind: `"single_task"` (groups `backbone`, `adapter`, `gate`) or
            `"multi_task"` (groups `main`, `fusion`).

    Returns:
        `{group: [variable, ...]}` with every group of the kind, in the order above.
        The variables a layer claims come first, in layer order; the unclaimed ones
        follow in `model.trainable_variables` order.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in _GROUPING:
        raise ValueError(f"`kind` must be one of {list(KINDS)}. Received: kind={kind!r}")
    names, rest, claims = _GROUPING[kind]
    groups: dict[str, list[Any]] = {name: [] for name in names}
    claimed = set()
    for layer in model.layers:
        for group, variables in claims(layer).items():
            groups[group].extend(variables)
            claimed.update(id(v) for v in variables)
    groups[rest].extend(v for v in model.trainable_variables if id(v) not in claimed)
    return groups
