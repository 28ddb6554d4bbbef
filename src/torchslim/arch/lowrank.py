"""Low-rank factorization by truncated SVD: one layer becomes two thinner ones.

A Linear ``W (out, in) = U S Vh`` becomes ``Linear(in, r, bias=False)`` with weight
``sqrt(S_r) Vh_r`` followed by ``Linear(r, out)`` with weight ``U_r sqrt(S_r)`` and the original
bias. A convolution is reshaped to ``(C_out, C_in*k*k)`` and becomes a k x k convolution with
``r`` output channels (same stride, padding, dilation) followed by a 1x1 convolution to
``C_out``. Both stages cost ``r * (in + out)`` weights (and MACs per output position) against
``in * out``, so a rank lowers parameters exactly when it lowers MACs.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.lowrank import low_rank_linear
    >>> layer = nn.Linear(20, 30)
    >>> pair = low_rank_linear(layer, rank=20)  # full rank: the same function
    >>> x = torch.randn(4, 20)
    >>> torch.allclose(pair(x), layer(x), atol=1e-4), pair.rank
    (True, 20)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torchslim.core.errors import ConfigError

CONVS = (nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class Replacement:
    """One replaced layer: its name, what replaced it, the rank, and weights+bias before/after."""

    name: str
    kind: str
    rank: int
    params_before: int
    params_after: int

    @property
    def ratio(self) -> float:
        """Parameters after / before."""
        return self.params_after / self.params_before


class LowRankLinear(nn.Sequential):
    """``Linear(in, r, bias=False)`` then ``Linear(r, out)``; keeps ``in_features``/``out_features``.

    Example:
        >>> from torchslim.arch.lowrank import LowRankLinear
        >>> LowRankLinear(8, 2, 4).first.weight.shape
        torch.Size([2, 8])
    """

    def __init__(self, in_features: int, rank: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = nn.Linear(in_features, rank, bias=False)  # (B, in) -> (B, r)
        self.second = nn.Linear(rank, out_features, bias=bias)  # (B, r) -> (B, out)


class LowRankConv(nn.Sequential):
    """A k x k convolution to ``rank`` channels then a 1x1 convolution to ``out_channels``.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch.lowrank import low_rank_conv
        >>> low_rank_conv(nn.Conv2d(8, 16, 3, padding=1), rank=4).first.padding
        (1, 1)
    """

    def __init__(self, first: nn.Module, second: nn.Module, rank: int) -> None:
        super().__init__()
        self.rank = rank
        self.first = first  # (B, C_in, H, W) -> (B, r, H', W')
        self.second = second  # (B, r, H', W') -> (B, C_out, H', W')


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as a 2-D ``(out, in * prod(kernel))`` matrix."""
    w = layer.weight.detach()
    return w.reshape(w.shape[0], -1)


def max_rank(layer: nn.Module) -> int:
    """The largest rank a factorization of ``layer`` can have: ``min(out, in * prod(kernel))``."""
    return min(weight_matrix(layer).shape)


def saves(layer: nn.Module, rank: int, min_saving: float = 0.0) -> bool:
    """True if a rank-``rank`` pair has fewer than ``(1 - min_saving) * out * in`` weights."""
    out_dim, in_dim = weight_matrix(layer).shape
    return rank * (in_dim + out_dim) < (1.0 - min_saving) * in_dim * out_dim


def choose_rank(
    layer: nn.Module, *, energy: float = 0.95, rank: int | None = None, param_ratio: float | None = None, name: str = "",
    singular_values: torch.Tensor | None = None,
) -> int:
    """The rank for ``layer``: ``rank`` if given (checked against :func:`max_rank`), else the
    largest rank keeping at most ``param_ratio`` of the weights, else the smallest rank whose
    singular values (the weight's, or ``singular_values`` if given, e.g. of a whitened weight)
    hold ``energy`` of the sum of squared singular values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchslim.arch.lowrank import choose_rank
        >>> layer = nn.Linear(100, 100)
        >>> choose_rank(layer, param_ratio=0.2)
        10
    """
    limit = max_rank(layer)
    if rank is not None:
        if rank > limit:
            out_dim, in_dim = weight_matrix(layer).shape
            raise ConfigError(
                f"rank {rank} is larger than layer {name!r} ({type(layer).__name__}, weight "
                f"{out_dim} x {in_dim}) allows: at most min(out, in) = {limit}"
            )
        return rank
    if param_ratio is not None:
        out_dim, in_dim = weight_matrix(layer).shape
        return max(1, min(limit, math.floor(param_ratio * in_dim * out_dim / (in_dim + out_dim))))
    if not 0.0 < energy <= 1.0:
        raise ConfigError(f"energy must be in (0, 1], got {energy}")
    s = singular_values.double() if singular_values is not None else torch.linalg.svdvals(weight_matrix(layer).double())
    kept = torch.cumsum(s**2, 0) / (s**2).sum().clamp_min(1e-300)
    return min(limit, int(torch.searchsorted(kept, torch.tensor(energy, dtype=kept.dtype) - 1e-12).item()) + 1)


