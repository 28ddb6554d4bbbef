"""The energy estimate: Horowitz 2014 per-op costs, applied per layer precision."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.measure import measure
from torchslim.measure.energy import MAC_PJ, PJ_PER_OP, estimate_energy
from torchslim.measure.macs import LayerStat


def layer(precision: str, macs: int = 10_000, params: int = 1_000, out: int = 100) -> LayerStat:
    return LayerStat("fc", "Linear", macs=macs, params=params, output_shape=[1, out], precision=precision, output_numel=out)


def test_hand_computed_fp32_energy() -> None:
    e = estimate_energy([layer("fp32")], input_numel=50)
    compute_pj = 10_000 * (3.7 + 0.9)
    memory_pj = 1_000 * 640.0 + (100 + 50) * 5.0  # weights from DRAM; output + input from SRAM
    assert e.compute_uj == pytest.approx(compute_pj * 1e-6)
    assert e.memory_uj == pytest.approx(memory_pj * 1e-6)
    assert e.total_uj == pytest.approx(e.compute_uj + e.memory_uj)
    assert "estimate" in e.note and "Horowitz" in e.note


def test_int8_mac_is_int8_mult_plus_int32_add() -> None:
    assert MAC_PJ["int8"] == PJ_PER_OP["int8_mult"] + PJ_PER_OP["int32_add"]
    e = estimate_energy([layer("int8", params=0, out=0)])
    assert e.compute_uj == pytest.approx(10_000 * (0.2 + 0.1) * 1e-6)


def test_lower_precision_costs_less_for_the_same_macs() -> None:
    fp32, fp16, int8 = (estimate_energy([layer(p)]) for p in ("fp32", "fp16", "int8"))
    assert int8.compute_uj < fp16.compute_uj < fp32.compute_uj
    assert int8.memory_uj < fp16.memory_uj < fp32.memory_uj
    assert int8.total_uj < fp32.total_uj


def test_measure_reads_technique_precision_tag() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    x = torch.randn(4, 64)
    fp32 = measure(model, x, latency=False, memory=False)
    for i in (0, 2):
        model[i].torchslim_precision = "int8"
    int8 = measure(model, x, latency=False, memory=False)
    assert int8.macs == fp32.macs
    assert [lay.precision for lay in int8.layers if lay.macs] == ["int8", "int8"]
    assert int8.energy is not None and fp32.energy is not None
    assert int8.energy.total_uj < fp32.energy.total_uj
    assert fp32.energy.compute_uj == pytest.approx(fp32.macs * 4.6e-6)
