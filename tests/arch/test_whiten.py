"""Activation-aware (whitened) low rank: exact at full rank, never worse than plain SVD on the
calibration inputs, convolutions included; clear errors when data is missing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.arch import LowRank, factorize
from torchslim.arch.lowrank import low_rank_conv, low_rank_linear
from torchslim.arch.whiten import input_covariances, whitened_svd
from torchslim.core.errors import ConfigError


def _inputs(shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    scale = torch.logspace(-1, 0.5, shape[1]).reshape(1, -1, *([1] * (len(shape) - 2)))
    return torch.randn(shape, generator=g) * scale  # (N, C, ...): channels of very different scales


def test_full_rank_whitened_linear_reproduces_layer() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(24, 16)
    x = _inputs((200, 24))
    cov = input_covariances(layer, [("", layer)], [x])[""]
    pair = low_rank_linear(layer, 16, svd=whitened_svd(layer, cov))
    torch.testing.assert_close(pair(x), layer(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.Linear(32, 24), (300, 32)),
        (nn.Conv2d(6, 12, 3, stride=2, padding=1), (16, 6, 9, 9)),
        (nn.Conv1d(5, 10, 3, padding=1, dilation=2), (16, 5, 20)),
    ],
)
def test_whitened_beats_plain_svd_on_calibration_inputs(layer: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = _inputs(shape)
    cov = input_covariances(layer, [("", layer)], [(x, torch.zeros(len(x)))])[""]
    build = low_rank_linear if isinstance(layer, nn.Linear) else low_rank_conv
    for rank in (2, 4):
        white = build(layer, rank, svd=whitened_svd(layer, cov))
        plain = build(layer, rank)
        assert white(x).shape == layer(x).shape
        err_white, err_plain = (white(x) - layer(x)).norm(), (plain(x) - layer(x)).norm()
        assert err_white <= err_plain * (1 + 1e-6), f"rank {rank}: whitened {err_white:.4f} vs plain {err_plain:.4f}"
    assert err_white < 0.9 * err_plain  # much better when input scales differ


def test_factorize_whitened_needs_calibration_and_uses_it() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    x = _inputs((256, 32))
    cfg = LowRank(method="whitened", param_ratio=0.3, target={"include": ["0"]})
    with pytest.raises(ConfigError, match="needs calibration"):
        factorize(net, cfg)
    with pytest.raises(ConfigError, match="only by LowRank\\(method='whitened'\\)"):
        factorize(net, LowRank(param_ratio=0.3), calibration=[x])
    white = factorize(net, cfg, calibration=[x[:128]])
    plain = factorize(net, LowRank(param_ratio=0.3, target={"include": ["0"]}))
    assert [r.rank for r in white.arch_report] == [r.rank for r in plain.arch_report]
    held_out = x[128:]  # unseen inputs from the same distribution
    assert (white(held_out) - net(held_out)).norm() < (plain(held_out) - net(held_out)).norm()


def test_whitened_energy_and_sensitivity_together() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = _inputs((192, 32))
    with torch.no_grad():
        y = net(x).argmax(1)
    loader = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 192, 64)]
    by_energy = factorize(net, LowRank(method="whitened", energy=0.9), calibration=loader)
    assert by_energy.arch_report
    cfg = LowRank(method="whitened", rank_selection="sensitivity", param_ratio=0.4, target={"exclude": ["4"]})
    small = factorize(net, cfg, data=loader, calibration=loader, progress=False)
    assert _kept_weights(net, small) <= 0.4 * 2 * 32 * 32
    tighter = LowRank(method="whitened", rank_selection="sensitivity", param_ratio=0.2, target={"exclude": ["4"]})
    again = factorize(net, tighter, sensitivity=small.arch_sensitivity, calibration=loader)  # no data: reused table
    assert _kept_weights(net, again) <= 0.2 * 2 * 32 * 32
    with pytest.raises(ConfigError, match="table is of layers"):
        factorize(net, LowRank(rank_selection="sensitivity", param_ratio=0.2), sensitivity=small.arch_sensitivity)


def _kept_weights(net: nn.Module, small: nn.Module) -> int:
    """Weights of the selected layers after: the factorized pairs plus the layers kept whole."""
    pairs = sum(r.params_after - net.get_submodule(r.name).bias.numel() for r in small.arch_report)
    return pairs + sum(net.get_submodule(n).weight.numel() for n, _ in small.arch_skipped)
