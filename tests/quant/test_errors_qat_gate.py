"""Bad inputs fail clearly; QAT recovers a harsh config; the latency gate reports its choice."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from torchslim import data
from torchslim.core.errors import ConfigError, InputError
from torchslim.measure import evaluate
from torchslim.quant import QAT, Int8Static, WeightOnly, quantize, report_of
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
    assert row["what"] == "whole model" and row["kept"] in ("int8", "float")
    assert (row["kept"] == "float") == ("(model)" in rep.kept_float)
    assert (row["kept"] == "float") == (row["int8_ms"] >= row["float_ms"])


def test_qat_one_epoch_recovers_harsh_config(lenet5: nn.Module, mnist: data.DataSplits) -> None:
    cfg = QAT(bits=3, act_bits=4, epochs=1, lr=5e-4, calibration_samples=500)
    harsh = prepare_qat(copy.deepcopy(lenet5), cfg, mnist.train)
    acc_fp32, acc_harsh = evaluate(lenet5, mnist.test), evaluate(harsh, mnist.test)
    trained = quantize(lenet5, cfg, train_data=mnist.train, teacher=lenet5, progress=False)
    acc_qat = evaluate(trained, mnist.test)
    assert acc_harsh < acc_fp32 - 0.01, (acc_fp32, acc_harsh)  # the config really is harsh
    assert acc_qat > acc_harsh + 0.5 * (acc_fp32 - acc_harsh), (acc_fp32, acc_harsh, acc_qat)


def test_mixed_precision_meets_budget(lenet5: nn.Module, mnist: data.DataSplits) -> None:
    from torchslim.quant import mixed_precision

    model, table = mixed_precision(lenet5, Int8Static(calibration_samples=250), calibration=mnist.train,
                                   eval_data=mnist.test, budget=0.0)
    base = table[0]["metric"]
    assert [r["layer"] for r in table if r["step"] == "sensitivity"] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert base - evaluate(model, mnist.test) <= 1e-9
    assert report_of(model) is not None
