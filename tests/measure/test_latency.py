"""Latency: the thread count is honoured and read back, and the stopping rule holds."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.measure import measure
from torchslim.measure.latency import time_ort, time_torch


class ThreadSpy(nn.Module):
    """Records torch.get_num_threads() at every call."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.fc(x)


def test_torch_latency_sets_threads_and_restores() -> None:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ThreadSpy()
        m = measure(model, torch.randn(1, 8), threads=2, memory=False, warmup=2, min_runs=20, min_seconds=0.0)
        assert m.latency is not None
        assert m.latency.threads == 2 and m.threads == 2
        assert m.latency.runs >= 20
        assert len(model.seen) >= 22 and set(model.seen) == {2}  # every call ran with 2 threads
        assert torch.get_num_threads() == 1  # restored
    finally:
        torch.set_num_threads(previous)


def test_latency_summary_is_consistent() -> None:
    lat = time_torch(nn.Linear(64, 64), (torch.randn(4, 64),), threads=1, warmup=1, min_runs=30, min_seconds=0.0)
    assert lat.runs >= 30 and lat.batch_size == 4 and lat.runtime == "torch"
    assert 0 < lat.min_ms <= lat.median_ms <= lat.p90_ms
    assert lat.min_ms <= lat.mean_ms


def test_min_seconds_and_max_seconds_bound_the_loop() -> None:
    class Slow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(0.01)
            return x

    t0 = time.perf_counter()
    lat = time_torch(Slow(), (torch.zeros(1),), warmup=0, min_runs=1000, min_seconds=0.0, max_seconds=0.15)
    assert 5 <= lat.runs < 100  # stopped by max_seconds, not by min_runs
    assert time.perf_counter() - t0 < 2.0
    lat = time_torch(Slow(), (torch.zeros(1),), warmup=0, min_runs=1, min_seconds=0.1, max_seconds=5.0)
    assert lat.runs >= 8  # ran until min_seconds had passed
    lat = time_torch(Slow(), (torch.zeros(1),), warmup=0, min_runs=1, min_seconds=0.0, max_seconds=0.001)
    assert lat.runs == 5  # never fewer than 5


def test_ort_latency_uses_session_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(1, 16)
    path = export_onnx(model, tmp_path / "m.onnx", x)
    for threads in (1, 2):
        session = OrtModel(path, threads=threads)
        assert session.session.get_session_options().intra_op_num_threads == threads
        lat = time_ort(session, (x,), warmup=1, min_runs=15, min_seconds=0.0)
        assert lat.threads == threads and lat.runs >= 15 and lat.runtime == "onnxruntime"
    m = measure(model, x, runtime="onnxruntime", onnx_path=path, threads=2, memory=False,
                warmup=1, min_runs=15, min_seconds=0.0)
    assert m.latency is not None and m.latency.threads == 2 and m.latency.runs >= 15


@pytest.mark.parametrize(
    "kwargs", [{"min_runs": 0}, {"warmup": -1}, {"min_seconds": 2.0, "max_seconds": 1.0}, {"max_seconds": 0.0}]
)
def test_bad_timing_budget_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="latency needs"):
        measure(nn.Linear(2, 2), torch.zeros(1, 2), memory=False, **kwargs)  # type: ignore[arg-type]
