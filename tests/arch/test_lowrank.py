"""Low-rank factorization: exactness at full rank, rank selection, replacement rules, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.arch import LowRank, choose_rank, factorize, low_rank_conv, low_rank_linear
from torchslim.core.errors import ConfigError
from torchslim.measure import measure


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_full_rank_linear_reproduces_layer() -> None:
    layer = nn.Linear(40, 24)
    pair = low_rank_linear(layer, rank=24)
    x = torch.randn(8, 40)
    torch.testing.assert_close(pair(x), layer(x), atol=1e-4, rtol=0)
    assert pair.first.bias is None and pair.second.bias is not None


@pytest.mark.parametrize(
    "conv, shape",
    [
        (nn.Conv2d(6, 10, 3, stride=2, padding=1), (2, 6, 11, 11)),
        (nn.Conv2d(4, 8, (3, 5), padding=(1, 2), dilation=2, bias=False), (2, 4, 12, 12)),
        (nn.Conv1d(5, 7, 3, padding=1), (2, 5, 16)),
    ],
)
def test_full_rank_conv_reproduces_layer_and_keeps_geometry(conv: nn.Module, shape: tuple[int, ...]) -> None:
    full = min(conv.out_channels, conv.in_channels * int(torch.tensor(conv.kernel_size).prod()))
    pair = low_rank_conv(conv, rank=full)
    x = torch.randn(shape)
    torch.testing.assert_close(pair(x), conv(x), atol=1e-4, rtol=0)
    assert pair.first.stride == conv.stride and pair.first.padding == conv.padding
    assert pair.first.dilation == conv.dilation and pair.first.groups == conv.groups == 1
    assert pair.second.kernel_size == (1,) * len(conv.kernel_size)


def test_truncation_error_equals_dropped_singular_values() -> None:
    layer = nn.Linear(30, 20, bias=False)
    s = torch.linalg.svdvals(layer.weight.detach().double())
    pair = low_rank_linear(layer, rank=5)
    approx = (pair.second.weight @ pair.first.weight).double()
    err = torch.linalg.matrix_norm(approx - layer.weight.double())
    assert err.item() == pytest.approx(s[5:].pow(2).sum().sqrt().item(), rel=1e-4)


def test_energy_rank_is_the_smallest_meeting_the_threshold() -> None:
    layer = nn.Linear(50, 40)
    s2 = torch.linalg.svdvals(layer.weight.detach().double()).pow(2)
    frac = torch.cumsum(s2, 0) / s2.sum()
    for energy in (0.5, 0.8, 0.95, 1.0):
        r = choose_rank(layer, energy=energy)
        assert frac[r - 1] >= energy - 1e-9
        assert r == 1 or frac[r - 2] < energy


def test_param_ratio_is_respected_layer_by_layer() -> None:
    net = nn.Sequential(nn.Linear(200, 120), nn.ReLU(), nn.Linear(120, 80), nn.ReLU(), nn.Linear(80, 10))
    small = factorize(net, LowRank(param_ratio=0.3, target={"exclude": ["4"]}))
    assert [r.name for r in small.arch_report] == ["0", "2"]
    for rep in small.arch_report:
        layer = net.get_submodule(rep.name)
        assert rep.params_after - layer.out_features <= 0.3 * layer.weight.numel()
    assert isinstance(small[4], nn.Linear)
    assert isinstance(net[0], nn.Linear)  # the original is untouched


def test_replaced_only_when_macs_and_params_fall() -> None:
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 9))
    small = factorize(net, LowRank(energy=1.0))  # full rank never saves
    assert small.arch_report == []
    assert {name for name, _ in small.arch_skipped} == {"0", "2"}
    small = factorize(net, LowRank(rank=8))
    assert [r.name for r in small.arch_report] == ["0"]  # 8 * (64 + 9) > 64 * 9: the head stays
    x = torch.randn(1, 64)
    before, after = measure(net, x, latency=False, memory=False), measure(small, x, latency=False, memory=False)
    assert after.macs < before.macs and after.params_total < before.params_total


def test_conv_model_keeps_output_shapes() -> None:
    net = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1))
    small = factorize(net, LowRank(param_ratio=0.25))
    x = torch.randn(2, 3, 16, 16)
    assert small(x).shape == net(x).shape
    assert [r.name for r in small.arch_report] == ["0", "2"]
    assert measure(small, x, latency=False, memory=False).macs < measure(net, x, latency=False, memory=False).macs


@pytest.mark.parametrize("energy", [0.0, -0.1, 1.01, 2.0])
def test_energy_outside_unit_interval_is_refused(energy: float) -> None:
    with pytest.raises(ConfigError, match="energy"):
        LowRank(energy=energy)


def test_bad_ratio_and_rank_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="param_ratio"):
        LowRank(param_ratio=1.5)
    with pytest.raises(ConfigError, match="rank"):
        LowRank(rank=0)


def test_rank_larger_than_layer_allows_names_the_layer() -> None:
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(ConfigError, match=r"rank 9 .*'0'.* at most min\(out, in\) = 8"):
        factorize(net, LowRank(rank=9))


def test_target_matching_nothing_is_an_error() -> None:
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU())
    with pytest.raises(ConfigError, match="matches no"):
        factorize(net, LowRank(target={"include": ["type:Conv2d"]}))
    with pytest.raises(ConfigError, match="no module named"):
        factorize(net, LowRank(target={"include": ["fc9"]}))


def test_config_round_trips() -> None:
    from torchslim.core.config import config_from_yaml

    cfg = LowRank(param_ratio=0.3, target={"exclude": ["fc3"]})
    assert config_from_yaml(cfg.to_yaml()) == cfg


def test_linear_inside_multihead_attention_is_left_alone() -> None:
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=128, batch_first=True)
    small = factorize(layer, LowRank(param_ratio=0.3))
    assert "self_attn.out_proj" in {n for n, _ in small.arch_skipped}
    assert {r.name for r in small.arch_report} == {"linear1", "linear2"}
    x = torch.randn(2, 5, 32)
    assert small(x).shape == x.shape
