"""The pre-flight report of structured pruning: what can be pruned, what is pinned and why.

Example:
    >>> import torch
    >>> from torchslim.prune.structured.engine import preflight
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> "0:channels" in preflight(net, torch.zeros(1, 4)).summary()
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from torchslim.core.graph import ChannelGroup


@dataclass
class PruneReport:
    """Prunable ``groups``; ``pinned`` group name -> reasons; ``unsupported`` ops (left as they
    are); after pruning, ``removed`` group name -> units removed and the ``sparsity`` used;
    latency-aware pruning adds ``latency`` (the measured table, the units kept per group, the
    estimated latency and the measured latency before and after, in ms)."""

    groups: list[ChannelGroup]
    pinned: dict[str, list[str]] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)
    sparsity: float | None = None
    latency: dict[str, Any] | None = None

    def summary(self) -> str:
        """A few lines a person can read.

        Example:
            >>> PruneReport(groups=[], unsupported=["im2col.default in patchify"]).summary()
            'prunable: (none)\\nunsupported ops (left unpruned): im2col.default in patchify'
        """
        lines = ["prunable: " + (", ".join(f"{g.name()} ({g.units})" for g in self.groups) or "(none)")]
        if self.pinned:
            lines.append("pinned: " + "; ".join(f"{k}: {v[0]}" for k, v in self.pinned.items()))
        if self.unsupported:
            lines.append("unsupported ops (left unpruned): " + ", ".join(self.unsupported))
        if self.removed:
            lines.append("removed: " + ", ".join(f"{k} -{v}" for k, v in self.removed.items()))
        if self.latency:
            ms = self.latency["measured_ms"]
            lines.append(f"latency on {self.latency['runtime']}: {ms['unpruned']:.3f} -> {ms['pruned']:.3f} ms measured "
                         f"({ms['unpruned'] / ms['pruned']:.2f}x; table estimate {self.latency['estimated_ms']:.3f} ms)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form.

        Example:
            >>> PruneReport(groups=[]).to_dict()["groups"]
            []
        """
        return {"groups": [{"name": g.name(), "units": g.units, "heads": g.is_heads} for g in self.groups],
                "pinned": self.pinned, "unsupported": self.unsupported, "removed": self.removed,
                "sparsity": self.sparsity, "latency": self.latency}


def leaves_shape(out: Any) -> list[tuple[int, ...]]:
    """Shapes of every tensor in a (nested) model output.

    Example:
        >>> leaves_shape((torch.zeros(2, 3), [torch.zeros(1)]))
        [(2, 3), (1,)]
    """
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return [tuple(t.shape) for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
