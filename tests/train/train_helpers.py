"""Small learnable problems and models for the training-loop tests (a uniquely named module,
imported by the test files; pytest puts this folder on sys.path)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def separable(n: int = 512, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A linearly separable 2-class problem: the label is the sign of a fixed projection."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)  # (N, F)
    w = torch.randn(features, generator=g)
    return x, (x @ w > 0).long()  # (N,)


def make_mlp(seed: int = 0, features: int = 8, hidden: int = 16, dropout: float = 0.2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 2))


def loaders(batch_size: int = 64, generator: torch.Generator | None = None) -> tuple[DataLoader, DataLoader]:
    x, y = separable()
    train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=batch_size, shuffle=True, generator=generator)
    val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
    return train, val


def same_weights(a: nn.Module, b: nn.Module, atol: float = 0.0) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=atol, rtol=0) for k in sa)
