"""Latency measured on the target runtime, for latency-aware pruning: a timer for a set of model
variants (interleaved rounds, medians), and the per-group lookup table the allocator reads.

The table holds, for every channel group and a few candidate unit counts, the latency of the
whole model with that group at that count and every other group at a reference count (the
full width, or an earlier solution): whole-model timings keep what per-layer timings miss,
such as ONNX Runtime's layout conversions between layers, its fused conv + BN + activation
kernels and its 16-channel blocks on AVX-512, or torch choosing another convolution kernel
below a size limit. Variants of one group are timed together with the reference, so drift
between groups cancels. The allocator adds up the differences (see
:mod:`torchslim.prune.structured.allocate`).

ONNX Runtime variants are exported with the TorchScript exporter (about 0.1 s each instead of
several seconds for ``torch.export``; ORT optimizes both graphs to the same kernels), with
:func:`torchslim.export.export_onnx` as the fallback.

Example:
    >>> import torch
    >>> nets = {"wide": torch.nn.Linear(64, 64), "narrow": torch.nn.Linear(64, 8)}
    >>> ms = time_variants(nets, (torch.zeros(1, 64),), "torch", rounds=3)
    >>> sorted(ms), all(v > 0 for v in ms.values())
    (['narrow', 'wide'], True)
"""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.graph import ChannelGroup
from torchslim.export import OrtModel, export_onnx
from torchslim.measure.latency import torch_threads
from torchslim.prune.structured.surgery import remove_units

RUNTIMES = ("torch", "onnxruntime")


def _ort_call(model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path, stem: str,
              threads: int) -> Callable[[], Any]:
    path = workdir / f"{stem}.onnx"
    try:
        buf = io.BytesIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, inputs, buf, dynamo=False, opset_version=17,
                              input_names=[f"input{i}" for i in range(len(inputs))])
        path.write_bytes(buf.getvalue())
    except Exception:  # noqa: BLE001 - the maintained exporter is the fallback
        export_onnx(model, path, inputs)
    return OrtModel(path, threads=threads).prepared(*inputs)


def time_variants(models: dict[str, nn.Module], inputs: tuple[torch.Tensor, ...], runtime: str, *,
                  threads: int = 1, rounds: int = 15, sample_ms: float = 2.0) -> dict[str, float]:
    """Median milliseconds per call of every model on ``runtime`` (``"torch"``: eager under
    ``inference_mode``; ``"onnxruntime"``: an exported graph in an ORT CPU session), batch as in
    ``inputs``, ``threads`` threads. Round ``r`` times every model once, in an order rotated by
    ``r``; each sample is the mean of enough calls to last about ``sample_ms``.

    Example:
        >>> import torch
        >>> ms = time_variants({"a": torch.nn.ReLU()}, (torch.zeros(8),), "onnxruntime", rounds=3)
        >>> list(ms)
        ['a']
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if not models:
        return {}
    calls: dict[str, Callable[[], Any]] = {}
    with torch_threads(threads), torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        for i, (name, m) in enumerate(models.items()):
            m.eval()
            if runtime == "torch":
                calls[name] = lambda m=m: m(*inputs)
            else:
                with torch.inference_mode(False):
                    calls[name] = _ort_call(m, inputs, Path(tmp), f"v{i}", threads)
        names = list(calls)
        t0 = time.perf_counter()
        for n in names:  # warm-up (first calls allocate and pick kernels)
            for _ in range(3):
                calls[n]()
        per_call = (time.perf_counter() - t0) * 1e3 / (3 * len(names))
        inner = max(1, round(sample_ms / max(per_call, 1e-3)))
        samples: dict[str, list[float]] = {n: [] for n in names}
        for r in range(rounds):
            for n in names[r % len(names):] + names[: r % len(names)]:
                t = time.perf_counter()
                for _ in range(inner):
                    calls[n]()
                samples[n].append((time.perf_counter() - t) * 1e3 / inner)
    return {n: statistics.median(v) for n, v in samples.items()}


def group_keys(groups: list[ChannelGroup]) -> dict[int, str]:
    """A unique readable key per group (``id(group)`` -> ``name()``, numbered when two share one).

    Example:
        >>> from torchslim.core.graph import ChannelGroup, Member
        >>> gs = [ChannelGroup(i, 4, [Member("qkv.weight", 0, 4 * i, 1)]) for i in range(2)]
        >>> list(group_keys(gs).values())
        ['qkv:channels', 'qkv:channels#2']
    """
    out: dict[int, str] = {}
    seen: dict[str, int] = {}
    for g in groups:
        name = g.name()
        seen[name] = seen.get(name, 0) + 1
        out[id(g)] = name if seen[name] == 1 else f"{name}#{seen[name]}"
    return out


def candidate_counts(g: ChannelGroup, step: int, min_keep: int, points: int) -> list[int]:
    """Unit counts the allocator may give group ``g``: multiples of ``step`` (heads: every
    count) from ``min_keep`` up, and the full count; at most ``points`` of them, spread evenly.

    Example:
        >>> from torchslim.core.graph import ChannelGroup
        >>> candidate_counts(ChannelGroup(0, 64, []), 16, 8, 8)
        [16, 32, 48, 64]
    """
    step = 1 if g.is_heads else max(1, min(step, g.units))
    lo = max(1, min_keep)
    counts = sorted({c for c in range(step, g.units, step) if c >= lo} | {g.units})
    if len(counts) > points:
        picks = {round(i * (len(counts) - 1) / (points - 1)) for i in range(points)}
        counts = [counts[i] for i in sorted(picks)]
    return counts


@dataclass
class LatencyTable:
    """Measured latency (ms) of the whole model with one group at each candidate count and all
    others at their ``reference`` count; ``reference_ms`` is the latency at the reference.
    Keys are :func:`group_keys` (group names)."""

    runtime: str
    threads: int
    reference: dict[str, int]
    reference_ms: float
    counts: dict[str, list[int]] = field(default_factory=dict)
    ms: dict[str, list[float]] = field(default_factory=dict)

    def at(self, group: str, count: int) -> float:
        """Latency with ``group`` at ``count`` (a candidate count) and the rest at the reference."""
        if count == self.reference[group]:
            return self.reference_ms
        return self.ms[group][self.counts[group].index(count)]

    def estimate(self, counts: dict[str, int]) -> float:
        """Additive estimate of the latency at ``counts``: the reference plus each group's change."""
        return self.reference_ms + sum(self.at(g, c) - self.reference_ms for g, c in counts.items() if g in self.counts)

    def counts_by_id(self, groups: list[ChannelGroup]) -> dict[int, list[int]]:
        """The candidate counts keyed by ``id(group)`` (the reference count for unmeasured groups)."""
        keys = group_keys(groups)
        return {id(g): self.counts.get(keys[id(g)], [self.reference[keys[id(g)]]]) for g in groups}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"runtime": self.runtime, "threads": self.threads, "reference": self.reference,
                "reference_ms": self.reference_ms, "counts": self.counts, "ms": self.ms}


