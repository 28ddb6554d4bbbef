"""Peak memory of a fresh inference process: a 40 MB weight shows up as >= ~40 MB more."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from torchslim.core.errors import TorchslimError
from torchslim.export.onnx import export_onnx
from torchslim.measure import measure
from torchslim.measure.memory import probe_onnx, probe_torch

BIG = 3200  # Linear(3200, 3200): 10.24M fp32 weights = 40.96 MB
WEIGHT_BYTES = BIG * BIG * 4


def tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(BIG, 4)).eval()  # same input, 51 KB of weights


def big() -> nn.Module:
    return nn.Sequential(nn.Linear(BIG, BIG)).eval()


def test_torch_footprint_grows_with_weights() -> None:
    x = torch.randn(1, BIG)
    small = measure(tiny(), x, latency=False, memory=True, memory_runs=2).peak_memory
    large = probe_torch(big(), (x,), runs=2)
    assert small is not None and small.runtime == "torch" and small.method in ("VmHWM", "ru_maxrss")
    assert small.baseline_bytes and small.peak_bytes and small.peak_bytes > small.baseline_bytes
    assert large.peak_bytes > large.baseline_bytes  # type: ignore[operator]
    assert large.footprint_bytes - small.footprint_bytes >= 0.95 * WEIGHT_BYTES


def test_ort_footprint_grows_with_weights(tmp_path: Path) -> None:
    x = torch.randn(1, BIG)
    small = measure(tiny(), x, runtime="onnxruntime", latency=False, memory=True).peak_memory
    large_path = export_onnx(big(), tmp_path / "big.onnx", x)
    large = probe_onnx(large_path, (x,), runs=2)
    assert small is not None and small.runtime == "onnxruntime"
    assert small.peak_bytes > small.baseline_bytes  # type: ignore[operator]
    assert large.footprint_bytes - small.footprint_bytes >= 0.95 * WEIGHT_BYTES


class DataDependent(nn.Module):
    """Python control flow on a tensor value: torch.export cannot capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(256, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.fc(x)
        return x


def test_uncapturable_model_falls_back_to_estimate() -> None:
    mem = probe_torch(DataDependent().eval(), (torch.ones(4, 256),))
    assert mem.method == "estimate" and "torch.export failed" in mem.note
    assert mem.baseline_bytes is None and mem.peak_bytes is None
    weights = (256 * 256 + 256) * 4
    activations = 4 * 256 * 4
    assert weights + activations <= mem.footprint_bytes <= weights + 16 * activations


def test_probe_failure_is_reported(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.onnx"
    bogus.write_bytes(b"garbage")
    with pytest.raises(TorchslimError, match=r"memory probe \(onnxruntime\) failed"):
        probe_onnx(bogus, (torch.zeros(1, 4),), runs=1)
