"""Bad inputs fail clearly; QAT recovers a harsh config; the latency gate reports its choice."""

from __future__ import annotations

import copy
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from torchslim import data
from torchslim.core.errors import ConfigError, InputError
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.measure import evaluate
from torchslim.quant import (
    QAT,
    Int8Dynamic,
    Int8Static,
    QuantModule,
    WeightOnly,
    quantize,
    report_of,
)
from torchslim.quant.qat import prepare_qat


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()


def test_empty_calibration() -> None:
    with pytest.raises(InputError, match="calibration data is empty"):
        quantize(_mlp(), Int8Static(), calibration=[])
    with pytest.raises(InputError, match="needs calibration data"):
        quantize(_mlp(), Int8Static())


def test_nan_calibration() -> None:
    bad = torch.randn(4, 8)
    bad[1, 2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        quantize(_mlp(), Int8Static(), calibration=[bad])


def test_no_quantizable_layer() -> None:
    with pytest.raises(ConfigError, match="no quantizable layer"):
        quantize(nn.Sequential(nn.ReLU()), Int8Static(), calibration=[torch.randn(2, 3)])
    with pytest.raises(ConfigError, match="no Linear layer"):
        quantize(nn.Sequential(nn.Conv2d(1, 1, 1)), WeightOnly(bits=8))


def test_unsupported_bit_width() -> None:
    with pytest.raises(ValueError, match="bits 4 or 8, got 3"):
        WeightOnly(bits=3)
    with pytest.raises(ValueError, match="between 2 and 8, got 16"):
        QAT(bits=16)


def test_input_untouched_and_gate_reports(lenet5: nn.Module, mnist: data.DataSplits) -> None:
    before = copy.deepcopy(lenet5.state_dict())
    q = quantize(lenet5, Int8Static(calibration_samples=250), calibration=mnist.train, gate="latency",
                 example_inputs=torch.zeros(1, 1, 28, 28))
    assert all(torch.equal(before[k], v) for k, v in lenet5.state_dict().items())
    rep = report_of(q)
    row = rep.table[0]
    variants = {"int8 per-tensor", "int8 per-tensor Linear", "int8 dynamic Linear", "int8 dynamic Linear per-tensor"}
    assert row["what"] == "whole model" and {"float", "int8"} <= set(row["ms"])
    assert set(row["ms"]) <= {"float", "int8"} | variants
    assert set(row["fidelity"]) == {"int8"} | variants  # each variant's accuracy was checked first
    assert sum("gate variant" in n for n in rep.notes) == len(variants)
    assert all((k in row["ms"]) == f["accepted"] for k, f in row["fidelity"].items() if k != "int8")
    assert row["kept"] in row["ms"] and row["ms"][row["kept"]] == min(row["ms"].values())
    assert (row["kept"] == "float") == (row["int8_ms"] >= row["float_ms"])
    confirm = [r for r in rep.table if r["what"] == "per-group mixture vs whole model"]
    group_rows = [r for r in rep.table[1:] if r not in confirm]
    assert [r["what"] for r in group_rows] == ["conv1", "conv2", "fc1", "fc2", "fc3"]  # then one layer group at a time
    assert len(confirm) <= 1 and (not confirm or rep.table[-1] is confirm[0])  # a mixture is timed once more
    mixture_kept = not confirm or confirm[0]["kept"] == "mixture"
    kept = row["kept"]
    quantized = [n for n, m in q.named_modules() if isinstance(m, QuantModule)]
    assert ("(model)" in rep.kept_float) == (not quantized)
    if not quantized:
        assert rep.variant == "float"
    else:  # the variant timed fastest, or (from float) the groups that went back to int8
        assert rep.variant.endswith("; rest float") if kept == "float" else rep.variant.startswith(kept), rep.variant
    if quantized and mixture_kept:  # the groups left in float are the ones the report names
        assert all((r["kept"] == "float") == (r["what"] in rep.kept_float) for r in group_rows)
    if not mixture_kept:  # the confirmation undid the flips: the whole-model choice stands, with its report
        assert rep.variant == kept and any("not confirmed" in n for n in rep.notes)


def test_gate_on_dynamic_and_unknown_gate() -> None:
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    q = quantize(net, Int8Dynamic(), gate="latency", example_inputs=torch.randn(1, 64), gate_groups=False)
    assert set(report_of(q).table[0]["ms"]) == {"float", "int8"}  # no calibration data: no variant to guard
    q = quantize(net, Int8Dynamic(), calibration=[torch.randn(64, 64)], gate="latency", example_inputs=torch.randn(1, 64),
                 gate_groups=False)
    assert set(report_of(q).table[0]["fidelity"]) == {"int8", "int8 per-tensor"}
    with pytest.raises(ConfigError, match="unknown gate 'speed'"):
        quantize(net, Int8Dynamic(), gate="speed", example_inputs=torch.randn(1, 64))
    with pytest.raises(ConfigError, match="needs example_inputs"):
        quantize(net, Int8Dynamic(), gate="latency")


@pytest.fixture(scope="module")
def qat_lenet5(lenet5: nn.Module, mnist: data.DataSplits) -> tuple[QAT, nn.Module]:
    cfg = QAT(bits=3, act_bits=3, epochs=1, lr=2e-3, calibration_samples=500, alpha=0.9)
    return cfg, quantize(lenet5, cfg, train_data=mnist.train, teacher=lenet5, progress=False)


def test_qat_one_epoch_recovers_harsh_config(lenet5: nn.Module, mnist: data.DataSplits,
                                             qat_lenet5: tuple[QAT, nn.Module]) -> None:
    cfg, trained = qat_lenet5
    harsh = prepare_qat(copy.deepcopy(lenet5), cfg, mnist.train)
    acc_fp32, acc_harsh, acc_qat = evaluate(lenet5, mnist.test), evaluate(harsh, mnist.test), evaluate(trained, mnist.test)
    assert acc_harsh < acc_fp32 - 0.01, (acc_fp32, acc_harsh)  # the config really is harsh
    assert acc_qat > acc_harsh + 0.5 * (acc_fp32 - acc_harsh), (acc_fp32, acc_harsh, acc_qat)


def test_qat_with_3_bit_activations_exports_and_matches(qat_lenet5: tuple[QAT, nn.Module], mnist: data.DataSplits,
                                                        tmp_path: Path) -> None:
    _, trained = qat_lenet5
    path = export_onnx(trained, tmp_path / "qat3.onnx", torch.zeros(1, 1, 28, 28))
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Clip") >= 5  # codes kept in [0, 7] before each uint8 QuantizeLinear
    ort_model = OrtModel(path)  # a fresh session loads it
    agree = total = 0
    with torch.inference_mode():
        for x, _ in mnist.test:
            agree += int((trained(x).argmax(1) == ort_model(x).argmax(1)).sum())
            total += x.shape[0]
    assert agree / total >= 0.99


def test_mixed_precision_meets_budget(lenet5: nn.Module, mnist: data.DataSplits) -> None:
    from torchslim.quant import mixed_precision

    model, table = mixed_precision(lenet5, Int8Static(calibration_samples=250), calibration=mnist.train,
                                   eval_data=mnist.test, budget=0.0)
    base = table[0]["metric"]
    assert [r["layer"] for r in table if r["step"] == "sensitivity"] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert base - evaluate(model, mnist.test) <= 1e-9
    assert report_of(model) is not None
