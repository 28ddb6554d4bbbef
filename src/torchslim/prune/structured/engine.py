"""The ``StructuredPrune`` handler: graph -> pre-flight -> importance -> selection -> surgery.

Example:
    >>> import torch
    >>> from torch import nn
    >>> import torchslim as slim
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> small = slim.prune(net, slim.StructuredPrune(sparsity=0.5), example_inputs=torch.zeros(1, 4))
    >>> small[0].out_features, small(torch.zeros(3, 4)).shape
    (8, torch.Size([3, 2]))
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.errors import ConfigError
from torchslim.core.graph import ChannelGroup, build_graph
from torchslim.core.inputs import as_tuple
from torchslim.core.targets import Target, check_names_exist, select
from torchslim.measure.macs import count_macs
from torchslim.prune.structured.aware import latency_aware_removal
from torchslim.prune.structured.config import StructuredPrune
from torchslim.prune.structured.importance import group_scores
from torchslim.prune.structured.report import PruneReport, leaves_shape
from torchslim.prune.structured.surgery import Removal, remove_units


def preflight(model: nn.Module, example_inputs: Any, config: StructuredPrune | None = None) -> PruneReport:
    """What structured pruning would do, without changing ``model``: the prunable groups, the
    pinned ones and why, and the ops it has no rule for (left unpruned).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> [g.name() for g in preflight(net, torch.zeros(1, 4)).groups]
        ['0:channels']
    """
    config = config or StructuredPrune()
    inputs = as_tuple(example_inputs)
    model_eval = copy.deepcopy(model).eval()
    graph = build_graph(model_eval, inputs)
    report = PruneReport(groups=[], pinned=dict(graph.pinned), unsupported=sorted(set(graph.unsupported)))
    ignored = _ignored_params(model, config.ignore)
    for g in graph.groups:
        if any(m.dim == 0 and m.param in ignored for m in g.members):
            report.pinned[g.name()] = ["ignored by config"]
        elif g.is_heads and not config.heads:
            report.pinned[g.name()] = ["heads=False"]
        else:
            report.groups.append(g)
    _trial(model_eval, inputs, report)
    _explain_mha(model_eval, report)
    return report


MHA_PINNED = ("nn.MultiheadAttention derives head_dim from its input width (embed_dim), so its heads "
              "cannot shrink without the model width; prune split_attention(model) to remove heads")


def _explain_mha(model: nn.Module, report: PruneReport) -> None:
    """Say why the heads of ``nn.MultiheadAttention`` modules stay pinned (their packed q/k/v
    projection is indexed, which the graph reports in less helpful words)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            for group, reasons in report.pinned.items():
                if (group.startswith(f"{name}:") or any(f" in {name}:" in r for r in reasons)) and MHA_PINNED not in reasons:
                    reasons.insert(0, MHA_PINNED)


def _ignored_params(model: nn.Module, patterns: tuple[str, ...]) -> set[str]:
    if not patterns:
        return set()
    target = Target(include=patterns)
    check_names_exist(model, target, where="StructuredPrune.ignore")
    names: set[str] = set()
    for p in patterns:
        chosen = select(model, Target(include=(p,)))
        if not chosen:
            raise ConfigError(f"StructuredPrune.ignore: pattern {p!r} matches no module of {type(model).__name__}")
        for n, m in chosen:
            names.update(f"{n}.{pn}" for pn, _ in m.named_parameters(recurse=False))
    return names


def _trial(model: nn.Module, inputs: tuple[torch.Tensor, ...], report: PruneReport) -> None:
    """Remove one unit of every group on a copy and run it; groups whose removal breaks the
    model (a reshape to a hard-coded size, a module attribute we cannot see) are pinned."""
    with torch.no_grad():
        want = leaves_shape(model(*inputs))

    def works(groups: list[ChannelGroup]) -> str | None:
        trial = copy.deepcopy(model)
        try:
            remove_units(trial, {id(g): (g, [g.units - 1]) for g in groups})
            with torch.no_grad():
                got = leaves_shape(trial(*inputs))
        except Exception as e:  # noqa: BLE001 - the reason is reported
            return f"removing a unit breaks the forward pass: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        return None if got == want else f"removing a unit changes the output shapes {want} -> {got}"

    if not report.groups or works(report.groups) is None:
        return
    keep = []
    for g in report.groups:
        why = works([g])
        if why is None:
            keep.append(g)
        else:
            report.pinned[g.name()] = [why]
    report.groups = keep