def _at_counts(model: nn.Module, groups: list[ChannelGroup], counts: dict[int, int]) -> nn.Module:
    """A copy of ``model`` with each group cut to ``counts[id(g)]`` units (the last ones go:
    which units go does not change the latency)."""
    m = copy.deepcopy(model)
    removal = {id(g): (g, list(range(counts[id(g)], g.units))) for g in groups if counts[id(g)] < g.units}
    remove_units(m, removal)
    return m


def measure_table(model: nn.Module, inputs: tuple[torch.Tensor, ...], groups: list[ChannelGroup],
                  counts: dict[int, list[int]], reference: dict[int, int], runtime: str, *,
                  threads: int = 1, rounds: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> LatencyTable:
    """The :class:`LatencyTable` of ``groups`` at their candidate ``counts`` (by ``id(group)``),
    the others held at ``reference`` counts. ``rounds`` (default: as many as fit in about 2 s
    per group, 9 to 31) sets how many interleaved samples each median takes.

    Example:
        >>> import torch
        >>> from torchslim.core.graph import build_graph
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
        >>> g = build_graph(net, (torch.zeros(1, 8),)).groups
        >>> t = measure_table(net, (torch.zeros(1, 8),), g, {id(g[0]): [32, 64]}, {id(g[0]): 64}, "torch", rounds=3)
        >>> t.counts
        {'0:channels': [32, 64]}
    """
    base = _at_counts(model, groups, reference)
    keys = group_keys(groups)
    table = LatencyTable(runtime, threads, {keys[id(g)]: reference[id(g)] for g in groups}, 0.0)
    ref_ms = []
    measured = [g for g in groups if any(c != reference[id(g)] for c in counts[id(g)])]
    if rounds is None:
        one = time_variants({"r": base}, inputs, runtime, threads=threads, rounds=3)["r"]
        per_round = max(2.0, one) * (1 + max((len(counts[id(g)]) for g in measured), default=1))
        rounds = int(min(31, max(9, 2000 / per_round)))
    for i, g in enumerate(measured):
        variants: dict[str, nn.Module] = {"reference": base}
        for c in counts[id(g)]:
            if c != reference[id(g)]:
                variants[str(c)] = _at_counts(model, groups, {**reference, id(g): c})
        ms = time_variants(variants, inputs, runtime, threads=threads, rounds=rounds)
        ref_ms.append(ms["reference"])
        key = keys[id(g)]
        table.counts[key] = list(counts[id(g)])
        # relative to the reference timed with them (drift between groups cancels)
        table.ms[key] = [0.0 if c == reference[id(g)] else ms[str(c)] - ms["reference"] for c in counts[id(g)]]
        if progress is not None:
            progress(i + 1, len(measured))
    table.reference_ms = statistics.median(ref_ms) if ref_ms else time_variants(
        {"r": base}, inputs, runtime, threads=threads, rounds=rounds)["r"]
    for name in table.ms:  # back to absolute ms around the common reference
        table.ms[name] = [table.reference_ms + d for d in table.ms[name]]
    return table
