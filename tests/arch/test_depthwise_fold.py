"""Depthwise-separable replacement and the fold_batchnorm re-export."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim import zoo
from torchslim.arch import DepthwiseSeparable, factorize, fold_batchnorm, replace_depthwise
from torchslim.arch.depthwise import depthwise_separable_conv
from torchslim.core.errors import ConfigError
from torchslim.measure import measure


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_pair_keeps_shape_stride_padding_and_beats_random_init() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1, dilation=1)
    pair = depthwise_separable_conv(conv)
    x = torch.randn(4, 16, 15, 15)
    assert pair(x).shape == conv(x).shape
    assert pair.depthwise.stride == conv.stride and pair.depthwise.padding == conv.padding
    assert pair.depthwise.dilation == conv.dilation and pair.depthwise.groups == 16
    assert pair.pointwise.kernel_size == (1, 1) and pair.pointwise.groups == 1
    err = _rel_err(pair(x), conv(x))
    random_pair = depthwise_separable_conv(nn.Conv2d(16, 32, 3, stride=2, padding=1))
    with torch.no_grad():
        random_pair.pointwise.bias.copy_(conv.bias)
    assert err < 1.0 and err < _rel_err(random_pair(x), conv(x))


def test_rank_one_kernel_is_reproduced_exactly() -> None:
    conv = nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():  # every input channel's (C_out, k*k) slice has rank 1
        conv.weight.copy_(torch.randn(5, 3, 1, 1) * torch.randn(1, 3, 3, 3))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(depthwise_separable_conv(conv)(x), conv(x), atol=1e-4, rtol=0)


def test_resnet_replacement_keeps_shapes_and_lowers_macs() -> None:
    net = zoo.model("resnet-mnist").eval()
    x = zoo.example_inputs("resnet-mnist", batch_size=2)
    small = replace_depthwise(net)
    assert small(x).shape == net(x).shape
    kinds = {r.kind for r in small.arch_report}
    assert kinds == {"depthwise_separable"} and len(small.arch_report) == 7  # stem + 6 block convs
    assert {n for n, _ in small.arch_skipped} == {"layer2.0.shortcut.0", "layer3.0.shortcut.0"}  # 1x1
    before, after = measure(net, x, latency=False, memory=False), measure(small, x, latency=False, memory=False)
    assert after.macs < 0.3 * before.macs and after.params_total < 0.3 * before.params_total
    same = factorize(net, DepthwiseSeparable(target={"exclude": ["stem"]}))
    assert "stem.0" not in {r.name for r in same.arch_report}


def test_depthwise_target_without_convs_is_an_error() -> None:
    with pytest.raises(ConfigError, match="matches no"):
        replace_depthwise(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(ConfigError, match="takes no options"):
        factorize(nn.Sequential(nn.Conv2d(4, 4, 3)), DepthwiseSeparable(), data=[])


def _randomize_bn(net: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for m in net.modules():  # non-trivial statistics, as after training
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return net.eval()


@pytest.mark.parametrize("name", zoo.names())
def test_fold_batchnorm_is_exact_on_every_reference_model(name: str) -> None:
    net = _randomize_bn(zoo.model(name))
    folded = fold_batchnorm(net)
    x = zoo.example_inputs(name, batch_size=4)
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=0)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
    assert folded.training is False and net.training is False


def test_fold_batchnorm_is_exact_after_depthwise_replacement() -> None:
    net = _randomize_bn(replace_depthwise(zoo.model("resnet-mnist")))
    folded = fold_batchnorm(net)
    x = zoo.example_inputs("resnet-mnist", batch_size=4)
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
