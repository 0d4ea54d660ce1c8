"""`--loop=original`: the factors, their resolution, and what each does."""

import contextlib
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny_dataset
from mlora_tf.config import ModelConfig, RunConfig, TrainConfig
from mlora_tf.models import DataSpec, build_model, dense_stack_of
from mlora_tf.training import Trainer, schedule_phases
from mlora_tf.training.loops import FACTORS, get_factor, loop_differences, resolve_loop
from mlora_tf.training.trainer import clipped_binary_crossentropy, logit_binary_crossentropy, shuffle_buffer_order


# ------------------------------------------------------------------ resolution
def test_original_loop_sets_every_factor_to_the_original_value():
    config = resolve_loop(RunConfig(train=TrainConfig(loop="original")))
    for factor in FACTORS:
        assert getattr(getattr(config, factor.section), factor.name) == factor.original
    assert loop_differences(config) == {}


def test_fast_loop_leaves_row_groups_automatic_and_streams_as_the_original():
    config = resolve_loop(RunConfig())
    assert config.train.row_groups is None
    assert config.train.shuffle == "buffer"  # the ablation's finding: the original's stream
    assert set(loop_differences(config)) == {f.name for f in FACTORS} - {"shuffle"}


def test_explicit_factor_wins_over_the_loop_and_input_is_not_mutated():
    given = RunConfig(model=ModelConfig(dropout_impl="fast"), train=TrainConfig(loop="original", shuffle="permutation"))
    assert get_factor("shuffle").ours == "permutation"
    config = resolve_loop(given)
    assert config.train.shuffle == "permutation" and config.model.dropout_impl == "fast"
    assert config.train.loss == "clipped"
    assert set(loop_differences(config)) == {"shuffle", "dropout_impl"}
    assert given.train.loss is None  # a new object, not the caller's edited


@pytest.mark.parametrize(
    "train, model, message",
    [
        ({"loop": "tf1"}, {}, "loop"),
        ({"shuffle": "random"}, {}, "shuffle"),
        ({"row_groups": 0}, {}, "row_groups"),
        ({}, {"init_seeds": "same"}, "init_seeds"),
    ],
)
def test_bad_loop_values_are_refused(train, model, message):
    with pytest.raises(ValueError, match=message):
        resolve_loop(RunConfig(model=ModelConfig(**model), train=TrainConfig(**train)))


# ------------------------------------------------------------------- shuffling
def test_shuffle_buffer_order_is_a_local_permutation():
    order = shuffle_buffer_order(5000, 100, seed=3)
    np.testing.assert_array_equal(np.sort(order), np.arange(5000))
    assert not np.array_equal(order, np.arange(5000))
    # A buffer of 100 can emit row i only after reading it: position >= i - 99.
    positions = np.empty(5000, np.int64)
    positions[order] = np.arange(5000)
    assert np.all(positions >= np.arange(5000) - 99)
    np.testing.assert_array_equal(order, shuffle_buffer_order(5000, 100, seed=3))
    np.testing.assert_array_equal(shuffle_buffer_order(10, 1, seed=3), np.arange(10))


def test_buffer_order_repeats_every_epoch_and_differs_per_domain():
    data = tiny_dataset()
    model = build_model(ModelConfig(name="wdl", adapter="mlora", hidden_units=(8,)), DataSpec.from_dataset(data))
    trainer = Trainer(model, data, TrainConfig(batch_size=64, shuffle="buffer", shuffle_buffer=50, max_epochs=1))
    seen = []
    original = trainer._buffer_order

    def spy(key, n):
        order = original(key, n)
        seen.append((key, order.numpy().copy()))
        return order

    trainer._buffer_order = spy
    phase = schedule_phases("joint", "mlora")[0]
    trainer._enter_phase(phase)
    trainer._train_epoch(phase)
    trainer._train_epoch(phase)
    by_key = {}
    for key, order in seen:
        by_key.setdefault(key, []).append(order)
    assert len(by_key) == data.n_domains
    for orders in by_key.values():
        assert len(orders) == 2
        np.testing.assert_array_equal(orders[0], orders[1])
        assert not np.array_equal(orders[0], np.arange(orders[0].size))


# ------------------------------------------------------------------------ loss
def test_clipped_loss_is_keras_binary_crossentropy_on_probabilities():
    logit = tf.constant([-30.0, -2.0, 0.0, 1.5, 25.0])
    label = tf.constant([0.0, 1.0, 1.0, 0.0, 1.0])
    ours = clipped_binary_crossentropy(label, logit).numpy()
    keras_bce = keras.losses.binary_crossentropy(label[:, None], tf.sigmoid(logit)[:, None]).numpy()
    np.testing.assert_allclose(ours, keras_bce, rtol=1e-5, atol=1e-6)
    # Away from the clip it is the logit loss; inside the clip it has no gradient.
    np.testing.assert_allclose(ours[1:4], logit_binary_crossentropy(label, logit).numpy()[1:4], rtol=1e-5)
    with tf.GradientTape() as tape:
        tape.watch(logit)
        loss = tf.reduce_sum(clipped_binary_crossentropy(label, logit))
    gradient = tape.gradient(loss, logit).numpy()
    assert gradient[0] == 0.0 and gradient[4] == 0.0
    assert np.all(gradient[1:4] != 0.0)


