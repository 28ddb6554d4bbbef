"""A small MobileNet-style network for (B, 1, 28, 28) inputs: a stride-2 3x3 stem, then depthwise
3x3 + pointwise 1x1 blocks (each conv followed by BatchNorm and ReLU6), stride-2 depthwise
convs for downsampling (28 -> 14 -> 7 -> 4), global average pooling and a linear classifier.
As in MobileNet v1, the stem already halves the resolution: full-resolution depthwise layers
cost far more time than they add accuracy on CPU.

Example:
    >>> import torch
    >>> from torchslim.zoo.mobilenet import MobileNetMNIST
    >>> MobileNetMNIST()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

# (out_channels, stride) of each depthwise-separable block, after a 16-channel stem.
BLOCKS: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1))


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """conv (no bias) -> BatchNorm -> ReLU6, 'same' padding for odd kernels."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(),
    )


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 (one filter per channel, carries the stride) then pointwise 1x1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = conv_bn(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = conv_bn(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, H, W)
        return self.pointwise(self.depthwise(x))  # (B, C_out, H/s, W/s)


class MobileNetMNIST(nn.Module):
    """Stem conv 16 -> depthwise-separable blocks (:data:`BLOCKS`) -> pool -> fc."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, 16, 3, stride=2)
        blocks, channels = [], 16
        for out_channels, stride in BLOCKS:
            blocks.append(DepthwiseSeparable(channels, out_channels, stride))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28)
        x = self.stem(x)  # (B, 16, 14, 14)
        x = self.blocks(x)  # (B, 128, 4, 4): 14 -> 7 -> 4
        x = self.flatten(self.pool(x))  # (B, 128)
        return self.fc(x)  # (B, classes)
