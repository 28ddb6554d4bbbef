"""fold_batchnorm: exact (1e-5) in eval mode for conv-BN / linear-BN, 1-D and 2-D."""

from __future__ import annotations

import torch
from torch import nn

from torchslim.core.fold import batchnorm_pairs, fold_batchnorm
from torchslim.zoo.resnet import ResNetMNIST


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.3)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return model.eval()


def test_resnet_folds_every_bn_exactly() -> None:
    net = _randomize_bn(ResNetMNIST())
    folded = fold_batchnorm(net)
    x = torch.randn(4, 1, 28, 28)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # input untouched
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)


def test_conv1d_and_linear_bn() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.bc = nn.Conv1d(2, 5, 3), nn.BatchNorm1d(5)
            self.f, self.bf = nn.Linear(5 * 8, 7, bias=False), nn.BatchNorm1d(7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bc(self.c(x)))  # (B, 5, 8)
            return self.bf(self.f(y.flatten(1)))  # (B, 7)

    net = _randomize_bn(Net())
    assert sorted(batchnorm_pairs(net)) == [("c", "bc"), ("f", "bf")]
    x = torch.randn(6, 2, 10)
    torch.testing.assert_close(fold_batchnorm(net)(x), net(x), atol=1e-5, rtol=1e-5)


def test_conv_output_read_twice_is_not_folded() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.bn = nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c(x)
            return self.bn(y) + y

    net = _randomize_bn(Net())
    assert batchnorm_pairs(net) == []
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(fold_batchnorm(net)(x), net(x))


def test_untraceable_model_falls_back_to_sequential_pairs() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent: fx cannot trace this
                return self.body(x)
            return -self.body(x)

    net = _randomize_bn(Branchy())
    assert batchnorm_pairs(net) == [("body.0", "body.1")]
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(fold_batchnorm(net)(x), net(x), atol=1e-5, rtol=1e-5)
