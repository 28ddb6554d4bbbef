"""Structured pruning on every reference model: output shapes kept, tensors really shrink."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from torchslim import zoo
from torchslim.measure import measure

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_keeps_output_shape_and_shrinks(name: str) -> None:
    model = zoo.model(name).eval()
    x = zoo.example_inputs(name, batch_size=2)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert small(x).shape == model(x).shape
    assert small(torch.cat([x, x])).shape[0] == 4  # other batch sizes still run
    assert _params(small) < 0.6 * _params(model)
    assert _params(model) == _params(zoo.model(name))  # the input model is untouched


def test_transformer_heads_removed_and_head_count_updated() -> None:
    model = zoo.model("transformer-mnist").eval()
    x = zoo.example_inputs("transformer-mnist", batch_size=2)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    attn = small.blocks[0].attn
    assert attn.num_heads == 2 and attn.head_dim == 16
    assert attn.q.out_features == attn.k.out_features == attn.v.out_features == attn.out.in_features == 32
    assert small.blocks[0].ffn.fc1.out_features == 64
    report = small.slim_prune_report
    assert any(g.is_heads for g in report.groups)
    assert small(x).shape == (2, 10)


def test_heads_false_leaves_attention() -> None:
    model = zoo.model("transformer-mnist").eval()
    x = zoo.example_inputs("transformer-mnist", batch_size=1)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5, heads=False), example_inputs=x)
    assert small.blocks[0].attn.num_heads == 4 and small.blocks[0].attn.q.out_features == 64


def test_zero_sparsity_is_exact_noop() -> None:
    for name in ("resnet-mnist", "transformer-mnist"):
        model = zoo.model(name).eval()
        x = zoo.example_inputs(name, batch_size=3)
        same = P.prune(model, P.StructuredPrune(sparsity=0.0), example_inputs=x)
        assert torch.equal(same(x), model(x))
        assert _params(same) == _params(model)


def test_residual_branches_stay_equal_and_run() -> None:
    model = zoo.model("resnet-mnist").eval()
    x = zoo.example_inputs("resnet-mnist", batch_size=2)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    for stage in (small.layer2, small.layer3):
        block = stage[0]
        assert block.conv2.out_channels == block.shortcut[0].out_channels == block.bn2.num_features
    assert small.layer1[0].conv2.out_channels == small.stem[0].out_channels  # identity shortcut
    assert small.fc.in_features == small.layer3[0].conv2.out_channels
    assert small(x).shape == (2, 10)


def test_macs_and_params_really_shrink_and_target_is_met() -> None:
    model = zoo.model("resnet-mnist").eval()
    x = zoo.example_inputs("resnet-mnist", batch_size=1)
    before = measure(model, x, latency=False, memory=False)
    small = P.prune(model, P.StructuredPrune(target_macs=0.5), example_inputs=x)
    after = measure(small, x, latency=False, memory=False)
    assert 0.4 * before.macs <= after.macs <= 0.5 * before.macs
    assert after.params_total < before.params_total
    small = P.prune(model, P.StructuredPrune(target_params=0.5, scope="global"), example_inputs=x)
    assert 0.4 * before.params_total <= _params(small) <= 0.5 * before.params_total


def test_round_to_multiples() -> None:
    model = zoo.model("mobilenet-mnist").eval()
    x = zoo.example_inputs("mobilenet-mnist", batch_size=1)
    small = P.prune(model, P.StructuredPrune(sparsity=0.4, round_to=8), example_inputs=x)
    for m in small.modules():
        if isinstance(m, nn.Conv2d) and m.out_channels > 1:
            assert m.out_channels % 8 == 0, m


def test_ignore_keeps_a_layer() -> None:
    model = zoo.model("lenet5-mnist").eval()
    x = zoo.example_inputs("lenet5-mnist", batch_size=1)
    small = P.prune(model, P.StructuredPrune(sparsity=0.5, ignore=("conv2", "type:Linear")), example_inputs=x)
    assert small.conv2.out_channels == 16 and small.fc1.out_features == 120
    assert small.conv1.out_channels == 3
