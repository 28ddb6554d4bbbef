"""Shared helpers for techniques that physically shrink tensors (structured pruning, width
students): cut index sets out of a tensor, then make each module's size attributes
(``in_features``, ``out_channels``, ``groups``, ``num_features``, ``num_groups``,
``normalized_shape``, ``embedding_dim``, attention head counts) agree with its new tensors.

Example:
    >>> import torch
    >>> from torch import nn
    >>> lin = nn.Linear(4, 3)
    >>> old = tensor_sizes(lin)
    >>> lin.weight = nn.Parameter(shrink(lin.weight.data, {0: {2}}))
    >>> lin.bias = nn.Parameter(shrink(lin.bias.data, {0: {2}}))
    >>> fix_sizes(lin, old)
    >>> lin.out_features, lin(torch.zeros(1, 4)).shape
    (2, torch.Size([1, 2]))
"""

from __future__ import annotations

import torch
from torch import nn


def shrink(t: torch.Tensor, drop: dict[int, set[int]]) -> torch.Tensor:
    """``t`` without the indices ``drop[d]`` along each dimension ``d`` (a new contiguous tensor).

    Example:
        >>> shrink(torch.arange(6).reshape(2, 3), {1: {0, 2}}).tolist()
        [[1], [4]]
    """
    for d, gone in drop.items():
        keep = torch.tensor([i for i in range(t.shape[d]) if i not in gone], dtype=torch.long, device=t.device)
        t = t.index_select(d, keep)
    return t.contiguous()


def tensor_sizes(m: nn.Module) -> dict[str, tuple[int, ...]]:
    """The shapes of a module's own parameters and buffers (what :func:`fix_sizes` compares with).

    Example:
        >>> tensor_sizes(torch.nn.Linear(2, 3))
        {'weight': (3, 2), 'bias': (3,)}
    """
    return {k: tuple(v.shape) for k, v in [*m._parameters.items(), *m._buffers.items()] if v is not None}


def fix_sizes(m: nn.Module, old: dict[str, tuple[int, ...]]) -> None:
    """Set ``m``'s size attributes from its (already shrunk) tensors; ``old`` is
    :func:`tensor_sizes` of ``m`` before they shrank (grouped layers keep their per-group size:
    whole groups were removed).

    Example:
        >>> conv = torch.nn.Conv2d(8, 8, 3, groups=8)
        >>> old = tensor_sizes(conv)
        >>> conv.weight = torch.nn.Parameter(conv.weight.data[:4])
        >>> conv.bias = torch.nn.Parameter(conv.bias.data[:4])
        >>> fix_sizes(conv, old)
        >>> conv.groups, conv.in_channels, conv.out_channels
        (4, 4, 4)
    """
    w = getattr(m, "weight", None)
    if isinstance(m, nn.Linear):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:  # weight (C_out, C_in/G, *k)
        if m.groups > 1:  # whole groups were removed: each keeps C_out/G outputs
            m.groups = m.weight.shape[0] // (old["weight"][0] // m.groups)
        m.out_channels = m.weight.shape[0]
        m.in_channels = m.weight.shape[1] * m.groups
    elif isinstance(m, nn.modules.conv._ConvNd):  # transposed: weight (C_in, C_out/G, *k)
        if m.groups > 1:
            m.groups = m.weight.shape[0] // (old["weight"][0] // m.groups)
        m.in_channels = m.weight.shape[0]
        m.out_channels = m.weight.shape[1] * m.groups
    elif isinstance(m, nn.GroupNorm) and w is not None:
        m.num_groups = w.shape[0] // (old["weight"][0] // m.num_groups)
        m.num_channels = w.shape[0]
    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
        ref = w if w is not None else m.running_mean
        if ref is not None:
            m.num_features = ref.shape[0]
    elif isinstance(m, nn.LayerNorm) and w is not None:
        m.normalized_shape = tuple(w.shape)
    elif isinstance(m, nn.Embedding):
        m.num_embeddings, m.embedding_dim = m.weight.shape


def update_heads(m: nn.Module, old_heads: int, new_heads: int, head_dim: int) -> None:
    """Update the integer attributes an attention module's forward may read after whole heads
    were removed: the head count (an attribute equal to ``old_heads``; when that number equals
    ``head_dim``, only one named like ``num_heads``) and the total width
    (``old_heads * head_dim``, e.g. ``all_head_size``).

    Example:
        >>> class Attn(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.num_heads, self.head_dim, self.all_head_size = 4, 16, 64
        >>> a = Attn()
        >>> update_heads(a, 4, 3, 16)
        >>> a.num_heads, a.head_dim, a.all_head_size
        (3, 16, 48)
    """
    for k, v in list(vars(m).items()):
        if k.startswith("_") or isinstance(v, bool) or not isinstance(v, int):
            continue
        if v == old_heads and (old_heads != head_dim or "head" in k and "dim" not in k and "size" not in k):
            setattr(m, k, new_heads)
        elif v == old_heads * head_dim and head_dim > 1:
            setattr(m, k, new_heads * head_dim)
