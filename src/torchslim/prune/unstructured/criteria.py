"""What to remove: importance scores per weight and the masks that keep exact counts.

Scores are per element (higher = more important). A weight that a mask already removed scores
-1, below every real score, so re-pruning only ever grows a mask. Ties are broken by position
(a stable sort), so the number of removed weights is exactly ``round(sparsity * numel)``: per
layer with ``scope="layer"``, over all targeted weights together with ``scope="global"``.

Example:
    >>> import torch
    >>> from torchslim.prune.unstructured.criteria import smallest_k_mask
    >>> smallest_k_mask(torch.tensor([0.5, 0.1, 0.1, 2.0]), 2)
    tensor([ True, False, False,  True])
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.prune.unstructured.masks import PARAM, get_mask

SCOPES = ("global", "layer")


def count_to_prune(sparsity: float, numel: int) -> int:
    """``round(sparsity * numel)`` with halves rounded up (not to even).

    Example:
        >>> count_to_prune(0.9, 1000), count_to_prune(0.5, 5)
        (900, 3)
    """
    return min(numel, int(math.floor(sparsity * numel + 0.5)))


def _already_pruned(module: nn.Module, scores: torch.Tensor) -> torch.Tensor:
    mask = get_mask(module)
    return scores if mask is None else scores.masked_fill(~mask, -1.0)


def magnitude_scores(module: nn.Module) -> torch.Tensor:
    """``|weight|`` (the effective, masked weight); weights already pruned score -1.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[-3.0, 0.5]]))
        >>> magnitude_scores(lin)
        tensor([[3.0000, 0.5000]])
    """
    w = getattr(module, PARAM).detach()
    return _already_pruned(module, w.abs().float())


def random_scores(module: nn.Module, generator: torch.Generator) -> torch.Tensor:
    """Uniform random scores (the random baseline); weights already pruned score -1.

    Example:
        >>> import torch
        >>> s = random_scores(torch.nn.Linear(3, 2), torch.Generator().manual_seed(0))
        >>> s.shape, bool(((s >= 0) & (s < 1)).all())
        (torch.Size([2, 3]), True)
    """
    w = getattr(module, PARAM)
    s = torch.rand(w.shape, generator=generator).to(w.device)
    return _already_pruned(module, s)


def smallest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A bool mask of ``scores``' shape with exactly the ``k`` lowest scores False (ties: the
    earlier position is removed first).

    Example:
        >>> import torch
        >>> smallest_k_mask(torch.tensor([[3.0, 1.0], [2.0, 0.0]]), 2)
        tensor([[ True, False],
                [ True, False]])
    """
    flat = scores.reshape(-1)
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        keep[torch.argsort(flat, stable=True)[:k]] = False
    return keep.reshape(scores.shape)


def sparsity_masks(scores: Mapping[str, torch.Tensor], sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    """Masks removing the lowest-scored ``sparsity`` fraction of weights: of each layer
    (``scope="layer"``) or of all layers pooled (``scope="global"``).

    Example:
        >>> import torch
        >>> s = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([10.0, 20.0])}
        >>> sparsity_masks(s, 0.5, "global")
        {'a': tensor([False, False]), 'b': tensor([True, True])}
        >>> sparsity_masks(s, 0.5, "layer")
        {'a': tensor([False,  True]), 'b': tensor([False,  True])}
    """
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "layer":
        return {n: smallest_k_mask(s, count_to_prune(sparsity, s.numel())) for n, s in scores.items()}
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).float().cpu() for n in names])  # (N_total,)
    keep = smallest_k_mask(flat, count_to_prune(sparsity, flat.numel()))
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start:start + size].reshape(scores[n].shape).to(scores[n].device)
        start += size
    return out


def nm_mask(scores: torch.Tensor, n: int, m: int, name: str = "layer") -> torch.Tensor:
    """Keep the ``n`` highest scores in every group of ``m`` consecutive input weights (2:4 as
    sparse tensor cores expect). Groups run along the input dimension: ``(out, in)`` for a
    linear weight; for a convolution ``(out, in, *kernel)`` the input channels at each kernel
    position (the layout of an implicit GEMM over channels-last data), so ``in % m == 0``.

    Example:
        >>> import torch
        >>> nm_mask(torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.1, 0.2, 0.4, 0.3]]), 2, 4)
        tensor([[ True, False,  True, False, False, False,  True,  True]])
    """
    if scores.dim() < 2:
        raise ConfigError(f"N:M pruning needs a weight with an input dimension; {name!r} has shape {tuple(scores.shape)}")
    cin = scores.shape[1]
    if cin % m:
        raise ConfigError(
            f"N:M pruning ({n}:{m}) groups {m} consecutive input weights, but layer {name!r} has "
            f"{cin} inputs (weight shape {tuple(scores.shape)}), not a multiple of {m}; "
            f"leave it out with ignore=[{name!r}]"
        )
    moved = scores.movedim(1, -1)  # (out, *kernel, in)
    groups = moved.reshape(-1, m)  # (G, m)
    order = torch.argsort(groups, dim=1, descending=True, stable=True)  # best first
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, order[:, :n], True)
    return keep.reshape(moved.shape).movedim(-1, 1).contiguous()
