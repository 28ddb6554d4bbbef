"""Static int8 on a residual net and ReLU6 nets: the exported graph runs integer end to end in
ONNX Runtime (QLinearConv, QLinearAdd, QLinearGlobalAveragePool, QGemm), simulation agrees
with it on the MNIST test split, and accuracy holds in the runtime."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from torchslim import data
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.measure import evaluate
from torchslim.quant import Int8Static, QuantModule, optimized_op_counts, quantize
from torchslim.quant.fake_quant import input_quantizers


def test_resnet_graph_is_integer_end_to_end(resnet_int8_onnx: tuple[nn.Module, Path]) -> None:
    q, path = resnet_int8_onnx
    counts = optimized_op_counts(path)
    assert counts.get("QLinearConv", 0) == 9, counts
    assert counts.get("QLinearAdd", 0) == 3, counts  # every residual add stays integer
    assert counts.get("QLinearGlobalAveragePool", 0) == 1, counts
    assert counts.get("QGemm", 0) == 1, counts
    for float_op in ("Conv", "FusedConv", "Add", "Relu", "ReduceMean", "Gemm"):
        assert float_op not in counts, counts
    qms = dict((n, m) for n, m in q.named_modules() if isinstance(m, QuantModule))
    assert qms["stem.0"].fused_act == "relu"  # fused across the folded BatchNorm's Identity
    assert qms["layer2.0.shortcut.0"].same_input_as == "layer2.0.conv1"  # siblings: one input scale
    assert torch.equal(qms["layer2.0.shortcut.0"].in_scale, qms["layer2.0.conv1"].in_scale)
    assert not qms["fc"].quantize_output  # logits leave QGemm as float
    assert [n for n, _ in input_quantizers(q)] == ["pool"]


def test_resnet_simulation_agrees_with_ort(resnet: nn.Module, resnet_int8_onnx: tuple[nn.Module, Path],
                                           mnist: data.DataSplits) -> None:
    q, path = resnet_int8_onnx
    ort_model = OrtModel(path)
    agree = total = 0
    with torch.inference_mode():
        for x, _ in mnist.test:
            agree += int((q(x).argmax(1) == ort_model(x).argmax(1)).sum())
            total += x.shape[0]
    assert agree / total >= 0.99
    assert evaluate(resnet, mnist.test) - evaluate(ort_model, mnist.test) <= 0.003


def test_relu6_is_fused_and_clip_disappears(tmp_path: Path) -> None:
    torch.manual_seed(0)

    def block(c_in: int, c_out: int, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, groups=groups, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6())

    net = nn.Sequential(block(1, 8), block(8, 8, groups=8), block(8, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 4)).eval()
    calib = [torch.rand(32, 1, 12, 12) for _ in range(4)]
    q = quantize(net, Int8Static(), calibration=calib)
    assert [m.fused_act for m in q.modules() if isinstance(m, QuantModule) and m.kind == "Conv2d"] == ["relu6"] * 3
    path = export_onnx(q, tmp_path / "relu6.onnx", calib[0][:1])
    counts = optimized_op_counts(path)
    assert counts.get("QLinearConv", 0) == 3 and "Clip" not in counts, counts
    x = torch.rand(16, 1, 12, 12)
    torch.testing.assert_close(OrtModel(path)(x), q(x), atol=2e-2, rtol=0)
