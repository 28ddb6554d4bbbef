"""Depthwise-separable replacement of a standard k x k convolution.

``Conv2d(C_in, C_out, k)`` becomes ``Conv2d(C_in, C_in, k, groups=C_in)`` (same stride,
padding, dilation) then ``Conv2d(C_in, C_out, 1)``. The pair computes
``sum_c P[:, c] * (D_c * x_c)``, so each input channel's slice ``W[:, c]`` (C_out, k*k) is
approximated by the rank-1 product ``P[:, c] D_c``: its top singular pair gives
``D_c = v_1`` and ``P[:, c] = s_1 u_1`` (the best such approximation in Frobenius norm).
Weights drop from ``C_out*C_in*k*k`` to ``C_in*k*k + C_in*C_out``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.depthwise import depthwise_separable_conv
    >>> conv = nn.Conv2d(8, 16, 3, stride=2, padding=1)
    >>> pair = depthwise_separable_conv(conv)
    >>> x = torch.randn(2, 8, 10, 10)
    >>> pair(x).shape == conv(x).shape, pair.depthwise.groups
    (True, 8)
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.core.errors import ConfigError


class DepthwiseSeparableConv(nn.Sequential):
    """``depthwise`` (k x k, groups=C_in) then ``pointwise`` (1x1 to C_out)."""

    def __init__(self, depthwise: nn.Conv2d, pointwise: nn.Conv2d) -> None:
        super().__init__()
        self.depthwise = depthwise  # (B, C_in, H, W) -> (B, C_in, H', W')
        self.pointwise = pointwise  # (B, C_in, H', W') -> (B, C_out, H', W')


def replaceable(conv: nn.Module) -> bool:
    """A standard convolution: Conv2d, groups=1, a kernel larger than 1x1, and fewer weights as a pair."""
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or max(conv.kernel_size) <= 1:
        return False
    kk = conv.kernel_size[0] * conv.kernel_size[1]
    return conv.in_channels * kk + conv.in_channels * conv.out_channels < conv.in_channels * conv.out_channels * kk


def depthwise_separable_conv(conv: nn.Conv2d) -> DepthwiseSeparableConv:
    """The depthwise + pointwise pair initialised by per-channel rank-1 SVD of ``conv``'s kernel.

    Example:
        >>> from torch import nn
        >>> from torchslim.arch.depthwise import depthwise_separable_conv
        >>> pair = depthwise_separable_conv(nn.Conv2d(4, 8, 3, padding=1, bias=False))
        >>> pair.depthwise.padding, pair.pointwise.bias is None
        ((1, 1), True)
    """
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or max(conv.kernel_size) <= 1:
        raise ConfigError(f"depthwise-separable replacement needs a Conv2d with groups=1 and a kernel > 1, got {conv}")
    c_in, c_out, (kh, kw) = conv.in_channels, conv.out_channels, conv.kernel_size
    w = conv.weight.detach().double().permute(1, 0, 2, 3).reshape(c_in, c_out, kh * kw)  # (C_in, C_out, k*k)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)  # batched over input channels
    depth_w = vh[:, 0, :].reshape(c_in, 1, kh, kw)  # (C_in, 1, kh, kw)
    point_w = (u[:, :, 0] * s[:, :1]).T.reshape(c_out, c_in, 1, 1)  # (C_out, C_in, 1, 1)
    depthwise = nn.Conv2d(c_in, c_in, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                          dilation=conv.dilation, groups=c_in, bias=False, padding_mode=conv.padding_mode)
    pointwise = nn.Conv2d(c_in, c_out, 1, bias=conv.bias is not None)
    ref = conv.weight
    depthwise = depthwise.to(device=ref.device, dtype=ref.dtype)
    pointwise = pointwise.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        depthwise.weight.copy_(depth_w)
        pointwise.weight.copy_(point_w)
        if conv.bias is not None:
            pointwise.bias.copy_(conv.bias)
    return DepthwiseSeparableConv(depthwise, pointwise)
