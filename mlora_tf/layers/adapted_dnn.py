"""`AdaptedDNN`: the hidden dense stack every backbone calls, plain or adapted."""

from __future__ import annotations

import contextlib
import dataclasses

import keras
from keras import ops

from mlora_tf.api import mlora_export
from mlora_tf.layers.dropout import make_dropout
from mlora_tf.layers.interactions.star_fcn import StarFCN
from mlora_tf.layers.lora_dense import LoRADense, LowRankAdapter, MoELoRADense, SlotGlorot, adapter_rank
from mlora_tf.layers.mixture import DomainSelector, GatingHead

MODES = ("plain", "mlora", "moe")
TOPOLOGIES = ("dense", "star")
# Where the mixture weight `w` comes from (DESIGN.md, "One formulation for every adapter").
MIXTURE_SOURCES = ("domain", "gate", "zeros", "expert")
_DEFAULT_SOURCE = {"plain": "zeros", "mlora": "domain", "moe": "gate"}


@dataclasses.dataclass(frozen=True)
class Routing:
    """How the dense stack routes a step's rows to its adapter slots: a value the
    trainer hands its step (built from the phase, `Phase.routing`) and the stack reads
    inside `AdaptedDNN.routed(routing)`, so a phase is data and not layer state.

    Attributes:
        mixture: where the mixture weight comes from (`MIXTURE_SOURCES`: `"domain"`,
            `"gate"`, `"zeros"`, `"expert"`); None: the stack's own (`set_mixture`,
            by default its mode's: plain `zeros`, mlora `domain`, moe `gate`).
        expert_index: the expert of `mixture="expert"`.
        one_domain_batches: every batch holds one domain, so the stack routes a
            batch by its first row (`AdaptedDNN.single_domain_batches`).
        shared_slots: the calls are the row groups of one batch under unchanged
            weights: they share the slot and its sliced adapter parameters
            (`AdaptedDNN.shared_slot_parameters`).
    """

    mixture: str | None = None
    expert_index: int | None = None
    one_domain_batches: bool = False
    shared_slots: bool = False


