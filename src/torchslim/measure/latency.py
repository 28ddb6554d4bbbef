"""Latency of one forward pass, timed call by call with ``time.perf_counter``.

Warm-up runs first (not timed), then timed runs until there are at least ``min_runs`` of
them *and* ``min_seconds`` have passed, or until ``max_seconds``; never fewer than 5 timed
runs, whatever the budget (a median of one or two calls is noise).
The thread count is fixed for the whole measurement and the value reported is the one read
back from the runtime (``torch.get_num_threads()`` inside the loop, the ONNX Runtime
session's ``intra_op_num_threads``), not the one asked for.

Example:
    >>> import torch
    >>> from torchslim.measure.latency import time_torch
    >>> lat = time_torch(torch.nn.Linear(8, 8), (torch.zeros(1, 8),), threads=1,
    ...                  warmup=1, min_runs=5, min_seconds=0.0)
    >>> lat.runs >= 5 and lat.threads == 1
    True
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.export.onnx import OrtModel

MIN_TIMED_RUNS = 5


@dataclass
class Latency:
    """Per-call wall time of one forward pass at ``batch_size``, in milliseconds."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    threads: int
    runtime: str
    batch_size: int


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous value is restored.

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def check_budget(warmup: int, min_runs: int, min_seconds: float, max_seconds: float) -> None:
    """Refuse a timing budget that cannot produce a measurement."""
    if warmup < 0 or min_runs < 1:
        raise ConfigError(f"latency needs warmup >= 0 and min_runs >= 1, got warmup={warmup}, min_runs={min_runs}")
    if min_seconds < 0 or max_seconds <= 0 or max_seconds < min_seconds:
        raise ConfigError(
            f"latency needs 0 <= min_seconds <= max_seconds and max_seconds > 0, got "
            f"min_seconds={min_seconds}, max_seconds={max_seconds}"
        )


def _time_calls(
    call: Callable[[], object], warmup: int, min_runs: int, min_seconds: float, max_seconds: float
) -> list[float]:
    """Seconds per call of ``call()``: the stopping rule of the module docstring."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        elapsed = t1 - start
        if len(times) >= max(min_runs, MIN_TIMED_RUNS) and elapsed >= min_seconds:
            break
        if elapsed >= max_seconds and len(times) >= MIN_TIMED_RUNS:
            break
    return times


def _summary(times: list[float], threads: int, runtime: str, batch_size: int) -> Latency:
    ms = sorted(t * 1e3 for t in times)
    p90 = ms[min(len(ms) - 1, math.ceil(0.9 * len(ms)) - 1)]  # nearest-rank percentile
    return Latency(
        median_ms=statistics.median(ms), p90_ms=p90, mean_ms=statistics.fmean(ms), min_ms=ms[0],
        runs=len(ms), threads=threads, runtime=runtime, batch_size=batch_size,
    )


def time_torch(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    threads: int = 1,
    warmup: int = 10,
    min_runs: int = 50,
    min_seconds: float = 1.0,
    max_seconds: float = 10.0,
) -> Latency:
    """Latency of ``model(*inputs)`` in eager torch under ``torch.inference_mode()``.

    Example:
        >>> import torch
        >>> time_torch(torch.nn.ReLU(), (torch.zeros(4),), warmup=0, min_runs=5,
        ...            min_seconds=0.0).runtime
        'torch'
    """
    check_budget(warmup, min_runs, min_seconds, max_seconds)
    was_training = model.training
    model.eval()
    seen_threads: list[int] = []

    def call() -> object:
        return model(*inputs)

    try:
        with torch_threads(threads), torch.inference_mode():
            times = _time_calls(call, warmup, min_runs, min_seconds, max_seconds)
            seen_threads.append(torch.get_num_threads())
    finally:
        model.train(was_training)
    batch = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    return _summary(times, seen_threads[0], "torch", batch)


def time_ort(
    ort_model: OrtModel,
    inputs: tuple[torch.Tensor, ...],
    *,
    warmup: int = 10,
    min_runs: int = 50,
    min_seconds: float = 1.0,
    max_seconds: float = 10.0,
) -> Latency:
    """Latency of the session on ``inputs`` bound once (:meth:`OrtModel.prepared`: feed
    conversion is not timed); the thread count is the one the session was built with
    (``OrtModel(path, threads)``).

    Example:
        >>> import tempfile, torch
        >>> from torchslim.export.onnx import export_onnx, OrtModel
        >>> p = export_onnx(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/m.onnx", torch.zeros(1, 4))
        >>> time_ort(OrtModel(p, threads=1), (torch.zeros(1, 4),), warmup=0, min_runs=5,
        ...          min_seconds=0.0).threads
        1
    """
    check_budget(warmup, min_runs, min_seconds, max_seconds)
    call = ort_model.prepared(*inputs)
    threads = int(ort_model.session.get_session_options().intra_op_num_threads)
    times = _time_calls(call, warmup, min_runs, min_seconds, max_seconds)
    batch = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    return _summary(times, threads, "onnxruntime", batch)
