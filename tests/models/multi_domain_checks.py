"""Checks shared by the tests of the single-task multi-domain backbones (EPNet, PPNet,
PEPNet, SAR-Net, AdaSparse, HAMUR, M2M, AdaptDHM): registration and the MoE refusal,
mixed-domain exactness, config and `.keras` round trips, one training step, and learning
on synthetic data with planted domain effects.

A model's test file subclasses `MultiDomainChecks` (collected there as `Test...`) for
these, and keeps its own wiring and numpy forward-pass tests."""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlora_tf.config import ModelConfig, TrainConfig
from mlora_tf.models import DataSpec, build_model, dense_stack_of, get_backbone, variable_groups
from mlora_tf.training import Trainer, schedule_phases

ADAPTERS = ("none", "mlora")
HIDDEN = (16, 8)
SPEC = DataSpec({"uid": 60, "pid": 50, "domain": 3}, 3)

_CACHE: dict = {}


def shared_model(name: str, adapter: str) -> keras.Model:
    """A model per (name, adapter) with random MLoRA adapters (B and the slot biases
    start at zero, which would hide them); tests that train build their own."""
    key = (name, adapter)
    if key not in _CACHE:
        keras.utils.set_random_seed(len(_CACHE))
        model = build_model(ModelConfig(name=name, adapter=adapter, hidden_units=HIDDEN), SPEC)
        rng = np.random.default_rng(len(_CACHE))
        stack_adapters = {id(v) for layer in dense_stack_of(model).adapter_layers for v in layer.weights}
        for v in variable_groups(model)["adapter"]:
            if id(v) in stack_adapters:
                v.assign(rng.normal(0, 0.3, size=v.shape).astype("float32"))
        _CACHE[key] = model
    return _CACHE[key]


def batch(n: int = 24, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    domain = np.repeat(np.arange(3), n // 3)
    rng.shuffle(domain)
    return {
        "uid": rng.integers(0, 60, n).astype("int64"),
        "pid": rng.integers(0, 50, n).astype("int64"),
        "domain": domain.astype("int64"),
    }


def predict(model, feed, key="probability"):
    return keras.ops.convert_to_numpy(model(feed, training=False)[key])


def numpy_value(v) -> np.ndarray:
    return keras.ops.convert_to_numpy(v).astype(np.float64)


def stack_layer_numpy(stack, layer, x, domain) -> np.ndarray:
    """One hidden layer of the dense stack in float64, before its activation:
    `x W + b`, plus in MLoRA mode each row's domain adapter `x A_d B_d + c_d`.

    x: (batch, in_units); domain: (batch,) ints. Returns (batch, units)."""
    pre = x @ numpy_value(layer.kernel) + numpy_value(layer.bias)
    if stack.mode == "mlora":
        r = layer.rank
        a, b, c = numpy_value(layer.adapter_kernel_a), numpy_value(layer.adapter_kernel_b), numpy_value(layer.adapter_bias)
        for row, d in enumerate(domain):
            pre[row] += x[row] @ a[:, d * r:(d + 1) * r] @ b[d * r:(d + 1) * r] + c[d]
    return pre


def check_registered(name: str) -> None:
    spec = get_backbone(name)
    assert spec.group == "multi-domain" and spec.adapters == ADAPTERS and spec.description
    assert (spec.base_profile, spec.adapted_profile) == ("mlora_class", "mlora_class")
    with pytest.raises(ValueError) as refused:  # a clear refusal that names the model and MoE
        build_model(ModelConfig(name=name, adapter="moe", hidden_units=HIDDEN), SPEC)
    assert f"'{name}'" in str(refused.value) and "moe" in str(refused.value).lower()


def check_mlora_adds_only_the_adapters(name: str) -> None:
    shapes = lambda m: sorted(tuple(v.shape) for v in variable_groups(m)["backbone"])  # noqa: E731
    assert shapes(shared_model(name, "none")) == shapes(shared_model(name, "mlora"))
    assert not variable_groups(shared_model(name, "none"))["adapter"]
    assert variable_groups(shared_model(name, "mlora"))["adapter"]


def check_mixed_batch(model) -> None:
    feed = batch(30, seed=1)
    mixed = predict(model, feed)
    for d in range(3):
        rows = feed["domain"] == d
        alone = predict(model, {k: v[rows] for k, v in feed.items()})
        np.testing.assert_allclose(mixed[rows], alone, rtol=1e-5, atol=1e-6)
        with dense_stack_of(model).single_domain_batches():  # the trainer's one-domain routing
            promised = predict(model, {k: v[rows] for k, v in feed.items()})
        np.testing.assert_allclose(mixed[rows], promised, rtol=1e-5, atol=1e-6)
    # The domain matters (else the check above would say nothing).
    shifted = predict(model, {**feed, "domain": (feed["domain"] + 1) % 3})
    assert np.abs(shifted - mixed).max() > 1e-4


def check_round_trips(model, layer_names, tmp_path) -> tuple:
    """Returns the `from_config` clone and the reloaded `.keras` model."""
    feed = batch(seed=2)
    # get_config -> from_config, same weights: the same model.
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    path = os.path.join(tmp_path, f"{model.name}.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    for other in (clone, reloaded):  # both give the same numbers, to the bit
        for key in ("logit", "probability"):
            np.testing.assert_array_equal(predict(other, feed, key), predict(model, feed, key))
        for layer_name in layer_names:
            assert other.get_layer(layer_name).get_config() == model.get_layer(layer_name).get_config()
        assert dense_stack_of(other).get_config() == dense_stack_of(model).get_config()
    return clone, reloaded


def check_training_step(name: str, adapter: str, prefixes) -> None:
    """One Adam step: every trainable variable gets a finite gradient, and the
    variables under each of `prefixes` (the distinctive layers' paths) move."""
    keras.utils.set_random_seed(5)
    model = build_model(ModelConfig(name=name, adapter=adapter, hidden_units=HIDDEN), SPEC)
    feed = batch(48, seed=3)
    label = tf.constant(np.random.default_rng(4).integers(0, 2, 48).astype("float32"))
    variables = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    with tf.GradientTape() as tape:
        logit = model(feed, training=True)["logit"]
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logit)) + tf.add_n(
            model.losses or [tf.constant(0.0)]
        )
    gradients = tape.gradient(loss, variables)
    for v, g in zip(variables, gradients):
        assert g is not None, v.path
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(g))), v.path
    keras.optimizers.Adam(learning_rate=1e-2).apply(gradients, variables)
    changed = {v.path for v, b in zip(variables, before) if not np.array_equal(keras.ops.convert_to_numpy(v), b)}
    for prefix in prefixes:
        assert any(p.startswith(prefix) for p in changed), prefix
    assert any(p.startswith("dense_stack/") for p in changed) and any("emb" in p for p in changed)
    if adapter == "mlora":  # B starts at zero, so B moves first
        assert any("adapter_kernel_b" in p for p in changed)


