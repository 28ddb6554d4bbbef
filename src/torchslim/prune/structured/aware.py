"""The latency-aware path of ``StructuredPrune(runtime=...)``: measure the table, allocate,
correct the MACs model against an exact count, and measure the result.

Example:
    >>> import torch
    >>> import torchslim as slim
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    >>> cfg = slim.StructuredPrune(target_macs=0.5, runtime="torch", latency_points=3)
    >>> small = slim.prune(net, cfg, example_inputs=torch.zeros(1, 16))
    >>> small[0].out_features <= 32, sorted(small.slim_prune_report.latency["measured_ms"])
    (True, ['pruned', 'unpruned'])
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from torchslim.core.graph import ChannelGroup
from torchslim.measure.macs import count_macs
from torchslim.prune.structured.allocate import Counts, MacsModel, allocate, counts_to_removal
from torchslim.prune.structured.config import StructuredPrune
from torchslim.prune.structured.latency import (
    LatencyTable,
    candidate_counts,
    group_keys,
    measure_table,
    time_variants,
)
from torchslim.prune.structured.report import PruneReport
from torchslim.prune.structured.surgery import Removal, remove_units


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A transient rich bar on terminals (nothing elsewhere); yields ``update(done, total)``.

    Example:
        >>> with progress_bar("measuring") as update:
        ...     update(1, 2)
    """
    console = Console()
    if not console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _pruned(model: nn.Module, groups: list[ChannelGroup], scores: list[torch.Tensor], n: Counts) -> nn.Module:
    m = copy.deepcopy(model)
    remove_units(m, counts_to_removal(groups, scores, n))
    return m


def _solve(model: nn.Module, inputs: tuple[torch.Tensor, ...], groups: list[ChannelGroup], scores: list[torch.Tensor],
           table: LatencyTable, macs: MacsModel, goal_macs: float | None, goal_ms: float | None) -> Counts:
    """Allocate; while the exact MACs miss the goal (the per-layer model is approximate for
    attention), tighten the model's goal by the miss and allocate again."""
    counts = table.counts_by_id(groups)
    goal = goal_macs
    n = allocate(groups, scores, counts, table, macs, goal_macs=goal, goal_ms=goal_ms)
    for _ in range(6):
        if goal_macs is None or goal is None:
            break
        exact = count_macs(_pruned(model, groups, scores, n), inputs)[0]
        if exact <= goal_macs:
            break
        goal *= goal_macs / exact * 0.999
        n = allocate(groups, scores, counts, table, macs, goal_macs=goal, goal_ms=goal_ms)
    return n


def latency_aware_removal(model: nn.Module, inputs: tuple[torch.Tensor, ...], report: PruneReport,
                          scores: list[torch.Tensor], config: StructuredPrune) -> Removal:
    """The removal chosen by measured latency (see :mod:`torchslim.prune.structured.allocate`);
    fills ``report.latency``."""
    groups, runtime = report.groups, str(config.runtime)
    step = config.round_to or 8
    counts = {id(g): candidate_counts(g, step, math.ceil((1 - config.max_sparsity) * g.units), config.latency_points)
              for g in groups}
    full: Counts = {id(g): g.units for g in groups}
    macs = MacsModel.of(model, inputs, groups)
    m_full = count_macs(model, inputs)[0]
    goal_macs = config.target_macs * m_full if config.target_macs is not None else None
    with progress_bar(f"latency table on {runtime}") as update:
        table = measure_table(model, inputs, groups, counts, full, runtime, threads=config.threads, progress=update)
    goal_ms = config.target_latency * table.reference_ms if config.target_latency is not None else None
    n = _solve(model, inputs, groups, scores, table, macs, goal_macs, goal_ms)
    tables = [table]
    for _ in range(1, config.latency_rounds):
        with progress_bar(f"latency table on {runtime}, around the solution") as update:
            table = measure_table(model, inputs, groups, counts, n, runtime, threads=config.threads, progress=update)
        tables.append(table)
        n = _solve(model, inputs, groups, scores, table, macs, goal_macs, goal_ms)
    keys = group_keys(groups)
    estimate = table.estimate({keys[k]: v for k, v in n.items()})
    measured = _measure(model, inputs, groups, scores, n, config)
    for _ in range(3):  # a latency target is checked on the real runtime, not on the estimate
        if goal_ms is None or measured["pruned"] <= config.target_latency * measured["unpruned"]:
            break
        goal_ms *= config.target_latency * measured["unpruned"] / measured["pruned"]
        n = _solve(model, inputs, groups, scores, table, macs, goal_macs, goal_ms)
        estimate = table.estimate({keys[k]: v for k, v in n.items()})
        measured = _measure(model, inputs, groups, scores, n, config)
    report.latency = {
        "runtime": runtime, "threads": config.threads, "batch_size": int(inputs[0].shape[0]) if inputs[0].dim() else 1,
        "estimated_ms": estimate, "measured_ms": measured, "kept": {keys[k]: v for k, v in n.items()},
        "tables": [t.to_dict() for t in tables],
    }
    return counts_to_removal(groups, scores, n)


def _measure(model: nn.Module, inputs: tuple[torch.Tensor, ...], groups: list[ChannelGroup],
             scores: list[torch.Tensor], n: Counts, config: StructuredPrune) -> dict[str, Any]:
    pruned = _pruned(model, groups, scores, n)
    return time_variants({"unpruned": model, "pruned": pruned}, inputs, str(config.runtime),
                         threads=config.threads, rounds=21)
