"""LeNet-300-100 and LeNet-5 (LeCun et al., 1998) for 28x28 MNIST inputs (B, 1, 28, 28).

Example:
    >>> import torch
    >>> from torchslim.zoo.lenet import LeNet5, LeNet300
    >>> LeNet5()(torch.zeros(2, 1, 28, 28)).shape, LeNet300()(torch.zeros(2, 1, 28, 28)).shape
    (torch.Size([2, 10]), torch.Size([2, 10]))
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet300(nn.Module):
    """LeNet-300-100: a 784-300-100-10 MLP with ReLU; flattens its image input itself."""

    def __init__(self, num_classes: int = 10, in_features: int = 784) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (B, 784)
        x = self.relu(self.fc1(x))  # (B, 300)
        x = self.relu(self.fc2(x))  # (B, 100)
        return self.fc3(x)  # (B, classes)


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pooling: conv 6@5x5 (pad 2), pool, conv 16@5x5, pool,
    fc 120, fc 84, fc classes."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 28, 28)
        x = self.pool(self.relu(self.conv1(x)))  # (B, 6, 14, 14)
        x = self.pool(self.relu(self.conv2(x)))  # (B, 16, 5, 5)
        x = self.flatten(x)  # (B, 400)
        x = self.relu(self.fc1(x))  # (B, 120)
        x = self.relu(self.fc2(x))  # (B, 84)
        return self.fc3(x)  # (B, classes)
