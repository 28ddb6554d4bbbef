"""core.shapes + core.persist: technique modules and parametrizations are rebuilt from a record;
a record of another architecture fails naming the first mismatching module."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from torchslim.core.errors import InputError
from torchslim.core.persist import (
    ModuleType,
    apply_attrs,
    build_plain,
    plain_record,
    register_module_type,
    simple_attrs,
)
from torchslim.core.shapes import int_attrs, rebuild, record_shapes


class Scaled(nn.Module):
    """A wrapper standing in for the layer it holds (like a quantized module)."""

    def __init__(self, inner: nn.Module, factor: float = 1.0) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self.inner(x)


class Negate(nn.Module):
    """A parametrization."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return -w


register_module_type(ModuleType(
    key="test_scaled", cls=Scaled, replaces=lambda m: type(m.inner).__name__, record=simple_attrs,
    build=lambda rec, original, make_child: apply_attrs(Scaled(original if original is not None else make_child("inner")), rec)))
register_module_type(ModuleType(
    key="test_negate", cls=Negate, replaces=lambda m: None, record=lambda m: {},
    build=lambda rec, host, make_child: Negate()))


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 8), nn.Linear(8, 2))


def test_wrapper_parametrization_and_shapes_rebuild() -> None:
    net = _net()
    net[3] = Scaled(nn.Linear(4 * 36, 5), factor=3.0)  # a narrower layer inside a wrapper
    net[4] = nn.Linear(5, 2)
    parametrize.register_parametrization(net[0], "weight", Negate())
    fresh = rebuild(_net(), record_shapes(net))
    fresh.load_state_dict(net.state_dict())
    assert isinstance(fresh[3], Scaled) and fresh[3].factor == 3.0 and fresh[3].inner.out_features == 5
    assert parametrize.is_parametrized(fresh[0], "weight")
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(fresh(x), net(x))


def test_first_mismatching_module_is_named() -> None:
    other = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Conv2d(4, 8, 1), nn.Linear(8, 2))
    with pytest.raises(InputError, match=r"another architecture.*first mismatching module '3': the file has a Conv2d, the model has a Linear"):
        rebuild(_net(), record_shapes(other))
    with pytest.raises(InputError, match="first mismatching module '5'"):
        rebuild(_net(), record_shapes(nn.Sequential(*_net(), nn.ReLU())))
    wrapped = _net()
    wrapped[1] = Scaled(nn.ReLU())
    with pytest.raises(InputError, match=r"'1': the file has a Scaled \(standing in for a ReLU\), the model has a Linear"):
        rebuild(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(2, 2)), record_shapes(wrapped))


def test_plain_layers_are_built_from_their_record() -> None:
    conv = nn.Conv2d(3, 8, (3, 5), stride=2, padding="valid", dilation=1, groups=1, bias=False, padding_mode="zeros")
    built = build_plain("Conv2d", int_attrs(conv), plain_record(conv))
    assert (built.kernel_size, built.stride, built.bias) == ((3, 5), (2, 2), None)
    with pytest.raises(InputError, match="cannot build a GRU"):
        build_plain("GRU", {}, {})
    with pytest.raises(InputError, match="refusing to set"):
        apply_attrs(nn.ReLU(), {"_forward_hooks": 1})