SVD = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (U, S, Vh) of the weight matrix, float64


def weight_svd(layer: nn.Module) -> SVD:
    """The thin SVD of ``layer``'s weight matrix in float64; pass it as ``svd=`` to build several
    ranks of the same layer without recomputing it.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch.lowrank import weight_svd
        >>> [t.shape[-1] for t in weight_svd(nn.Linear(6, 4))]
        [4, 4, 6]
    """
    u, s, vh = torch.linalg.svd(weight_matrix(layer).double(), full_matrices=False)
    return u, s, vh


def _svd_factors(matrix: torch.Tensor, rank: int, svd: SVD | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A (out, r), B (r, in))`` with ``A @ B`` the best rank-r approximation of ``matrix``."""
    u, s, vh = svd if svd is not None else torch.linalg.svd(matrix.double(), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def low_rank_linear(layer: nn.Linear, rank: int, *, svd: SVD | None = None) -> LowRankLinear:
    """The rank-``rank`` factorization of ``layer`` (same dtype and device); ``svd`` is
    :func:`weight_svd` of ``layer`` if already computed.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch.lowrank import low_rank_linear
        >>> low_rank_linear(nn.Linear(64, 32), rank=4).second.weight.shape
        torch.Size([32, 4])
    """
    a, b = _svd_factors(layer.weight.detach(), rank, svd)
    w = layer.weight
    pair = LowRankLinear(layer.in_features, rank, layer.out_features, bias=layer.bias is not None)
    pair = pair.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        pair.first.weight.copy_(b)
        pair.second.weight.copy_(a)
        if layer.bias is not None:
            pair.second.bias.copy_(layer.bias)
    return pair


def low_rank_conv(conv: nn.Conv1d | nn.Conv2d, rank: int, *, svd: SVD | None = None) -> LowRankConv:
    """The two-stage rank-``rank`` factorization of a groups=1 convolution: k x k to ``rank``
    channels (same stride, padding, dilation, padding mode), then 1x1 to ``out_channels``;
    ``svd`` is :func:`weight_svd` of ``conv`` if already computed.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torchslim.arch.lowrank import low_rank_conv
        >>> conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        >>> x = torch.randn(1, 4, 9, 9)
        >>> torch.allclose(low_rank_conv(conv, rank=6)(x), conv(x), atol=1e-4)
        True
    """
    if conv.groups != 1:
        raise ConfigError(f"low-rank factorization needs groups=1, this convolution has groups={conv.groups}")
    cls = type(conv)
    a, b = _svd_factors(weight_matrix(conv), rank, svd)  # a: (C_out, r), b: (r, C_in*k*k)
    first = cls(conv.in_channels, rank, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                dilation=conv.dilation, groups=1, bias=False, padding_mode=conv.padding_mode)
    second = cls(rank, conv.out_channels, 1, bias=conv.bias is not None)
    w = conv.weight
    first, second = first.to(device=w.device, dtype=w.dtype), second.to(device=w.device, dtype=w.dtype)
    ones = (1,) * (w.dim() - 2)
    with torch.no_grad():
        first.weight.copy_(b.reshape(rank, conv.in_channels, *conv.kernel_size))
        second.weight.copy_(a.reshape(conv.out_channels, rank, *ones))
        if conv.bias is not None:
            second.bias.copy_(conv.bias)
    return LowRankConv(first, second, rank)


def factorize_layer(layer: nn.Module, rank: int, *, svd: SVD | None = None) -> nn.Module:
    """:func:`low_rank_linear` or :func:`low_rank_conv`, whichever fits ``layer``.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch.lowrank import factorize_layer
        >>> type(factorize_layer(nn.Linear(8, 8), 2)).__name__
        'LowRankLinear'
    """
    if isinstance(layer, nn.Linear):
        return low_rank_linear(layer, rank, svd=svd)
    if isinstance(layer, CONVS):
        return low_rank_conv(layer, rank, svd=svd)
    raise ConfigError(f"cannot factorize a {type(layer).__name__}: only Linear and Conv1d/Conv2d")


def param_count(module: nn.Module) -> int:
    """Number of parameter elements in ``module``."""
    return sum(p.numel() for p in module.parameters())
