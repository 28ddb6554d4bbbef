"""The dependency graph on hand-built models: pins, depthwise/grouped convs, concat, errors."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from torchslim.core.errors import ConfigError

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


class HardCodedView(nn.Module):
    """conv -> view(-1, 8*4*4) (a hard-coded size) -> linear: conv's channels must be pinned."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.hidden = nn.Linear(8 * 4 * 4, 16)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 4, 4)
        x = torch.relu(self.conv(x)).view(-1, 128)  # (B, 128)
        return self.fc(torch.relu(self.hidden(x)))


class Concat(nn.Module):
    """Two branches concatenated on channels, then a 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.mix = nn.Conv2d(14, 10, 1)
        self.fc = nn.Linear(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, H, W)
        y = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)  # (B, 14, H, W)
        return self.fc(self.mix(y).mean((2, 3)))  # (B, 2)


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.c2 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c2(torch.relu(self.g(self.c1(x)))).mean((2, 3)))


def test_hard_coded_reshape_pins_and_reports() -> None:
    model = HardCodedView().eval()
    x = torch.randn(2, 1, 4, 4)
    report = P.preflight(model, x)
    assert "conv:channels" in report.pinned
    assert "hard-coded" in report.pinned["conv:channels"][0] or "breaks" in report.pinned["conv:channels"][0]
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert small.conv.out_channels == 8 and small.hidden.out_features == 8
    assert small(x).shape == (2, 2)


def test_concat_offsets_channels() -> None:
    model = Concat().eval()
    x = torch.randn(2, 3, 6, 6)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert (small.a.out_channels, small.b.out_channels, small.mix.in_channels) == (4, 3, 7)
    assert small(x).shape == (2, 2)
    # the kept input columns of mix are those of the kept channels of a and b, in order
    keep = P.prune(model, P.StructuredPrune(sparsity=0.0), example_inputs=x)
    assert torch.equal(keep(x), model(x))


def test_depthwise_follows_its_input_and_grouped_removes_whole_groups() -> None:
    from torchslim import zoo

    model = zoo.model("mobilenet-mnist").eval()
    x = zoo.example_inputs("mobilenet-mnist", batch_size=1)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    dw = small.blocks[1].depthwise[0]
    assert dw.groups == dw.in_channels == dw.out_channels == small.blocks[0].pointwise[0].out_channels == 16
    grouped = Grouped().eval()
    xg = torch.randn(1, 3, 5, 5)
    report = P.preflight(grouped, xg)
    assert "c1:channels" in [g.name() for g in report.groups] and not report.unsupported
    out = P.prune(grouped, P.StructuredPrune(sparsity=0.5), example_inputs=xg)
    assert (out.c1.out_channels, out.g.in_channels, out.g.out_channels, out.g.groups) == (4, 4, 4, 1)
    assert out.c2.out_channels == 3 and out(xg).shape == (1, 2)


def _known_layer() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)).eval()
    with torch.no_grad():
        norms = torch.tensor([5.0, 0.1, 3.0, 0.2, 4.0, 2.0])
        net[0].weight.copy_(norms[:, None] * torch.ones(6, 3))
        net[0].bias.zero_()
        net[1].weight.copy_(norms)
        net[3].weight.fill_(1.0)
    return net


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "taylor"])
def test_importance_picks_known_smallest(importance: str) -> None:
    net = _known_layer()
    x = torch.randn(4, 3)
    data = [(torch.randn(8, 3), torch.randint(0, 2, (8,))) for _ in range(2)]
    small = P.prune(net, P.StructuredPrune(sparsity=0.34, importance=importance), example_inputs=x, data=data)
    assert small[0].out_features == 4
    kept = small[0].weight[:, 0].tolist()
    if importance != "taylor":
        assert sorted(kept) == [2.0, 3.0, 4.0, 5.0]


def test_random_and_global_scope_run() -> None:
    net = _known_layer()
    small = P.prune(net, P.StructuredPrune(sparsity=0.5, importance="random", scope="global"), example_inputs=torch.randn(2, 3))
    assert small(torch.randn(2, 3)).shape == (2, 2)


def test_bad_inputs_are_clear_errors() -> None:
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
            P.StructuredPrune(sparsity=bad)
    with pytest.raises(ValueError, match="known: l1, l2, taylor, bn_scale, random"):
        P.StructuredPrune(importance="hessian")
    net = _known_layer()
    with pytest.raises(ConfigError, match="no module named 'classifier'"):
        P.prune(net, P.StructuredPrune(ignore=("classifier",)), example_inputs=torch.randn(2, 3))
    with pytest.raises(ConfigError, match="matches no module"):
        P.prune(net, P.StructuredPrune(ignore=("re:head.*",)), example_inputs=torch.randn(2, 3))
    with pytest.raises(ConfigError, match="taylor"):
        P.prune(net, P.StructuredPrune(importance="taylor"), example_inputs=torch.randn(2, 3))
    with pytest.raises(ConfigError, match="example_inputs"):
        P.prune(net, P.StructuredPrune())
