"""Honest measurement: params, bytes, MACs, latency, peak memory, accuracy, energy estimate.

Example:
    >>> import torch
    >>> from torchslim.measure import measure
    >>> m = measure(torch.nn.Linear(16, 4), torch.zeros(1, 16), memory=False,
    ...             warmup=1, min_runs=5, min_seconds=0.0)
    >>> m.macs, m.latency.threads
    (64, 1)
"""

from torchslim.measure.accuracy import evaluate, top1
from torchslim.measure.compare import compare
from torchslim.measure.energy import Energy
from torchslim.measure.latency import Latency
from torchslim.measure.macs import LayerStat
from torchslim.measure.memory import Memory
from torchslim.measure.metrics import RUNTIMES, Metrics, measure

__all__ = [
    "RUNTIMES", "Energy", "Latency", "LayerStat", "Memory", "Metrics", "compare", "evaluate",
    "measure", "top1",
]
