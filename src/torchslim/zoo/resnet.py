"""A small CIFAR-style ResNet for (B, 1, 28, 28) inputs: a 3x3 stem of 16 channels, three
stages of BasicBlocks (16, 32, 64 channels; stride 2 at the start of stages 2 and 3), global
average pooling and a linear classifier. With one block per stage it is a ResNet-8.

Example:
    >>> import torch
    >>> from torchslim.zoo.resnet import ResNetMNIST
    >>> ResNetMNIST()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut, then ReLU. The shortcut is the identity,
    or a 1x1 conv + BN where the stride or channel count changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, H, W)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, C_out, H/s, W/s)
        return self.relu(out + self.shortcut(x))  # residual add


class ResNetMNIST(nn.Module):
    """Stem conv 16 -> stages of ``blocks`` BasicBlocks at 16, 32, 64 channels -> pool -> fc."""

    def __init__(self, num_classes: int = 10, blocks: int = 1, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.layer1 = self._stage(16, 16, blocks, stride=1)
        self.layer2 = self._stage(16, 32, blocks, stride=2)
        self.layer3 = self._stage(32, 64, blocks, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_channels, out_channels, stride)]
        layers += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28)
        x = self.stem(x)  # (B, 16, 28, 28)
        x = self.layer1(x)  # (B, 16, 28, 28)
        x = self.layer2(x)  # (B, 32, 14, 14)
        x = self.layer3(x)  # (B, 64, 7, 7)
        x = self.flatten(self.pool(x))  # (B, 64)
        return self.fc(x)  # (B, classes)
