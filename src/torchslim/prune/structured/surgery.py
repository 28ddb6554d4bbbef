"""Surgery: physically remove units of channel groups (parameter tensors shrink) and fix the
modules' size attributes (``in_features``, ``out_channels``, ``groups``, ``num_features``,
``normalized_shape``, ``embedding_dim``, attention head counts).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.core.graph import build_graph
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> g = build_graph(net, (torch.zeros(1, 4),)).groups[0]
    >>> _ = remove_units(net, {id(g): (g, [0, 1, 2])})
    >>> net[0].out_features, net[2].in_features, net(torch.zeros(1, 4)).shape
    (5, 5, torch.Size([1, 2]))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchslim.core.graph import ChannelGroup
from torchslim.core.modules import get_module

Removal = dict[int, tuple[ChannelGroup, list[int]]]  # id(group) -> (group, units to remove)


def removed_indices(groups: Removal) -> dict[str, dict[int, set[int]]]:
    """param name -> dim -> indices to drop, from every group's removed units."""
    drop: dict[str, dict[int, set[int]]] = {}
    for g, units in groups.values():
        for m in g.members:
            idx = drop.setdefault(m.param, {}).setdefault(m.dim, set())
            for u in units:
                idx.update(range(m.offset + u * m.k, m.offset + (u + 1) * m.k))
    return drop


def _shrink(t: torch.Tensor, dims: dict[int, set[int]]) -> torch.Tensor:
    for d, drop in dims.items():
        keep = torch.tensor([i for i in range(t.shape[d]) if i not in drop], dtype=torch.long)
        t = t.index_select(d, keep)
    return t.contiguous()


def remove_units(model: nn.Module, groups: Removal) -> dict[str, Any]:
    """Remove ``units`` of each group from ``model`` in place; returns what changed per module.

    Output shapes stay the same: groups never include a model output dimension.
    """
    drop = removed_indices(groups)
    old = {n: _sizes(m) for n, m in model.named_modules()}
    for name, dims in drop.items():
        owner_name, _, attr = name.rpartition(".")
        owner = get_module(model, owner_name)
        with torch.no_grad():
            if attr in owner._parameters and owner._parameters[attr] is not None:
                p = owner._parameters[attr]
                owner._parameters[attr] = nn.Parameter(_shrink(p.data, dims), requires_grad=p.requires_grad)
            elif attr in owner._buffers and owner._buffers[attr] is not None:
                owner._buffers[attr] = _shrink(owner._buffers[attr], dims)
    changed = {}
    for name, module in model.named_modules():
        _fix_sizes(module, old[name])
        if _sizes(module) != old[name]:
            changed[name] = _sizes(module)
    for g, units in groups.values():
        if g.is_heads and units:
            for mod_name, head_dim in g.head_splits:
                _update_heads(get_module(model, mod_name), g.units, g.units - len(units), head_dim)
    return changed


def _sizes(m: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in [*m._parameters.items(), *m._buffers.items()] if v is not None}


def _fix_sizes(m: nn.Module, old: dict[str, tuple[int, ...]]) -> None:
    w = getattr(m, "weight", None)
    if isinstance(m, nn.Linear):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
        old_out = old["weight"][0]
        if m.groups > 1:  # depthwise: one group per input channel, m outputs per group
            mult = old_out // m.groups
            m.groups = m.weight.shape[0] // mult
        m.out_channels = m.weight.shape[0]
        m.in_channels = m.weight.shape[1] * m.groups
    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
        ref = w if w is not None else m.running_mean
        if ref is not None:
            m.num_features = ref.shape[0]
    elif isinstance(m, nn.LayerNorm) and w is not None:
        m.normalized_shape = tuple(w.shape)
    elif isinstance(m, nn.Embedding):
        m.num_embeddings, m.embedding_dim = m.weight.shape


def _update_heads(m: nn.Module, old_heads: int, new_heads: int, head_dim: int) -> None:
    """Update the integer attributes the attention module's forward may read: the head count
    and the total width (heads * head_dim)."""
    for k, v in list(vars(m).items()):
        if k.startswith("_") or isinstance(v, bool) or not isinstance(v, int):
            continue
        if v == old_heads and (old_heads != head_dim or "head" in k and "dim" not in k and "size" not in k):
            setattr(m, k, new_heads)
        elif v == old_heads * head_dim and head_dim > 1:
            setattr(m, k, new_heads * head_dim)
