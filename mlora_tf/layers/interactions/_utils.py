"""Private helpers shared by the interaction layers."""

from __future__ import annotations

from typing import Any

import keras


def clone_initializer(
    initializer: keras.initializers.Initializer, seed_offset: int = 0
) -> keras.initializers.Initializer:
    """Returns a fresh copy of `initializer`, one per weight.

    A Keras 3 initializer instance returns the same values every time it is
    called, so each weight gets its own copy. An unseeded initializer's copy
    draws a new seed; an integer-seeded one keeps its seed plus
    `seed_offset`, which reproduces DeepCTR's `seed + i` convention where
    the original used it (and identical starts where it did not).

    Args:
        initializer: the initializer to copy.
        seed_offset: int, added to an integer seed. Defaults to `0`.
    """
    config: dict[str, Any] = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        config = dict(config, seed=seed + seed_offset)
    return initializer.__class__.from_config(config)


def check_rank(input_shape: Any, rank: int, layer_name: str, description: str):
    """Raises ValueError unless `input_shape` has `rank` dimensions."""
    if input_shape is None or len(input_shape) != rank:
        raise ValueError(
            f"`{layer_name}` expects {description}. "
            f"Received: input_shape={input_shape}"
        )


def check_domain_inputs(input_shape: Any, layer_name: str) -> tuple[int, int]:
    """Validates `[x, mixture]` shapes; returns `(input_dim, num_domains)`."""
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 2
        or not isinstance(input_shape[0], (list, tuple))
        or not isinstance(input_shape[1], (list, tuple))
    ):
        raise ValueError(
            f"`{layer_name}` expects two inputs `[x, mixture]` of shapes "
            "`(batch_size, input_dim)` and `(batch_size, num_domains)`. "
            f"Received: input_shape={input_shape}"
        )
    x_shape, mixture_shape = input_shape
    if len(x_shape) != 2 or len(mixture_shape) != 2:
        raise ValueError(
            f"`{layer_name}` expects `x` of rank 2 and `mixture` of rank 2. "
            f"Received: input_shape={input_shape}"
        )
    if x_shape[-1] is None or mixture_shape[-1] is None:
        raise ValueError(
            f"`{layer_name}` needs a known last dimension for `x` and "
            f"`mixture`. Received: input_shape={input_shape}"
        )
    return int(x_shape[-1]), int(mixture_shape[-1])