def select_units(groups: list[ChannelGroup], scores: list[torch.Tensor], sparsity: float, config: StructuredPrune) -> Removal:
    """Which units to remove: the lowest scores per group (layer scope), or overall (global
    scope; attention heads are ranked among heads, channels among channels)."""
    if sparsity <= 0:
        return {}
    counts = []
    if config.scope == "layer":
        counts = [int(sparsity * g.units) for g in groups]
    else:  # one ranking per kind of unit: heads with heads, channels with channels
        threshold = {}
        for kind in (True, False):
            flat = torch.cat([s for g, s in zip(groups, scores, strict=True) if g.is_heads == kind] or [torch.zeros(0)])
            n = int(sparsity * flat.numel())
            threshold[kind] = flat.sort().values[n - 1] if n > 0 else -math.inf
        counts = [int((s <= threshold[g.is_heads]).sum()) for g, s in zip(groups, scores, strict=True)]
    removal: Removal = {}
    for g, s, n in zip(groups, scores, counts, strict=True):
        n = min(n, int(config.max_sparsity * g.units) if config.scope == "global" else n, g.units - 1)
        if config.round_to and not g.is_heads:
            keep = max(config.round_to, round((g.units - n) / config.round_to) * config.round_to)
            n = max(0, g.units - min(keep, g.units))
        if n > 0:
            removal[id(g)] = (g, sorted(s.argsort()[:n].tolist()))
    return removal


def _apply(model: nn.Module, report: PruneReport, scores: list[torch.Tensor], sparsity: float,
           config: StructuredPrune) -> nn.Module:
    removal = select_units(report.groups, scores, sparsity, config)
    report.removed = {g.name(): len(u) for g, u in removal.values()}
    remove_units(model, removal)
    return model


def _search(model: nn.Module, inputs: tuple[torch.Tensor, ...], report: PruneReport,
            scores: list[torch.Tensor], config: StructuredPrune) -> float:
    """The smallest sparsity whose pruned model meets the MACs or parameter target (bisection)."""
    def measure(m: nn.Module) -> int:
        if config.target_macs is not None:
            return count_macs(m, inputs)[0]
        return sum(p.numel() for p in m.parameters())

    goal = (config.target_macs or config.target_params or 1.0) * measure(model)
    lo, hi = 0.0, config.max_sparsity
    for _ in range(10):
        mid = (lo + hi) / 2
        trial = _apply(copy.deepcopy(model), copy.deepcopy(report), scores, mid, config)
        if measure(trial) <= goal:
            hi = mid
        else:
            lo = mid
    return hi


@register_handler(StructuredPrune)
def structured_prune(model: nn.Module, config: StructuredPrune, *, example_inputs: Any = None,
                     data: Iterable[Any] | None = None, **options: Any) -> nn.Module:
    """Handler of :class:`StructuredPrune` (called by ``prune``); the report is left on
    ``model.slim_prune_report``."""
    if example_inputs is None:
        raise ConfigError("StructuredPrune needs example_inputs= (a tensor or a tuple of tensors) to capture the graph")
    if options:
        raise ConfigError(f"StructuredPrune: unknown option(s) {sorted(options)}; known: data")
    inputs = as_tuple(example_inputs)
    was = model.training
    model.eval()
    report = preflight(model, inputs, config)
    if any("no rule" in r for reasons in report.pinned.values() for r in reasons):
        warnings.warn(f"structured pruning left parts unpruned: {report.summary()}", stacklevel=3)
    scores = group_scores(model, report.groups, config.importance, data=data, seed=config.seed)
    if config.runtime is not None:
        removal = latency_aware_removal(model, inputs, report, scores, config)
        report.removed = {g.name(): len(u) for g, u in removal.values()}
        remove_units(model, removal)
    else:
        sparsity = config.sparsity
        if config.target_macs is not None or config.target_params is not None:
            sparsity = _search(model, inputs, report, scores, config)
        report.sparsity = sparsity
        _apply(model, report, scores, sparsity, config)
    model.train(was)
    model.slim_prune_report = report
    return model
