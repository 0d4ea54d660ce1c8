"""M3oE's two-level fusion of shared, domain and task experts."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export

FUSION_MODES: tuple[str, ...] = ("learned", "fixed")
COMBINE_MODES: tuple[str, ...] = ("sum", "concat")
_SCALARS: tuple[str, ...] = ("alpha_domain", "alpha_task", "beta_domain", "beta_task")


@mlora_export("mlora_tf.layers.ExpertFusion")
class ExpertFusion(keras.layers.Layer):
    """Two-level fusion: beta-balanced domain and task mixes, alpha-weighted sum.

    With `E^D_j` the domain experts, `E^T_k` the task experts and `S_{t,d}` the gated
    shared experts (m3oe.md §2.2, equations 5-7):

    $$
    \\mathrm{Dmix}_d = \\beta_D E^D_d + \\frac{1 - \\beta_D}{D - 1} \\sum_{j \\ne d} E^D_j, \\qquad
    \\mathrm{Tmix}_t = \\beta_T E^T_t + \\frac{1 - \\beta_T}{T - 1} \\sum_{k \\ne t} E^T_k
    $$

    $$
    z_{t,d} = S_{t,d} + \\alpha_D\\,\\mathrm{Dmix}_d + \\alpha_T\\,\\mathrm{Tmix}_t
    $$

    With `D = 1` (or `T = 1`) the sum is empty and there is no division:
    `Dmix = beta_D E^D`, as in the original.

    The four weights are **single scalars shared by all domains and tasks**,
    `alpha_D = sigmoid(a_D)` etc., where the raw `a_D, a_T, b_D, b_T` (each shape
    `(1,)`) are trainable weights initialised from `*_init` (raw values: the
    original's default 1.0 gives 0.731). `alpha_D` scales the domain part, as the
    code and the paper's prose do; the paper's Eq. 7 prints the two labels swapped
    (m3oe.md §2.3 item 2).

    The scalars are exposed as a variable group, `fusion_variables`, so a trainer can
    give them their own optimizer (the original's "darts" step, m3oe.md §3.2-3.3).

    Modes and ablations (paper Table 3):

    - `fusion="fixed"`: "w/o AutoML", every raw weight is 0 (all four weights 0.5)
      and not trainable; `fusion_variables` is then empty.
    - `use_domain=False` / `use_task=False`: "w/o domain" / "w/o task" (both False:
      "w/o domain & task", `z = S`); the unused scalars are not created and the
      corresponding expert input is left out of the input list.
    - `combine="concat"`: "concat modules", `z_{t,d} = [S_{t,d}, Dmix_d, Tmix_t]`
      concatenated instead of the alpha-weighted sum (no alpha scalars). The ablation
      code is not published (only its class name survives, m3oe.md §4); this is our
      reading of the paper's description.

    Args:
        use_domain: bool, default `True`. Include the domain experts.
        use_task: bool, default `True`. Include the task experts.
        combine: `"sum"` (default) or `"concat"`.
        fusion: `"learned"` (default) or `"fixed"`.
        alpha_domain_init: float, default `1.0`. Raw (pre-sigmoid) init of `a_D`
            (the original's `--exp_d`).
        alpha_task_init: float, default `1.0`. Raw init of `a_T` (`--exp_t`).
        beta_domain_init: float, default `1.0`. Raw init of `b_D` (`--bal_d`).
        beta_task_init: float, default `1.0`. Raw init of `b_T` (`--bal_t`).
        **kwargs: base-layer arguments.

    Input shape:
        A list: `S` `(batch_size, n_tasks, n_domains, units)`, then, if `use_domain`,
        the domain experts `(batch_size, n_domains, units)`, then, if `use_task`, the
        task experts `(batch_size, n_tasks, units)`.

    Output shape:
        `(batch_size, n_tasks, n_domains, units)` for `"sum"`;
        `(batch_size, n_tasks, n_domains, k * units)` for `"concat"`, `k` the number
        of inputs.

    Example:

    ```python
    fusion = mlora_tf.layers.ExpertFusion()
    z = fusion([keras.random.normal((8, 2, 3, 64)), keras.random.normal((8, 3, 64)),
                keras.random.normal((8, 2, 64))])  # (8, 2, 3, 64)
    fusion.fusion_weights()  # {"alpha_domain": 0.731, ...}
    ```

    References:
        - Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
          Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        use_domain: bool = True,
        use_task: bool = True,
        combine: str = "sum",
        fusion: str = "learned",
        alpha_domain_init: float = 1.0,
        alpha_task_init: float = 1.0,
        beta_domain_init: float = 1.0,
        beta_task_init: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("use_domain", use_domain), ("use_task", use_task)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
        if combine not in COMBINE_MODES:
            raise ValueError(
                f"`combine` must be one of {list(COMBINE_MODES)}. Received: combine={combine!r}"
            )
        if fusion not in FUSION_MODES:
            raise ValueError(
                f"`fusion` must be one of {list(FUSION_MODES)}. Received: fusion={fusion!r}"
            )
        inits = {
            "alpha_domain": alpha_domain_init,
            "alpha_task": alpha_task_init,
            "beta_domain": beta_domain_init,
            "beta_task": beta_task_init,
        }
        for name, value in inits.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(
                    f"`{name}_init` must be a finite number. Received: {name}_init={value!r}"
                )
        self.use_domain = use_domain
        self.use_task = use_task
        self.combine = combine
        self.fusion = fusion
        self.alpha_domain_init = float(alpha_domain_init)
        self.alpha_task_init = float(alpha_task_init)
        self.beta_domain_init = float(beta_domain_init)
        self.beta_task_init = float(beta_task_init)
        self._raw: dict[str, Any] = {}

    @property
    def scalar_names(self) -> tuple[str, ...]:
        """The fusion scalars this configuration uses."""
        names = []
        if self.combine == "sum":
            names += ["alpha_domain"] * self.use_domain + ["alpha_task"] * self.use_task
        names += ["beta_domain"] * self.use_domain + ["beta_task"] * self.use_task
        return tuple(n for n in _SCALARS if n in names)

    def build(self, input_shape: Any) -> None:
        expected = 1 + self.use_domain + self.use_task
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != expected or not all(
            isinstance(s, (list, tuple)) for s in input_shape
        ):
            raise ValueError(
                f"`ExpertFusion` with use_domain={self.use_domain}, use_task={self.use_task} "
                f"expects a list of {expected} inputs. Received: input_shape={input_shape}"
            )
        shared = input_shape[0]
        if len(shared) != 4:
            raise ValueError(
                "`ExpertFusion` expects the gated shared experts as "
                f"`(batch_size, n_tasks, n_domains, units)`. Received: input_shape={input_shape}"
            )
        self.n_tasks, self.n_domains, units = int(shared[1]), int(shared[2]), shared[3]
        rest = list(input_shape[1:])
        if self.use_domain:
            domain_shape = rest.pop(0)
            if tuple(domain_shape[1:]) != (self.n_domains, units):
                raise ValueError(
                    f"Domain experts must be `(batch_size, {self.n_domains}, {units})`. "
                    f"Received: input_shape={input_shape}"
                )
        if self.use_task:
            task_shape = rest.pop(0)
            if tuple(task_shape[1:]) != (self.n_tasks, units):
                raise ValueError(
                    f"Task experts must be `(batch_size, {self.n_tasks}, {units})`. "
                    f"Received: input_shape={input_shape}"
                )
        learned = self.fusion == "learned"
        for name in self.scalar_names:
            init = getattr(self, f"{name}_init") if learned else 0.0
            self._raw[name] = self.add_weight(
                name=f"raw_{name}",
                shape=(1,),
                initializer=keras.initializers.Constant(init),
                trainable=learned,
            )
        self.built = True

    @property
    def fusion_variables(self) -> list[Any]:
        """The trainable raw fusion scalars (empty with `fusion="fixed"`)."""
        return [v for v in self._raw.values() if v.trainable]

    def weight_of(self, name: str) -> Any:
        """`sigmoid(raw)` of one scalar, shape `(1,)`."""
        if name not in self._raw:
            raise ValueError(
                f"This fusion has no scalar {name!r}; it has {list(self.scalar_names)}. "
                f"Received: name={name!r}"
            )
        return ops.sigmoid(self._raw[name])

    def fusion_weights(self) -> dict[str, float]:
        """The current sigmoid values of the scalars, as Python floats."""
        return {
            name: float(ops.convert_to_numpy(self.weight_of(name))[0]) for name in self.scalar_names
        }

    @staticmethod
    def _balanced(experts: Any, beta: Any, n: int) -> Any:
        """`beta E_i + (1 - beta)/(n - 1) sum_{j != i} E_j` along axis 1."""
        if n == 1:
            return beta * experts
        other = (1.0 - beta) / (n - 1)
        total = ops.sum(experts, axis=1, keepdims=True)
        return (beta - other) * experts + other * total

    def call(self, inputs: Any) -> Any:
        shared, rest = inputs[0], list(inputs[1:])
        dtype = shared.dtype
        parts = [shared]
        if self.use_domain:
            beta = ops.cast(self.weight_of("beta_domain"), dtype)
            mix = self._balanced(rest.pop(0), beta, self.n_domains)  # (B, D, u)
            mix = ops.expand_dims(mix, axis=1)  # (B, 1, D, u)
            if self.combine == "sum":
                mix = ops.cast(self.weight_of("alpha_domain"), dtype) * mix
            parts.append(mix)
        if self.use_task:
            beta = ops.cast(self.weight_of("beta_task"), dtype)
            mix = self._balanced(rest.pop(0), beta, self.n_tasks)  # (B, T, u)
            mix = ops.expand_dims(mix, axis=2)  # (B, T, 1, u)
            if self.combine == "sum":
                mix = ops.cast(self.weight_of("alpha_task"), dtype) * mix
            parts.append(mix)
        if self.combine == "sum":
            out = parts[0]
            for part in parts[1:]:
                out = out + part
            return out
        target = ops.shape(shared)
        return ops.concatenate([ops.broadcast_to(p, target) for p in parts], axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        shared = tuple(input_shape[0])
        if self.combine == "sum":
            return shared
        units = shared[-1] * len(input_shape) if shared[-1] is not None else None
        return shared[:-1] + (units,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "use_domain": self.use_domain,
                "use_task": self.use_task,
                "combine": self.combine,
                "fusion": self.fusion,
                "alpha_domain_init": self.alpha_domain_init,
                "alpha_task_init": self.alpha_task_init,
                "beta_domain_init": self.beta_domain_init,
                "beta_task_init": self.beta_task_init,
            }
        )
        return config
