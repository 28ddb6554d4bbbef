"""Models for MNIST-1D inputs (B, 1, 40): a 1-D CNN teacher and the MLP student baseline.

Example:
    >>> import torch
    >>> from torchslim.zoo.mnist1d_models import CNN1D, MLP1D
    >>> CNN1D()(torch.zeros(2, 1, 40)).shape, MLP1D()(torch.zeros(2, 1, 40)).shape
    (torch.Size([2, 10]), torch.Size([2, 10]))
"""

from __future__ import annotations

import torch
from torch import nn


class CNN1D(nn.Module):
    """Three 1-D convs (32, 64, 64 channels; the last two stride 2) with ReLU, flatten, fc.

    Flattening (rather than global pooling) keeps where a feature occurred, which MNIST-1D's
    templates need.
    """

    def __init__(self, num_classes: int = 10, length: int = 40, channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 32, kernel_size=5, padding=2)
        self.conv2 = nn.Conv1d(32, channels, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, kernel_size=3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels * (length // 4), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 40)
        x = self.relu(self.conv1(x))  # (B, 32, 40)
        x = self.relu(self.conv2(x))  # (B, 64, 20)
        x = self.relu(self.conv3(x))  # (B, 64, 10)
        return self.fc(self.flatten(x))  # (B, 640) -> (B, classes)


class MLP1D(nn.Module):
    """MLP 40-100-100-classes with ReLU: the distillation student baseline."""

    def __init__(self, num_classes: int = 10, length: int = 40, hidden: int = 100) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(length, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 40)
        x = self.flatten(x)  # (B, 40)
        x = self.relu(self.fc1(x))  # (B, 100)
        x = self.relu(self.fc2(x))  # (B, 100)
        return self.fc3(x)  # (B, classes)