def check_beats_a_constant_predictor(name: str, adapter: str, synthetic, epochs: int = 3) -> dict:
    keras.utils.set_random_seed(0)
    model = build_model(
        ModelConfig(name=name, adapter=adapter, hidden_units=(32, 16), dropout=0.0), DataSpec.from_dataset(synthetic)
    )
    trainer = Trainer(model, synthetic, TrainConfig(batch_size=256, max_epochs=epochs, patience=3, learning_rate=1e-3))
    trainer.fit(schedule_phases("joint", adapter))
    test = trainer.evaluate("test")
    # The constant predictor: the training click rate for every row (AUC 0.5).
    rate = float(np.mean(synthetic.splits["train"]["label"]))
    label = synthetic.splits["test"]["label"]
    constant = -float(np.mean(label * np.log(rate) + (1 - label) * np.log(1 - rate)))
    assert test["logloss"] < constant - 0.02, (test["logloss"], constant)
    assert test["wauc"] > 0.65 and min(test["domain_auc"].values()) > 0.57, test
    return test


class MultiDomainChecks:
    """The shared tests of one model, as a base class; a test file subclasses it as
    `Test<Model>` and sets `NAME`, `LAYERS` (the distinctive layers whose configs must
    survive the round trips) and `STEP_PREFIXES` (variable paths one training step must
    move), and may override `model` (the shared model, with extra random weights) and
    `check_reloaded` (more checks on the clone and the reloaded model)."""

    NAME: str = ""
    LAYERS: tuple = ()
    STEP_PREFIXES: tuple = ()

    def model(self, adapter: str) -> keras.Model:
        return shared_model(self.NAME, adapter)

    def check_reloaded(self, model, other) -> None:
        """Extra checks on a `from_config` clone or a reloaded `.keras` model."""

    def test_registered_as_a_multi_domain_model_without_moe(self):
        check_registered(self.NAME)

    def test_mlora_adds_only_the_adapters(self):
        check_mlora_adds_only_the_adapters(self.NAME)

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_mixed_batch_matches_single_domain_batches(self, adapter):
        check_mixed_batch(self.model(adapter))

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_config_and_keras_file_round_trips(self, adapter, tmp_path):
        model = self.model(adapter)
        for other in check_round_trips(model, self.LAYERS, tmp_path):
            self.check_reloaded(model, other)

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_one_training_step_moves_the_weights(self, adapter):
        check_training_step(self.NAME, adapter, self.STEP_PREFIXES)

    @pytest.mark.parametrize("adapter", ADAPTERS)
    def test_beats_a_constant_predictor_on_synthetic_data(self, adapter, planted_synthetic):
        check_beats_a_constant_predictor(self.NAME, adapter, planted_synthetic)
