"""Latency-aware allocation: how many units each channel group keeps.

Greedy on measured marginal value, as HALP and NetAdapt do. From full width, each step moves
one group down to one of its lower candidate counts, picking the move with the largest

    (latency saved / T0 + tie * MACs saved / M0) / (importance lost / I0)

until the MACs target (and/or the latency target) is met; then moves back up that keep the
targets (most importance regained per time and MACs added) undo any overshoot. Latency comes from the measured
:class:`~torchslim.prune.structured.latency.LatencyTable` (additive over groups), MACs from a
per-layer model (a layer's MACs scale with the kept fraction of each of its weight's pruned
dims), importance from the criterion's scores (the lowest-scored units of a group go first).
A move may jump over counts that are slow on the runtime (ONNX Runtime's 16-channel blocks),
so the allocator keeps block-aligned counts where they matter without being told. ``tie``
ranks moves that save no measurable time by the MACs they remove.

Example:
    >>> import torch
    >>> from torchslim.core.graph import ChannelGroup, Member
    >>> a = ChannelGroup(0, 4, [Member("a.weight", 0, 0, 1)])
    >>> b = ChannelGroup(1, 4, [Member("b.weight", 0, 0, 1)])
    >>> macs = MacsModel(base=0, layers=[(100, [(a, 1)]), (100, [(b, 1)])])
    >>> table = LatencyTable("torch", 1, {"a:channels": 4, "b:channels": 4}, 10.0,
    ...                      counts={"a:channels": [2, 4], "b:channels": [2, 4]},
    ...                      ms={"a:channels": [6.0, 10.0], "b:channels": [9.9, 10.0]})
    >>> scores = [torch.ones(4), torch.ones(4)]
    >>> got = allocate([a, b], scores, table.counts_by_id([a, b]), table, macs, goal_macs=150)
    >>> got[id(a)], got[id(b)]  # a saves 4 ms, b 0.1 ms for the same MACs and importance
    (2, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.graph import ChannelGroup
from torchslim.measure.macs import count_macs
from torchslim.prune.structured.latency import LatencyTable, group_keys

Counts = dict[int, int]  # id(group) -> kept units


@dataclass
class MacsModel:
    """``base`` MACs that no group changes, plus per-layer ``(macs, [(group, power), ...])``: the
    layer's MACs at full width times the product of ``(kept / units) ** power`` of its groups."""

    base: int
    layers: list[tuple[int, list[tuple[ChannelGroup, int]]]]

    def __call__(self, counts: Counts) -> float:
        total = float(self.base)
        for macs, gs in self.layers:
            f = 1.0
            for g, p in gs:
                f *= (counts.get(id(g), g.units) / g.units) ** p
            total += macs * f
        return total

    @classmethod
    def of(cls, model: nn.Module, inputs: tuple[torch.Tensor, ...], groups: list[ChannelGroup]) -> MacsModel:
        """Per-layer MACs of ``model`` and the groups that prune each layer's weight."""
        total, stats = count_macs(model, inputs)
        by_param: dict[str, list[ChannelGroup]] = {}
        for g in groups:
            for m in g.members:
                by_param.setdefault(m.param, []).append(g)
        layers, tied = [], 0
        for s in stats:
            gs = by_param.get(f"{s.name}.weight" if s.name else "weight", [])
            if s.macs and gs:
                powers: dict[int, tuple[ChannelGroup, int]] = {}
                for g in gs:
                    powers[id(g)] = (g, powers.get(id(g), (g, 0))[1] + 1)
                layers.append((s.macs, list(powers.values())))
                tied += s.macs
        return cls(base=total - tied, layers=layers)


def _cum(scores: torch.Tensor) -> list[float]:
    """Importance lost when the k lowest-scored units go, for k = 0..units."""
    return [0.0, *torch.cumsum(scores.double().sort().values, 0).tolist()]


def allocate(groups: list[ChannelGroup], scores: list[torch.Tensor], counts: dict[int, list[int]],
             table: LatencyTable, macs: MacsModel, *, goal_macs: float | None = None,
             goal_ms: float | None = None, tie: float = 0.1) -> Counts:
    """Kept units per group (``id(group)`` -> count) meeting ``goal_macs`` (MACs model) and
    ``goal_ms`` (table estimate); see the module docstring. Stops early (best effort) when no
    group can go lower."""
    n: Counts = {id(g): g.units for g in groups}
    cum = {id(g): _cum(s) for g, s in zip(groups, scores, strict=True)}
    names = group_keys(groups)
    total_imp = max(sum(c[-1] for c in cum.values()), 1e-12)
    t0 = max(table.estimate({names[k]: v for k, v in n.items()}), 1e-9)
    m0 = max(macs(n), 1.0)

    def est(c: Counts) -> float:
        return table.estimate({names[k]: v for k, v in c.items()})

    def met(c: Counts) -> bool:
        return (goal_macs is None or macs(c) <= goal_macs) and (goal_ms is None or est(c) <= goal_ms)

    def step(up: bool) -> bool:
        """Apply the best single move down (toward the goals) or up (back, keeping them)."""
        best: tuple[float, int, int] | None = None
        now_ms, now_macs = est(n), macs(n)
        for g in groups:
            gid, cur = id(g), n[id(g)]
            for m in counts[gid]:
                if (m > cur) != up or m == cur:
                    continue
                trial = {**n, gid: m}
                if up and not met(trial):
                    continue
                sign = -1.0 if up else 1.0  # down: time and MACs saved; up: added
                change = sign * ((now_ms - est(trial)) / t0 + tie * (now_macs - macs(trial)) / m0)
                d_imp = abs(cum[gid][g.units - m] - cum[gid][g.units - cur]) / total_imp
                value = (d_imp / max(change, 1e-9)) if up else change / (d_imp + 1e-9)
                if best is None or value > best[0]:
                    best = (value, gid, m)
        if best is not None:
            n[best[1]] = best[2]
        return best is not None

    while not met(n) and step(up=False):
        pass
    while met(n) and step(up=True):  # give back what the last (jumping) moves overshot
        pass
    return n


def counts_to_removal(groups: list[ChannelGroup], scores: list[torch.Tensor], counts: Counts) -> dict[int, tuple[ChannelGroup, list[int]]]:
    """The removal that leaves each group its ``counts`` highest-scored units.

    Example:
        >>> from torchslim.core.graph import ChannelGroup
        >>> g = ChannelGroup(0, 3, [])
        >>> counts_to_removal([g], [torch.tensor([0.5, 0.1, 0.9])], {id(g): 2})[id(g)][1]
        [1]
    """
    out = {}
    for g, s in zip(groups, scores, strict=True):
        k = g.units - counts.get(id(g), g.units)
        if k > 0:
            out[id(g)] = (g, sorted(s.argsort()[:k].tolist()))
    return out
