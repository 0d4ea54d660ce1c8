"""The benchmarks' epoch timing: interleaved rounds and the per-round ratios."""

from __future__ import annotations

import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import common  # noqa: E402


def test_interleaved_epochs_warm_up_each_then_run_round_robin():
    calls = []

    def epoch_of(label, examples):
        def run_epoch():
            calls.append(label)
            return examples

        return run_epoch

    results = common.interleaved_epochs({"a": epoch_of("a", 10), "b": epoch_of("b", 20)}, epochs=3)
    # One warm-up epoch each, then round k is epoch k of a, then of b.
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert set(results) == {"a", "b"}
    for label, examples in (("a", 10), ("b", 20)):
        r = results[label]
        assert r["epoch_examples"] == examples
        assert len(r["epoch_seconds"]) == len(r["epoch_examples_per_second"]) == 3
        assert all(s > 0 for s in r["epoch_seconds"])
        assert r["examples_per_second"] == pytest.approx(sorted(r["epoch_examples_per_second"])[1])
        assert r["warmup_seconds"] > 0


def test_time_epochs_is_one_configuration_of_the_interleaved_timing():
    calls = []
    result = common.time_epochs(lambda: calls.append(1) or 5, epochs=2)
    assert len(calls) == 3  # a warm-up and two timed epochs
    assert result["epoch_examples"] == 5 and len(result["epoch_seconds"]) == 2


def test_round_ratios_are_taken_within_each_round():
    # Round 1: the slow one at 100 ex/s beside 150; round 2 (the machine slower): 50 beside 60.
    slow = {"epoch_examples_per_second": [100.0, 50.0]}
    fast = {"epoch_examples_per_second": [150.0, 60.0]}
    ratio = common.round_ratios(slow, fast)
    assert ratio["rounds"] == 2
    assert ratio["min"] == pytest.approx(1.2) and ratio["max"] == pytest.approx(1.5)
    assert ratio["median"] == pytest.approx(1.35)


def test_op_categories_follow_the_graph_names():
    import step_profile

    cat = step_profile.op_category
    assert cat("while/body/_1/while/wdl_mlora_1/dense_stack_1/mlora_dense_0_1/BiasAdd", "_MklNativeFusedMatMul") == "dense matmuls"
    assert cat("while/wdl_mlora_1/dense_stack_1/mlora_dense_1_1/adapter_1/MatMul_1", "_MklMatMul") == "adapter matmuls"
    assert cat("while/gradient_tape/while/wdl_mlora_1/dense_stack_1/Pad_5", "Pad") == "adapters, other"
    assert cat("while/wdl_mlora_1/dense_stack_1/mlora_dense_0_1/fast_dropout_1/GatherV2", "GatherV2") == "dropout"
    assert cat("while/wdl_none_1/item_emb_1/GatherV2", "GatherV2") == "embeddings"
    assert cat("while/UnsortedSegmentSum_4", "UnsortedSegmentSum") == "embeddings"
    assert cat("while/fused_adam/ResourceApplyAdam_13", "ResourceApplyAdam") == "optimizer"
    assert cat("while/logistic_loss_1/sub/Neg", "Neg") == "other ops"


def test_the_trace_accounts_for_the_threads_time():
    import tensorflow as tf

    import step_profile

    a = tf.random.normal([256, 256])

    @tf.function
    def run():
        total = tf.constant(0.0)
        for _ in tf.range(20):
            total += tf.reduce_sum(tf.matmul(a, a))
        return total

    float(run())  # trace outside the profile
    t = step_profile.trace_thread_time(run, steps=20)
    assert t["threads"] >= 1 and t["wall"] > 0
    assert t["dense matmuls"] > 0  # the loop's matmuls are found and classed
    assert t["adapter matmuls"] == 0 and t["optimizer"] == 0
    parts = sum(t[c] for c in step_profile.CATEGORIES)
    assert parts == pytest.approx(t["capacity"], rel=0.05)  # every thread-second is put somewhere
