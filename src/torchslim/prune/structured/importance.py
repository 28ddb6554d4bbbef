"""Importance criteria: a score per unit of each channel group (higher = keep).

Criteria only read weights (and gradients, for Taylor); they never change the model, so
*what* to remove stays apart from *how* (:mod:`torchslim.prune.structured.surgery`).

Magnitude criteria (L1, L2, BN scale): each member parameter gives a per-unit score (the slices
of that parameter the unit owns), normalised by its mean over the group's units, and the group
score is the mean over members. Taylor (:func:`taylor_scores`) estimates, from gradients on
data, how much the loss (or the output) changes when a unit is removed.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.core.graph import build_graph
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0, 1.0], [0.1, 0.1], [2.0, 2.0]]))
    ...     _ = net[2].weight.fill_(1.0)
    >>> g = build_graph(net, (torch.zeros(1, 2),)).groups[0]
    >>> scores = group_scores(net, [g], "l1")[0]
    >>> int(scores.argmin())
    1
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.graph import ChannelGroup, Member
from torchslim.core.inputs import batch_of, first_tensor
from torchslim.prune.structured.config import IMPORTANCES

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def unit_slices(t: torch.Tensor, m: Member, units: int) -> torch.Tensor:
    """The member's slices of ``t`` as a (units, -1) matrix."""
    moved = t.detach().movedim(m.dim, 0)  # (size_dim, ...)
    seg = moved[m.offset: m.offset + units * m.k]  # (units*k, ...)
    return seg.reshape(units, -1)  # (units, k * rest)


def _member_score(t: torch.Tensor, m: Member, units: int, how: str) -> torch.Tensor:
    s = unit_slices(t, m, units).float()  # (units, n)
    if how == "l1":
        return s.abs().sum(1)
    return s.pow(2).sum(1).sqrt()  # l2


def _combine(scores: list[torch.Tensor], units: int) -> torch.Tensor:
    if not scores:
        return torch.ones(units)
    normed = [s / s.mean().clamp_min(1e-12) for s in scores]
    return torch.stack(normed).mean(0)  # (units,)


def prediction(out: Any) -> torch.Tensor:
    """The tensor a criterion reads from a model output (Hugging Face outputs: element 0)."""
    if hasattr(out, "to_tuple") and not isinstance(out, torch.Tensor):
        out = out.to_tuple()
    return first_tensor(out)


def taylor_scores(model: nn.Module, groups: list[ChannelGroup], data: Iterable[Any], batches: int = 4,
                  seed: int = 0) -> list[torch.Tensor]:
    """First-order Taylor importance of whole units (Molchanov et al., 2019): per batch, the
    estimated loss change of removing a unit is ``sum(w * dL/dw)`` over every parameter slice
    it owns; its square is accumulated over ``batches`` batches.

    Items ``(x, y)`` use the cross-entropy loss. Unlabelled items (``x`` or ``(x,)``) use a random
    projection of the output, ``L = <out, r>`` with ``r ~ N(0, I)``: the expected square of the
    first-order change is then the squared norm of the change of the output (embeddings,
    hidden states), whose gradient at the unpruned model is not zero.

    Example:
        >>> import torch
        >>> from torchslim.core.graph import build_graph
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> g = build_graph(net, (torch.zeros(1, 3),)).groups
        >>> taylor_scores(net, g, [torch.randn(8, 3)])[0].shape
        torch.Size([4])
    """
    params = dict(model.named_parameters())
    acc = [torch.zeros(g.units) for g in groups]
    gen = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    seen = 0
    for item in data:
        if seen >= batches:
            break
        inputs, targets = batch_of(item)
        model.zero_grad(set_to_none=True)
        out = prediction(model(*inputs))
        if targets is not None:
            loss = F.cross_entropy(out, targets)
        else:
            loss = (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum() / out.shape[0]
        loss.backward()
        for a, g in zip(acc, groups, strict=True):
            unit = torch.zeros(g.units)
            for m in g.members:
                p = params.get(m.param)
                if p is not None and p.grad is not None:  # buffers (running statistics) do not vote
                    unit += unit_slices(p.detach() * p.grad, m, g.units).sum(1).float()
            a += unit.pow(2)
        seen += 1
    model.zero_grad(set_to_none=True)
    model.train(was)
    if seen == 0:
        raise ConfigError("importance='taylor' needs data=: an iterable of (x, y) batches (or unlabelled x); got none")
    return acc


def group_scores(model: nn.Module, groups: list[ChannelGroup], importance: str, *,
                 data: Iterable[Any] | None = None, seed: int = 0, batches: int = 4) -> list[torch.Tensor]:
    """One score tensor of shape (units,) per group; higher means more important.

    Example:
        >>> import torch
        >>> from torchslim.core.graph import build_graph
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        >>> g = build_graph(net, (torch.zeros(1, 2),)).groups
        >>> group_scores(net, g, "random")[0].shape
        torch.Size([4])
    """
    if importance not in IMPORTANCES:
        raise ConfigError(f"unknown importance {importance!r}; known: {', '.join(IMPORTANCES)}")
    tensors = dict(model.named_parameters())
    modules = dict(model.named_modules())
    if importance == "random":
        gen = torch.Generator().manual_seed(seed)
        return [torch.rand(g.units, generator=gen) for g in groups]
    if importance == "taylor":
        if data is None:
            raise ConfigError("importance='taylor' needs data=: an iterable of (x, y) batches (or unlabelled x)")
        return taylor_scores(model, groups, data, batches, seed)
    out = []
    for g in groups:
        scores = []
        for m in g.members:
            if m.param not in tensors:
                continue  # buffers (running statistics) do not vote
            owner = modules.get(m.param.rpartition(".")[0])
            if importance == "bn_scale":
                if isinstance(owner, NORMS) and m.param.endswith("weight"):
                    scores.append(_member_score(tensors[m.param], m, g.units, "l1"))
                continue
            if isinstance(owner, NORMS) or m.param.endswith("bias"):
                continue  # weights decide; norms and biases follow
            scores.append(_member_score(tensors[m.param], m, g.units, importance))
        if importance == "bn_scale" and not scores:  # no norm in this group: fall back to L2
            scores = [_member_score(tensors[m.param], m, g.units, "l2") for m in g.members
                      if m.param in tensors and not m.param.endswith("bias")]
        out.append(_combine(scores, g.units))
    return out
