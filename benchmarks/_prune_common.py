"""What every part of the pruning benchmark measures: MACs, parameters, and the batch latency
of a set of models in torch and ONNX Runtime.

Example:
    >>> import torch
    >>> macs(torch.nn.Linear(4, 2), torch.zeros(1, 4)), params(torch.nn.Linear(4, 2))
    (8, 10)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from benchmarks.harness import torch_and_ort
from torchslim.measure.macs import count_macs


def macs(m: nn.Module, x: Any) -> int:
    """Multiply-accumulates of one forward on ``x`` (a tensor or a tuple of them)."""
    return count_macs(m, x if isinstance(x, tuple) else (x,))[0]


def params(m: nn.Module) -> int:
    """How many parameters ``m`` holds."""
    return sum(p.numel() for p in m.parameters())


def latency(models: dict[str, nn.Module], x: Any, workdir: Path, *, rounds: int, inner: int,
            threads: int = 1, title: str = "") -> dict[str, float]:
    """Median ms per call of every model in torch (eager) and ONNX Runtime (:func:`torch_and_ort`)."""
    xs = x if isinstance(x, tuple) else (x,)
    cases = torch_and_ort(models, xs, workdir, rounds=rounds, inner=inner, threads=threads, title=title)
    return {n: c.median_ms for n, c in cases.items()}
