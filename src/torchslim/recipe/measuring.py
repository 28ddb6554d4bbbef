"""Measure a model the way a recipe says: on the runtime, with accuracy on the test split (for
the report) and the validation split (for decisions: the guard and the search), and time many
ONNX Runtime models interleaved so their latencies compare within one run.

Example:
    >>> import torch
    >>> from torchslim.recipe.measuring import interleaved_ms
    >>> ms = interleaved_ms({"a": lambda: torch.zeros(10).sum(), "b": lambda: torch.zeros(1000).sum()}, rounds=3)
    >>> sorted(ms)
    ['a', 'b']
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.measure import Metrics, measure
from torchslim.measure.accuracy import evaluate
from torchslim.recipe.schema import MeasureSpec
from torchslim.recipe.sources import Workload


@dataclass
class Measured:
    """One measurement: ``metrics`` on the runtime (test accuracy), ``val`` (the validation
    metric on the same runtime) and the ONNX file measured (None on torch)."""

    metrics: Metrics
    val: float
    onnx: Path | None = None


def measure_model(model: nn.Module, w: Workload, spec: MeasureSpec, *, label: str, onnx_path: Path | None = None,
                  runtime: str | None = None) -> Measured:
    """Measure ``model`` on ``runtime`` (default ``spec.runtime``); on ONNX Runtime the model is
    exported to ``onnx_path`` first and that file is what is measured."""
    runtime = runtime or spec.runtime
    timing = spec.latency_seconds > 0
    kw = {"threads": spec.threads, "metric": w.metric, "latency": timing, "memory": spec.memory,
          "min_seconds": spec.latency_seconds, "max_seconds": max(10.0, 2 * spec.latency_seconds),
          "min_runs": spec.latency_runs, "warmup": 5, "name": label}
    model.eval()
    if runtime == "torch":
        m = measure(model, w.example_inputs, data=w.test, runtime="torch", **kw)
        return Measured(m, evaluate(model, w.val, w.metric))
    if onnx_path is None:
        raise ValueError("measuring on onnxruntime needs onnx_path")
    path = export_onnx(model, onnx_path, w.example_inputs)
    m = measure(model, w.example_inputs, data=w.test, runtime="onnxruntime", onnx_path=path, **kw)
    return Measured(m, evaluate(OrtModel(path, threads=spec.threads), w.val, w.metric), path)


def interleaved_ms(calls: Mapping[str, Callable[[], object]], *, rounds: int = 15,
                   round_ms: float = 20.0) -> dict[str, float]:
    """Median milliseconds per call of each callable, timed round-robin: round ``r`` runs every
    case once (order rotated by ``r``), each case repeated to fill about ``round_ms``."""
    names = list(calls)
    inner = {}
    for n in names:  # warm up, and size the repeats from one timed call
        calls[n]()
        t0 = time.perf_counter()
        calls[n]()
        inner[n] = max(1, min(200, int(round_ms / max((time.perf_counter() - t0) * 1e3, 1e-3))))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(inner[n]):
                calls[n]()
            times[n].append((time.perf_counter() - t0) * 1e3 / inner[n])
    return {n: statistics.median(t) for n, t in times.items()}
