"""`benchmarks/flops.py`: FLOPs per example counted from built models, and the matmul peak.

The expected counts are worked out by hand from the layer widths (convention in the
module's docstring: 2 m n per matmul row, one FLOP per bias/activation/dropout/adapter-sum
element, 3x forward for training).
"""

import os
import sys

import keras
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import flops  # noqa: E402
from mlora_tf.config import ModelConfig  # noqa: E402
from mlora_tf.models import DataSpec, build_model  # noqa: E402

SPEC = DataSpec({"uid": 60, "pid": 50, "domain": 3}, 3)
# Three fields of embedding 8: the stack's input is 24 wide.
WIDTHS = (24, 32, 16)  # input, then hidden_units=(32, 16); logit head 16 -> 1 without bias


def _model(name, adapter, **kwargs):
    return build_model(ModelConfig(name=name, adapter=adapter, hidden_units=WIDTHS[1:], **kwargs), SPEC, graph_seed=0)


def _dense_forward(dropout=True):
    matmul = 2 * (24 * 32 + 32 * 16 + 16 * 1)
    per_unit = 2 + (1 if dropout else 0)  # bias, ReLU, dropout
    return matmul, per_unit * (32 + 16)


@pytest.mark.parametrize("name", ["wdl", "mlp"])
def test_base_counts_every_dense_layer_from_its_shape(name):
    counts = flops.train_flops_per_example(_model(name, "none"))
    matmul, elementwise = _dense_forward()
    assert counts["forward_matmul"] == matmul
    assert counts["forward_adapter"] == 0
    assert counts["forward_elementwise"] == elementwise
    assert counts["train"] == 3 * (matmul + elementwise)


def test_no_dropout_no_dropout_flops():
    counts = flops.train_flops_per_example(_model("wdl", "none", dropout=0.0))
    assert counts["forward_elementwise"] == _dense_forward(dropout=False)[1]


def test_mlora_adds_one_slot_of_each_adapter():
    # lora_reduce 4: ranks 32 // 4 = 8 and 16 // 4 = 4.
    counts = flops.train_flops_per_example(_model("wdl", "mlora", lora_reduce=4))
    matmul, elementwise = _dense_forward()
    adapter = (2 * 24 * 8 + 2 * (8 + 1) * 32) + (2 * 32 * 4 + 2 * (4 + 1) * 16)
    assert counts["forward_matmul"] == matmul
    assert counts["forward_adapter"] == adapter
    assert counts["forward_elementwise"] == elementwise + (32 + 16)  # the adapter sum
    assert counts["train"] == 3 * (matmul + adapter + elementwise + 48)


def test_mixed_batches_count_every_slot():
    counts = flops.train_flops_per_example(_model("wdl", "mlora", lora_reduce=4), mixed_batches=True)
    slots = 3

    def layer(n_in, r, n_out):
        return 2 * n_in * slots * r + slots * r + 2 * slots * r * n_out + 2 * slots * n_out

    assert counts["forward_adapter"] == layer(24, 8, 32) + layer(32, 4, 16)
    assert counts["forward_elementwise"] == _dense_forward()[1] + 2 * (32 + 16)


def test_a_model_without_dense_layers_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Activation("relu")(inputs), name="no_dense")
    with pytest.raises(ValueError, match="no Dense or LoRADense layer.*model='no_dense'"):
        flops.train_flops_per_example(model)


def test_matmul_peak_reports_its_rate():
    peak = flops.matmul_peak(size=64, streams=2, depth=2, repeats=2)
    assert peak["gflops"] > 0
    assert (peak["size"], peak["streams"], peak["depth"], len(peak["seconds"])) == (64, 2, 2, 2)
    assert peak["gflops"] == pytest.approx(2 * 64**3 * 2 * 2 / min(peak["seconds"]) / 1e9)
    with pytest.raises(ValueError, match="size=0"):
        flops.matmul_peak(size=0)
