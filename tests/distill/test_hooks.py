"""core.hooks: feature hooks capture exactly the named module's output (or input)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchslim.core.errors import InputError, UnknownNameError
from torchslim.core.hooks import FeatureHooks, last_linear
from torchslim.zoo.resnet import ResNetMNIST


def test_hooks_capture_the_named_modules_output_and_input() -> None:
    torch.manual_seed(0)
    net = ResNetMNIST().eval()
    x = torch.randn(2, 1, 28, 28)
    with FeatureHooks(net, ["layer2", "fc:input", "layer1.0.conv1"]) as hooks:
        out = net(x)
        layer2, fc_in, conv = hooks.take()
    # recompute the same tensors by hand from the modules' own inputs
    expected = {}
    handles = [net.layer2.register_forward_hook(lambda m, a, o: expected.__setitem__("layer2", o)),
               net.fc.register_forward_pre_hook(lambda m, a: expected.__setitem__("fc", a[0])),
               net.get_submodule("layer1.0.conv1").register_forward_hook(lambda m, a, o: expected.__setitem__("c", o))]
    net(x)
    for h in handles:
        h.remove()
    assert torch.equal(layer2, expected["layer2"]) and torch.equal(fc_in, expected["fc"]) and torch.equal(conv, expected["c"])
    assert torch.equal(net.fc(fc_in), out)  # the input of the classifier gives the output
    assert not net.layer2._forward_hooks and not net.fc._forward_pre_hooks  # removed on exit


def test_captured_features_carry_gradients() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    hooks = FeatureHooks(net, ["0"])
    net(torch.randn(3, 4))
    (feature,) = hooks.take()
    feature.sum().backward()
    assert net[0].weight.grad is not None
    hooks.remove()


def test_a_path_that_names_no_module_lists_near_names() -> None:
    net = ResNetMNIST()
    with pytest.raises(UnknownNameError, match=r"student has no module 'layer2.0.conv9'; nearest names: layer2\.0\.conv2, layer2\.0\.conv1"):
        FeatureHooks(net, ["layer2.0.conv9"], where="student")
    with pytest.raises(UnknownNameError, match="nearest names"):
        FeatureHooks(net, ["fc:inptu"])


def test_a_module_that_did_not_run_is_named() -> None:
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    net = Skips()
    hooks = FeatureHooks(net, ["unused"], where="teacher")
    net(torch.zeros(1, 2))
    with pytest.raises(InputError, match=r"teacher: the modules of feature paths \['unused'\] did not run"):
        hooks.take()
    assert last_linear(net) == "unused"
