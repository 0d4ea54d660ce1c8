"""M3oE's bottom: domain representation `f_DR`, `W_c` and the domain-agnostic `f_DA`."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.m3oe import _utils
from mlora_tf.layers.m3oe.ln_dense import LNDense


@mlora_export("mlora_tf.layers.DomainRepresentation")
class DomainRepresentation(keras.layers.Layer):
    """M3oE's domain representation extraction: the input `h` of every expert.

    For a row `x` of domain `d` (m3oe.md §2.2, equations 1-2 as coded):

    $$
    r = x\\,(W_d \\odot W_{sh}) + b_d + b_{sh}, \\qquad
    h = \\mathrm{ReLU}(\\mathrm{LN}_1(r W_c + b_c)) + \\mathrm{ReLU}(\\mathrm{LN}_2(x W_a + b_a))
    $$

    - `r` (`f_DR`, the original's "star" projection, width `star_units`) has **no
      activation**. `W_sh` and the per-domain `W_d` are `(input_dim, star_units)`,
      each drawn Xavier-uniform on its own, `U(+-sqrt(6 / (input_dim + star_units)))`;
      `b_sh` and `b_d` start at zero.
    - `W_c` (the original's `star_mlp`) and the domain-agnostic branch `f_DA`
      (`skip_conn`, on `x`) are each one `LNDense` block (Linear, LayerNorm, ReLU)
      of width `units`.

    The paper differs (m3oe.md §2.3 item 1): its Eq. 2 has a plain linear `W_c` and a
    multi-layer `f_DA`. This layer follows the released code.

    Every domain's projection is computed and each row keeps its own domain's
    (one-hot of its id), so a batch may mix domains. A domain id outside
    `[0, n_domains)` gets no domain-specific part (`r = 0`).

    Args:
        n_domains: int, number of domains `D`.
        star_units: int, default `512`. Width of `r`.
        units: int, default `256`. Width of `h`.
        epsilon: float, default `1e-5` (torch). LayerNorm epsilon.
        star_kernel_initializer: initializer or None (default): None is the
            per-matrix Xavier-uniform above. A given initializer is applied to
            `W_sh` and to the stacked `(n_domains, input_dim, star_units)` `W_d`
            (mind that Keras's Glorot multiplies the fans of a 3-D shape by
            `n_domains`).
        star_bias_initializer: initializer, default `"zeros"`.
        kernel_initializer: initializer or None (default) for `W_c` and `W_a`:
            None is torch's `U(+-1/sqrt(fan_in))`.
        bias_initializer: initializer or None (default), as `kernel_initializer`.
        **kwargs: base-layer arguments.

    Input shape:
        `[(batch_size, input_dim), (batch_size,)]`: features and integer domain ids
        (`(batch_size, 1)` ids are accepted too).

    Output shape:
        `(batch_size, units)`.

    Example:

    ```python
    layer = mlora_tf.layers.DomainRepresentation(n_domains=3)
    h = layer([keras.random.normal((8, 113)), keras.ops.array([0, 1, 2, 0, 1, 2, 0, 1])])
    # (8, 256)
    ```

    References:
        - Zhang et al., "M3oE: Multi-Domain Multi-Task Mixture-of-Experts
          Recommendation Framework", SIGIR 2024.
    """

    def __init__(
        self,
        n_domains: int,
        star_units: int = 512,
        units: int = 256,
        epsilon: float = _utils.TORCH_LAYER_NORM_EPSILON,
        star_kernel_initializer: str | keras.initializers.Initializer | None = None,
        star_bias_initializer: str | keras.initializers.Initializer = "zeros",
        kernel_initializer: str | keras.initializers.Initializer | None = None,
        bias_initializer: str | keras.initializers.Initializer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_domains = _utils.check_positive_int("n_domains", n_domains)
        self.star_units = _utils.check_positive_int("star_units", star_units)
        self.units = _utils.check_positive_int("units", units)
        self.epsilon = _utils.check_epsilon(epsilon)
        self.star_kernel_initializer = _utils.get_initializer(star_kernel_initializer)
        self.star_bias_initializer = keras.initializers.get(star_bias_initializer)
        self.kernel_initializer = _utils.get_initializer(kernel_initializer)
        self.bias_initializer = _utils.get_initializer(bias_initializer)

    def build(self, input_shape: Any) -> None:
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not isinstance(input_shape[0], (list, tuple))
            or len(input_shape[0]) != 2
            or input_shape[0][-1] is None
        ):
            raise ValueError(
                "`DomainRepresentation` expects `[x, domain]` of shapes `(batch_size, input_dim)` "
                f"and `(batch_size,)`. Received: input_shape={input_shape}"
            )
        input_dim = int(input_shape[0][-1])

        def star(seed_offset: int) -> keras.initializers.Initializer:
            return _utils.resolve_initializer(
                self.star_kernel_initializer,
                _utils.xavier_uniform(input_dim, self.star_units),
                seed_offset,
            )

        self.shared_kernel = self.add_weight(
            name="shared_kernel", shape=(input_dim, self.star_units), initializer=star(0)
        )
        # The per-matrix Xavier limit is a plain uniform range, so drawing the whole
        # `(D, input_dim, star_units)` stack from it is D independent Xavier draws.
        self.domain_kernel = self.add_weight(
            name="domain_kernel",
            shape=(self.n_domains, input_dim, self.star_units),
            initializer=star(1),
        )
        self.shared_bias = self.add_weight(
            name="shared_bias",
            shape=(self.star_units,),
            initializer=_utils.clone_initializer(self.star_bias_initializer),
        )
        self.domain_bias = self.add_weight(
            name="domain_bias",
            shape=(self.n_domains, self.star_units),
            initializer=_utils.clone_initializer(self.star_bias_initializer, 1),
        )
        self.star_mlp = LNDense(
            self.units,
            epsilon=self.epsilon,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="star_mlp",
        )
        self.star_mlp.build((None, self.star_units))
        self.skip_conn = LNDense(
            self.units,
            epsilon=self.epsilon,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="skip_conn",
        )
        self.skip_conn.build((None, input_dim))
        self.built = True

    def domain_projection(self, x: Any, domain: Any) -> Any:
        """`r = x (W_d * W_sh) + b_d + b_sh` per row: `(batch_size, star_units)`.

        The rows are partitioned by domain and each part is multiplied by its own
        domain's kernel only (one `(rows, input_dim) x (input_dim, star_units)` product
        per domain, not one per domain for every row), then put back in order. A row
        whose id is outside `[0, n_domains)` gets `b_sh` alone.
        """

        def project(d, rows):
            return ops.matmul(rows, self.shared_kernel * self.domain_kernel[d]) + self.domain_bias[d]

        r = _utils.per_domain(domain, self.n_domains, [x], project, (self.star_units,), x.dtype)
        return r + self.shared_bias

    def call(self, inputs: Any) -> Any:
        x, domain = inputs
        r = self.domain_projection(x, domain)
        return self.star_mlp(r) + self.skip_conn(x)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0][0], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "n_domains": self.n_domains,
                "star_units": self.star_units,
                "units": self.units,
                "epsilon": self.epsilon,
                "star_kernel_initializer": _utils.serialize_initializer(self.star_kernel_initializer),
                "star_bias_initializer": keras.initializers.serialize(self.star_bias_initializer),
                "kernel_initializer": _utils.serialize_initializer(self.kernel_initializer),
                "bias_initializer": _utils.serialize_initializer(self.bias_initializer),
            }
        )
        return config