@mlora_export("mlora_tf.layers.AdaptedDNN")
class AdaptedDNN(keras.layers.Layer):
    """The dense stack (`hidden_units`, ReLU) of a CTR backbone, plain or adapted.

    Modes:
      * `"plain"`: the DeepCTR DNN, `h = Dropout(ReLU(h W + b))` (dropout after the
        activation).
      * `"mlora"`: one `LoRADense` per layer with one slot per domain, mixed by a
        `DomainSelector`: `h = ReLU(Dropout(h W + b) + delta_domain(h))` (dropout on
        the shared pre-activation only, as the original `Mlora`).
      * `"moe"`: one `MoELoRADense` per layer with `experts_per_domain * n_domains`
        expert slots, mixed by a `GatingHead`.

    Topology `"star"` makes each layer's shared path a STAR `StarFCN` (shared kernel
    times the row's domain kernel, shared plus domain bias) instead of a dense kernel;
    the adapters, dropout placement and modes are the same.

    `mixture_source` says where the mixture weight comes from at call time: `"domain"`
    (one-hot of the row's domain), `"gate"` (the gating head), `"zeros"` (backbone
    only: the adapters are skipped) or `"expert"` (one-hot of `expert_index`). Phased
    training hands each step a `Routing` (the phase's mixture, and whether batches hold
    one domain) and traces it inside `routed(routing)`; `set_mixture` changes the
    stack's own default. A compiled step keeps the routing it was traced with.

    Per-layer output scales (`call(..., layer_scales=...)`): an optional list with one
    entry per hidden layer, each None or a tensor `(batch_size, hidden_units[i])` that
    multiplies layer `i`'s output (after its activation and dropout) element-wise
    before the next layer sees it. The stack does not know where the scales come
    from (PPNet's gates compute them from prior features), and the adapters of the
    adapted modes stay inside the layers; without `layer_scales` nothing changes.

    Per-layer output transforms (`layer_transforms`, set at construction or once by
    `set_layer_transforms` before the first call): an optional list with one entry per
    hidden layer, each None or a Keras layer called as `t([h, *transform_inputs])` on
    layer `i`'s output `h` (after its scale, if any), returning the same shape; the
    extra tensors come from `call(..., transform_inputs=[...])`. The stack does not know
    what the transforms compute (HAMUR's hyper-network adapters are one use); without
    them nothing changes and no op is added.

    Input shape:
        `[x, domain]`: `x` of shape `(batch_size, input_dim)` and integer `domain` of
        shape `(batch_size,)`. In `"plain"` mode `domain` is accepted and ignored, so
        a backbone calls every mode the same way.
    Output shape:
        `(batch_size, hidden_units[-1])`.

    Args:
        hidden_units: tuple of ints, default `(256, 128, 64)`.
        mode: str, `"plain"`, `"mlora"` or `"moe"`.
        n_domains: int, required for the adapted modes.
        lora_reduce: float, the paper's temperature alpha (rank = units // alpha).
        lora_rank: optional int, explicit rank (overrides `lora_reduce`).
        experts_per_domain: int, default 1, experts per domain in `"moe"` mode.
        activation: str, default `"relu"`.
        dropout: float, default 0.
        kernel_initializer: initializer of the shared kernels (default glorot-normal,
            as DeepCTR's DNN).
        adapter_a_initializer: optional initializer of the fused adapter `A`.
        gate_embedding_dim: int, default 4, size of the gate's domain embedding.
        topology: str, `"dense"` (default) or `"star"` (STAR's star-topology layers;
            needs `n_domains`).
        seed: optional int seed of the dropout layers (layer i: `seed + i`).
        dropout_impl: str, `"fast"` (`FastDropout`, default) or `"keras"` (Keras'
            `Dropout`, the original's random stream).
        layer_transforms: optional list of one Keras layer (or None) per hidden layer,
            applied to that layer's output (see above).
    """

    def __init__(
        self,
        hidden_units=(256, 128, 64),
        mode: str = "plain",
        n_domains: int | None = None,
        lora_reduce: float | None = None,
        lora_rank: int | None = None,
        experts_per_domain: int = 1,
        activation="relu",
        dropout: float = 0.0,
        kernel_initializer="glorot_normal",
        adapter_a_initializer=None,
        gate_embedding_dim: int = 4,
        topology: str = "dense",
        seed: int | None = None,
        dropout_impl: str = "fast",
        layer_transforms=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        if topology not in TOPOLOGIES:
            raise ValueError(f"`topology` must be one of {TOPOLOGIES}. Received: topology={topology!r}")
        if topology == "star" and (not isinstance(n_domains, int) or n_domains < 1):
            raise ValueError(f"topology 'star' needs `n_domains`. Received: n_domains={n_domains}")
        hidden_units = tuple(int(u) for u in hidden_units)
        if not hidden_units or min(hidden_units) < 1:
            raise ValueError(f"`hidden_units` must be positive integers. Received: hidden_units={hidden_units}")
        if mode != "plain" and topology == "dense" and (not isinstance(n_domains, int) or n_domains < 1):
            raise ValueError(f"`n_domains` is required in mode {mode!r}. Received: n_domains={n_domains}")
        if not isinstance(experts_per_domain, int) or experts_per_domain < 1:
            raise ValueError(
                f"`experts_per_domain` must be a positive integer. Received: experts_per_domain={experts_per_domain}"
            )
        self.hidden_units = hidden_units
        self.mode = mode
        self.n_domains = n_domains
        self.lora_reduce = lora_reduce
        self.lora_rank = lora_rank
        self.experts_per_domain = experts_per_domain
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.adapter_a_initializer = (
            keras.initializers.get(adapter_a_initializer) if adapter_a_initializer is not None else None
        )
        self.gate_embedding_dim = gate_embedding_dim
        self.topology = topology
        self.seed = seed
        self.dropout_impl = dropout_impl
        self.mixture_source = _DEFAULT_SOURCE[mode]
        self.expert_index = None
        # Domain-homogeneous batches (the original's default) take one slot's
        # arithmetic; see `call`. Off: always the general mixture (for tests).
        self.single_slot_fast_path = True
        # Set inside `routed(...)` (`single_domain_batches()`): every batch is known
        # to hold one domain.
        self._single_domain = False
        # Set inside `routed(...)` (`shared_slot_parameters()`): the slot and sliced
        # adapter parameters every call in the context reuses.
        self._slot_cache = None

        self.dense_layers = []  # dense topology: Dense (plain) or LoRADense (adapted)
        self.star_layers = []  # star topology: StarFCN shared paths ...
        self.adapters = []  # ... and their LowRankAdapters (adapted modes)
        self.dropout_layers = []
        self.mixture_layer = None
        for i, units in enumerate(hidden_units):
            name = f"{mode}_dense_{i}"
            seed_i = None if seed is None else seed + i
            if topology == "star":
                self.star_layers.append(
                    StarFCN(units, activation=None, kernel_initializer=_copy(self.kernel_initializer), name=f"star_fcn_{i}")
                )
                if mode != "plain":
                    rank = adapter_rank(units, lora_reduce, lora_rank)
                    self.adapters.append(
                        LowRankAdapter(units, self.num_slots, rank, a_initializer=self._adapter_init(), name=f"adapter_{i}")
                    )
                if self.dropout:
                    self.dropout_layers.append(make_dropout(self.dropout, seed_i, dropout_impl, name=f"dropout_{i}"))
            elif mode == "plain":
                self.dense_layers.append(
                    keras.layers.Dense(units, activation=self.activation, kernel_initializer=_copy(self.kernel_initializer), name=name)
                )
                if self.dropout:
                    self.dropout_layers.append(make_dropout(self.dropout, seed_i, dropout_impl, name=f"dropout_{i}"))
            else:
                kwargs_i = dict(
                    lora_reduce=lora_reduce,
                    lora_rank=lora_rank,
                    activation=self.activation,
                    dropout=self.dropout,
                    kernel_initializer=_copy(self.kernel_initializer),
                    adapter_a_initializer=self._adapter_init(),
                    seed=seed_i,
                    dropout_impl=dropout_impl,
                    name=name,
                )
                if mode == "mlora":
                    self.dense_layers.append(LoRADense(units, n_slots=n_domains, **kwargs_i))
                else:
                    self.dense_layers.append(MoELoRADense(units, num_experts=self.num_slots, **kwargs_i))
        if mode == "moe":
            self.mixture_layer = GatingHead(n_domains, self.num_slots, embedding_dim=gate_embedding_dim, name="gating_head")
        elif mode == "mlora" or topology == "star":
            self.mixture_layer = DomainSelector(n_domains, name="domain_selector")
        self.layer_transforms = None
        if layer_transforms is not None:
            self.set_layer_transforms(layer_transforms)

    def set_layer_transforms(self, transforms) -> None:
        """Attach one output transform (a Keras layer, or None) per hidden layer.

        Raises:
            ValueError: transforms already attached, the stack already built, a wrong
                number of entries, or an entry that is not a Keras layer.
        """
        if self.layer_transforms is not None or self.built:
            raise ValueError("`layer_transforms` can be set once, before the stack is built.")
        transforms = [
            keras.saving.deserialize_keras_object(t) if isinstance(t, dict) else t for t in transforms
        ]
        if len(transforms) != len(self.hidden_units):
            raise ValueError(
                f"`layer_transforms` needs one entry per hidden layer ({len(self.hidden_units)}). "
                f"Received: {len(transforms)} entries"
            )
        bad = [t for t in transforms if t is not None and not isinstance(t, keras.layers.Layer)]
        if bad:
            raise ValueError(f"`layer_transforms` entries must be Keras layers or None. Received: {bad!r}")
        self.layer_transforms = transforms

    def _adapter_init(self):
        if self.adapter_a_initializer is not None:
            return _copy(self.adapter_a_initializer)
        if self.mode == "moe":
            return SlotGlorot(self.num_slots, fans="per_slot", distribution="uniform")
        return SlotGlorot(self.num_slots)

    @property
    def num_slots(self) -> int:
        """Adapter slots per layer: domains (MLoRA) or experts (MoE), 0 when plain."""
        if self.mode == "plain":
            return 0
        return self.n_domains * (self.experts_per_domain if self.mode == "moe" else 1)

    @property
    def ranks(self) -> tuple:
        if self.topology == "star":
            return tuple(a.rank for a in self.adapters) or (0,) * len(self.hidden_units)
        return tuple(getattr(layer, "rank", 0) for layer in self.dense_layers)

    def set_mixture(self, source: str, expert_index: int | None = None) -> None:
        """Choose where the mixture weight comes from (see the class docstring).

        Raises:
            ValueError: for an unknown source, a source the mode lacks, or a bad expert.
        """
        if source not in MIXTURE_SOURCES:
            raise ValueError(f"`source` must be one of {MIXTURE_SOURCES}. Received: source={source!r}")
        if self.mode == "plain" and source != "zeros":
            raise ValueError(f"A plain AdaptedDNN has no adapters. Received: source={source!r}")
        if source == "gate" and self.mode != "moe":
            raise ValueError("source='gate' needs mode='moe'.")
        if source == "expert":
            if expert_index is None or not 0 <= expert_index < self.num_slots:
                raise ValueError(
                    f"`expert_index` must be in [0, {self.num_slots}). Received: expert_index={expert_index}"
                )
        self.mixture_source = source
        self.expert_index = expert_index if source == "expert" else None

    @contextlib.contextmanager
    def routed(self, routing: Routing):
        """Route the calls made in this context, and the graphs traced in it (a
        `tf.function` keeps what it traced), as `routing` says; on leaving, the stack
        routes as before. Contexts nest: an inner one-domain promise or slot cache
        adds to an outer one, an inner mixture replaces the outer one's.

        Raises:
            ValueError: for a mixture the stack cannot take (as `set_mixture`).
        """
        saved = (self.mixture_source, self.expert_index, self._single_domain, self._slot_cache)
        try:
            if routing.mixture is not None:
                self.set_mixture(routing.mixture, routing.expert_index)
            self._single_domain = saved[2] or bool(routing.one_domain_batches)
            if routing.shared_slots and saved[3] is None:
                self._slot_cache = {}
            yield self
        finally:
            self.mixture_source, self.expert_index, self._single_domain, self._slot_cache = saved

    def single_domain_batches(self, enabled: bool = True):
        """Promise that every batch the stack sees in this context holds one domain
        (`routed(Routing(one_domain_batches=enabled))`).

        Calls made in the context, and the graphs traced in it, then route a whole
        batch by its first row's domain: the one slot's arithmetic, without the
        per-batch test that `call` makes otherwise. The caller guarantees the promise
        (the trainer's passes are domain-homogeneous by construction); a mixed batch
        would be routed wrongly. `enabled=False` is a no-op context.
        """
        return self.routed(Routing(one_domain_batches=enabled))

    def shared_slot_parameters(self):
        """Reuse one domain slot, and its sliced adapter parameters, across the calls
        made in this context under `single_domain_batches()`
        (`routed(Routing(shared_slots=True))`).

        For several calls that together make one batch (the trainer's row groups of a
        step): every row of every call holds the same domain, and the weights do not
        change inside the context. The first call picks the slot and slices each
        layer's adapter; the others use the same tensors, so their gradients meet at
        the slices (one padding into each adapter variable, not one per call).
        """
        return self.routed(Routing(shared_slots=True))

    def build(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        width = int(x_shape[-1])
        for i, units in enumerate(self.hidden_units):
            if self.topology == "star":
                self.star_layers[i].build([(None, width), (None, self.n_domains)])
                if self.adapters:
                    self.adapters[i].build((None, width))
            elif self.mode == "plain":
                self.dense_layers[i].build((None, width))
            else:
                self.dense_layers[i].build([(None, width), (None, self.num_slots)])
            width = units
        if self.mixture_layer is not None:
            self.mixture_layer.build((None,))

    def mixture(self, domain):
        """The mixture weight `(batch_size, num_slots)` of the current source, or None
        for `"zeros"` (what `call` applies; the `"expert"` source is a one-hot)."""
        source = self.mixture_source
        if source == "zeros":
            return None
        if source == "expert":
            n = ops.shape(ops.reshape(domain, (-1,)))[0]
            one_hot = ops.one_hot(ops.full((1,), self.expert_index, dtype="int32"), self.num_slots)
            return ops.broadcast_to(one_hot, (n, self.num_slots))
        return self.mixture_layer(domain)

    def call(self, inputs, training=None, layer_scales=None, transform_inputs=None):
        """Args: inputs `[x, domain]` (or `x` in plain dense mode); `layer_scales`:
        optional list, one None or `(batch_size, hidden_units[i])` tensor per layer,
        multiplying that layer's output; `transform_inputs`: optional list of tensors
        every layer transform also receives (see the class docstring)."""
        extras = list(transform_inputs or [])
        if isinstance(inputs, (list, tuple)):
            x, domain = inputs
        else:
            x, domain = inputs, None
        if domain is None and (self.mode != "plain" or self.topology == "star"):
            raise ValueError(f"AdaptedDNN (mode {self.mode!r}, topology {self.topology!r}) needs inputs [x, domain].")
        scales = None
        if layer_scales is not None:
            scales = list(layer_scales)
            if len(scales) != len(self.hidden_units):
                raise ValueError(
                    f"`layer_scales` needs one entry per hidden layer ({len(self.hidden_units)}). "
                    f"Received: {len(scales)} entries"
                )
        source = self.mixture_source
        uses_domain = self.topology == "star" or source == "domain"
        if uses_domain and self._single_domain:
            # Promised one domain per batch (`single_domain_batches`): the first row's
            # (0 for an empty batch, which has no row to route).
            cache = self._slot_cache
            if cache is not None and "slot" in cache:
                return self._run(
                    x, domain, training, domain_slot=cache["slot"], slot_cache=cache, scales=scales, extras=extras
                )
            ids = ops.reshape(ops.cast(domain, "int32"), (-1,))
            slot = ops.sum(ids[:1])
            if cache is not None:
                cache["slot"] = slot
            return self._run(
                x, domain, training, domain_slot=slot, slot_cache=cache, scales=scales, extras=extras
            )
        if uses_domain and self.single_slot_fast_path:
            # A batch whose rows share one domain uses that domain's parameters alone
            # (one slot's arithmetic instead of all); any other batch takes the
            # general per-row path. Both are exact: a mixed batch is never routed by
            # one of its rows.
            ids = ops.reshape(ops.cast(domain, "int32"), (-1,))
            uniform = ops.logical_and(ops.size(ids) > 0, ops.all(ops.equal(ids, ids[:1])))
            return ops.cond(
                uniform,
                lambda: self._run(x, domain, training, domain_slot=ids[0], scales=scales, extras=extras),
                lambda: self._run(x, domain, training, scales=scales, extras=extras),
            )
        return self._run(x, domain, training, scales=scales, extras=extras)

    def _run(self, x, domain, training, domain_slot=None, slot_cache=None, scales=None, extras=()):
        """The stack, with per-row weights, or with every row of domain `domain_slot`
        (`slot_cache`: the `shared_slot_parameters` cache, if any; `scales`: the
        per-layer output scales, if any; `extras`: the layer transforms' further inputs)."""

        def scaled(i, h):
            if scales is not None and scales[i] is not None:
                h = h * ops.cast(scales[i], h.dtype)
            if self.layer_transforms is not None and self.layer_transforms[i] is not None:
                h = self.layer_transforms[i]([h, *extras], training=training)
            return h

        def slot_params(i, adapter):
            if slot_cache is None or domain_slot is None or self.mixture_source != "domain":
                return None
            if i not in slot_cache:
                slot_cache[i] = adapter.slot_parameters(domain_slot)
            return slot_cache[i]

        source = self.mixture_source
        mixture, slot = None, None
        if source == "expert":
            slot = self.expert_index
        elif source == "domain":
            slot = domain_slot
            mixture = self.mixture_layer(domain) if domain_slot is None else None
        elif source == "gate":
            mixture = self.mixture_layer(domain)
        if self.topology == "dense":
            for i, layer in enumerate(self.dense_layers):
                if self.mode == "plain":
                    x = layer(x)
                    if self.dropout_layers:
                        x = self.dropout_layers[i](x, training=training)
                else:
                    x = layer(
                        [x, mixture] if mixture is not None else x, training=training, slot=slot,
                        slot_params=slot_params(i, layer.adapter) if slot is not None else None,
                    )
                x = scaled(i, x)
            return x
        domain_one_hot = None if domain_slot is not None else (
            mixture if source == "domain" else DomainSelector.one_hot(domain, self.n_domains)
        )
        for i, star in enumerate(self.star_layers):
            pre = star([x, domain_one_hot], slot=domain_slot)
            if self.mode == "plain":
                x = self.activation(pre)
                if self.dropout_layers:
                    x = self.dropout_layers[i](x, training=training)
                x = scaled(i, x)
                continue
            if self.dropout_layers:
                pre = self.dropout_layers[i](pre, training=training)
            if slot is not None or mixture is not None:
                params = slot_params(i, self.adapters[i]) if slot is not None else None
                pre = pre + self.adapters[i](x, mixture=mixture, slot=slot, slot_params=params)
            x = scaled(i, self.activation(pre))
        return x

    @property
    def adapter_layers(self) -> list:
        """The `LowRankAdapter` of every layer (empty in plain mode)."""
        if self.topology == "star":
            return list(self.adapters)
        return [layer.adapter for layer in self.dense_layers if isinstance(layer, LoRADense)]

    def variable_groups(self) -> dict:
        """Variables by training group: `backbone`, `adapter`, `gate`."""
        groups = {"backbone": [], "adapter": [], "gate": []}
        for layer in self.star_layers:
            groups["backbone"].extend(layer.weights)
        for layer in self.adapters:
            groups["adapter"].extend(layer.weights)
        for layer in self.dense_layers:
            if isinstance(layer, LoRADense):
                groups["backbone"].extend(layer.backbone_weights)
                groups["adapter"].extend(layer.adapter_weights)
            else:
                groups["backbone"].extend(layer.weights)
        if isinstance(self.mixture_layer, GatingHead):
            groups["gate"].extend(self.mixture_layer.weights)
        return groups

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return tuple(x_shape[:-1]) + (self.hidden_units[-1],)

    def compute_output_spec(self, *args, **kwargs):
        # A symbolic call does not run `call`: build the layer transforms here, so
        # their variables exist when the model is built (and when a file is loaded).
        if self.layer_transforms is not None:
            extras = [tuple(t.shape) for t in (kwargs.get("transform_inputs") or [])]
            for units, transform in zip(self.hidden_units, self.layer_transforms):
                if transform is not None and not transform.built:
                    transform.build([(None, units), *extras])
        return super().compute_output_spec(*args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "mode": self.mode,
                "n_domains": self.n_domains,
                "lora_reduce": self.lora_reduce,
                "lora_rank": self.lora_rank,
                "experts_per_domain": self.experts_per_domain,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "adapter_a_initializer": (
                    keras.initializers.serialize(self.adapter_a_initializer)
                    if self.adapter_a_initializer is not None
                    else None
                ),
                "gate_embedding_dim": self.gate_embedding_dim,
                "topology": self.topology,
                "seed": self.seed,
                "dropout_impl": self.dropout_impl,
            }
        )
        if self.layer_transforms is not None:
            # Each transform's own config; the stack builds it (`compute_output_spec`).
            config["layer_transforms"] = [
                None if t is None else {
                    k: v for k, v in keras.saving.serialize_keras_object(t).items() if k != "build_config"
                }
                for t in self.layer_transforms
            ]
        return config


def _copy(initializer):
    """An independent copy of a (possibly seeded) initializer."""
    return keras.initializers.get(keras.initializers.serialize(initializer))