# ------------------------------------------------------------------ init seeds
def _model(init_seeds, graph_seed, adapter="mlora", units=(16, 16, 16), name="wdl"):
    keras.utils.set_random_seed(graph_seed + 1)
    config = ModelConfig(name=name, adapter=adapter, hidden_units=units, init_seeds=init_seeds)
    return build_model(config, DataSpec.from_dataset(tiny_dataset()), graph_seed=graph_seed)


def _kernels(model):
    return [layer.kernel.numpy() for layer in dense_stack_of(model).dense_layers]


def test_original_init_seeds_start_same_shaped_weights_identical():
    kernels = _kernels(_model("original", 5))
    np.testing.assert_array_equal(kernels[1], kernels[2])  # both (16, 16), op seed 1024
    independent = _kernels(_model("independent", 5))
    assert not np.array_equal(independent[1], independent[2])


def test_original_init_seeds_follow_the_run_seed():
    a, b, c = _model("original", 5), _model("original", 5), _model("original", 6)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    emb = lambda m: m.get_layer("user_emb").embeddings.numpy()  # noqa: E731
    assert not np.array_equal(emb(a), emb(c))
    # DeepCTR_LORA's uid table: Normal(0, 0.01).
    assert 0.007 < emb(a).std() < 0.013


# --------------------------------------------------------------------- dropout
def test_keras_dropout_impl_builds_keras_dropout_and_round_trips(tmp_path):
    data = tiny_dataset()
    for adapter in ("none", "mlora"):
        config = ModelConfig(name="wdl", adapter=adapter, hidden_units=(8, 4), dropout_impl="keras")
        model = build_model(config, DataSpec.from_dataset(data))
        stack = dense_stack_of(model)
        layers = stack.dropout_layers if adapter == "none" else [l.dropout_layer for l in stack.dense_layers]
        assert layers and all(type(layer) is keras.layers.Dropout for layer in layers)
        path = str(tmp_path / f"{adapter}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        assert dense_stack_of(loaded).dropout_impl == "keras"


# ------------------------------------------------------------------ a real run
def test_original_loop_trains_and_records_its_factors(tmp_path):
    from mlora_tf.config import DataConfig
    from mlora_tf.runs.train import train_run

    config = RunConfig(
        data=DataConfig(dataset="synthetic", cache_dir=str(tmp_path / "cache"),
                        options={"n_rows": 3000, "n_users": 100, "n_items": 80}),
        model=ModelConfig(name="wdl", adapter="mlora", hidden_units=(16, 8)),
        train=TrainConfig(loop="original", max_epochs=2, batch_size=256),
    )
    record = train_run(config, output_dir=str(tmp_path / "run"))
    train = record["config"]["train"]
    assert (train["loop"], train["shuffle"], train["loss"], train["row_groups"]) == ("original", "buffer", "clipped", 1)
    assert (record["config"]["model"]["dropout_impl"], record["config"]["model"]["init_seeds"]) == ("keras", "original")
    assert 0.5 < record["wauc"] <= 1.0
    assert config.train.shuffle is None  # the caller's config is not edited


def test_buffer_stream_and_clipped_loss_run_under_a_strategy_and_match_one_device():
    data = tiny_dataset()
    config = dataclasses.replace(TrainConfig(batch_size=64, max_epochs=1, seed=4), shuffle="buffer", loss="clipped",
                                 row_groups=1)
    phase = schedule_phases("joint", "none")[0]
    results = []
    for strategy in (None, tf.distribute.OneDeviceStrategy("/cpu:0")):
        keras.utils.set_random_seed(4)
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = build_model(ModelConfig(name="wdl", adapter="none", hidden_units=(8,), dropout=0.0),
                                DataSpec.from_dataset(data))
        trainer = Trainer(model, data, config, strategy=strategy)
        with strategy.scope() if strategy else contextlib.nullcontext():
            trainer._enter_phase(phase)
        trainer._train_epoch(phase)
        results.append([v.numpy() for v in trainer.weight_variables])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="row_groups"):
        Trainer(model, data, dataclasses.replace(config, row_groups=2), strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))


def test_original_reset_keeps_the_partitioned_norm_debias_state():
    from mlora_tf.training.trainer import EMA_STATE_NAMES

    data = tiny_dataset()
    model = build_model(ModelConfig(name="star", adapter="none", hidden_units=(8,), domain_dim=4, user_dim=4,
                                    item_dim=4), DataSpec.from_dataset(data))
    for keep in (False, True):
        trainer = Trainer(model, data, TrainConfig(batch_size=64, restore_ema_state=keep))
        snapshot = trainer._snapshot()
        phase = schedule_phases("joint", "none")[0]
        trainer._enter_phase(phase)
        trainer._train_epoch(phase)
        position = {id(v): i for i, v in enumerate(trainer.weight_variables)}
        state = [v for v in trainer.weight_variables if v.name in EMA_STATE_NAMES]
        assert len(state) == 3
        after = [v.numpy().copy() for v in state]
        trainer._restore_best(snapshot)
        stats = [v for v in trainer.weight_variables if v.name == "moving_mean"]
        np.testing.assert_array_equal(stats[0].numpy(), snapshot[position[id(stats[0])]])
        for v, a in zip(state, after):
            expected = snapshot[position[id(v)]] if keep else a
            np.testing.assert_array_equal(v.numpy(), expected)
        assert not np.array_equal(after[0], snapshot[position[id(state[0])]])
