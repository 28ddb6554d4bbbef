"""Surgery: physically remove units of channel groups (parameter tensors shrink) and fix the
modules' size attributes with the helpers shared in :mod:`torchslim.core.surgery`.

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
from torchslim.core.surgery import fix_sizes, shrink, tensor_sizes, update_heads

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


def remove_units(model: nn.Module, groups: Removal) -> dict[str, Any]:
    """Remove ``units`` of each group from ``model`` in place; returns what changed per module.

    Output shapes stay the same: groups never include a model output dimension.
    """
    drop = removed_indices(groups)
    old = {n: tensor_sizes(m) for n, m in model.named_modules()}
    for name, dims in drop.items():
        owner_name, _, attr = name.rpartition(".")
        owner = get_module(model, owner_name)
        with torch.no_grad():
            if attr in owner._parameters and owner._parameters[attr] is not None:
                p = owner._parameters[attr]
                owner._parameters[attr] = nn.Parameter(shrink(p.data, dims), requires_grad=p.requires_grad)
            elif attr in owner._buffers and owner._buffers[attr] is not None:
                owner._buffers[attr] = shrink(owner._buffers[attr], dims)
    changed = {}
    for name, module in model.named_modules():
        fix_sizes(module, old[name])
        if tensor_sizes(module) != old[name]:
            changed[name] = tensor_sizes(module)
    for g, units in groups.values():
        if g.is_heads and units:
            for mod_name, head_dim in g.head_splits:
                update_heads(get_module(model, mod_name), g.units, g.units - len(units), head_dim)
    return changed
