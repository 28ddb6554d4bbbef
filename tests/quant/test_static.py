"""Static int8 on LeNet-5: simulation agrees with ONNX Runtime, accuracy holds in ORT, and ORT
runs integer kernels on the exported file."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from torchslim import data
from torchslim.export.onnx import OrtModel
from torchslim.measure import evaluate
from torchslim.quant import QuantModule, optimized_op_counts, report_of


def test_layers_wrapped_and_fused(lenet5_int8: nn.Module) -> None:
    qms = {n: m for n, m in lenet5_int8.named_modules() if isinstance(m, QuantModule)}
    assert sorted(qms) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert qms["conv1"].fused_relu and not qms["fc3"].fused_relu
    assert qms["conv2"].shares_input_with == "conv1"  # across ReLU + max-pool
    assert torch.equal(qms["conv2"].in_scale, qms["conv1"].out_scale)
    assert report_of(lenet5_int8).layers == sorted(qms)


def test_exported_file_has_int8_weights_and_our_scales(lenet5_int8: nn.Module, lenet5_int8_onnx: Path) -> None:
    g = onnx.load(str(lenet5_int8_onnx)).graph
    ops = [n.op_type for n in g.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 10
    int8_inits = [i for i in g.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2]
    assert len(int8_inits) == 5
    scales = {float(onnx.numpy_helper.to_array(i)) for i in g.initializer
              if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 0}
    assert float(lenet5_int8.conv1.out_scale) in scales


def test_ort_runs_integer_kernels_in_a_fresh_session(lenet5_int8_onnx: Path) -> None:
    counts = optimized_op_counts(lenet5_int8_onnx)
    assert counts.get("QLinearConv", 0) == 2, counts
    assert counts.get("QGemm", 0) + counts.get("QLinearMatMul", 0) == 3, counts
    assert "Conv" not in counts and "Gemm" not in counts, counts
    out = OrtModel(lenet5_int8_onnx)(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_simulation_agrees_with_ort_and_accuracy_holds(
    lenet5: nn.Module, lenet5_int8: nn.Module, lenet5_int8_onnx: Path, mnist: data.DataSplits
) -> None:
    ort_model = OrtModel(lenet5_int8_onnx)
    agree = total = 0
    with torch.inference_mode():
        for x, _ in mnist.test:
            agree += int((lenet5_int8(x).argmax(1) == ort_model(x).argmax(1)).sum())
            total += x.shape[0]
    assert agree / total >= 0.99
    fp32, int8_ort = evaluate(lenet5, mnist.test), evaluate(ort_model, mnist.test)
    assert fp32 - int8_ort <= 0.003, (fp32, int8_ort)
