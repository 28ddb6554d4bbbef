"""Dynamic int8 and weight-only int4/int8 (RTN, GPTQ): simulation vs ORT, GPTQ beats RTN."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from torchslim import data, zoo
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.quant import Int8Dynamic, WeightOnly, optimized_op_counts, quantize


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32)).eval()


def test_dynamic_runs_dynamic_quantize_matmul(tmp_path: Path) -> None:
    net = _mlp()
    q = quantize(net, Int8Dynamic())
    x = torch.randn(8, 64)
    path = export_onnx(q, tmp_path / "dyn.onnx", x[:1])
    assert optimized_op_counts(path).get("DynamicQuantizeMatMul", 0) == 2
    torch.testing.assert_close(OrtModel(path)(x), q(x), atol=2e-3, rtol=1e-2)
    assert (q(x) - net(x)).abs().max() < 0.05


def test_weight_only_int4_exports_blocked_int4(tmp_path: Path) -> None:
    net = _mlp()
    q = quantize(net, WeightOnly(bits=4, group_size=32))
    x = torch.randn(4, 64)
    path = export_onnx(q, tmp_path / "w4.onnx", x[:1])
    counts = optimized_op_counts(path)
    assert counts.get("MatMulNBits", 0) + counts.get("DequantizeLinear", 0) >= 2, counts
    torch.testing.assert_close(OrtModel(path)(x), q(x), atol=1e-2, rtol=1e-2)  # MatMulNBits rounds differently


def test_gptq_int4_beats_rtn_on_lenet300() -> None:
    model = zoo.teacher("lenet300-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=256, seed=0)
    calib = [x for x, _ in splits.train][:4]
    rtn = quantize(model, WeightOnly(bits=4, group_size=16, method="rtn"))
    gptq = quantize(model, WeightOnly(bits=4, group_size=16, method="gptq", calibration_samples=1024), calibration=calib)
    x = torch.cat([x for x, _ in splits.test])
    with torch.inference_mode():
        ref = model(x)
        err_rtn = (rtn(x) - ref).pow(2).mean()
        err_gptq = (gptq(x) - ref).pow(2).mean()
    assert err_gptq < 0.8 * err_rtn, (float(err_gptq), float(err_rtn))


def test_gate_dynamic_variant_of_a_static_model(tmp_path: Path) -> None:
    from torchslim.quant import Int8Static
    from torchslim.quant.gate import dynamic_variant, with_float_groups

    net = _mlp()
    q = quantize(net, Int8Static(), calibration=[torch.randn(64, 64)])
    dyn = dynamic_variant(q)
    assert dyn is not None and all(m.mode == "dynamic" for m in dyn.modules() if hasattr(m, "mode"))
    x = torch.randn(8, 64)
    path = export_onnx(dyn, tmp_path / "dyn_variant.onnx", x[:1])
    assert optimized_op_counts(path).get("DynamicQuantizeMatMul", 0) == 2
    torch.testing.assert_close(OrtModel(path)(x), dyn(x), atol=2e-3, rtol=1e-2)
    half = with_float_groups(q, {"2"})  # the second Linear back in float
    assert type(half[2]) is nn.Linear and type(half[0]).__name__ == "QuantModule"
