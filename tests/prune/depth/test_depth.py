"""Depth pruning (BlockPrune): whole residual branches go, shapes stay, MACs drop, the result
saves and reloads without pickle, and bad input is a clear error."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import torchslim as slim
from torchslim import zoo
from torchslim.core.errors import ConfigError, InputError
from torchslim.measure.macs import count_macs

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


def _resnet() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return zoo.model("resnet-mnist").eval(), torch.randn(2, 1, 28, 28)


def _dropped(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, P.DroppedBranch)]


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    return count_macs(model, (x,))[0]


@pytest.mark.parametrize("blocks", [1, 2])
def test_removes_exactly_that_many_branches(blocks: int) -> None:
    model, x = _resnet()
    before = [n for n, _ in model.named_modules()]
    small = P.prune(model, P.BlockPrune(blocks=blocks), example_inputs=x)
    report = small.slim_block_report
    assert len(report.removed) == blocks == len(_dropped(small))
    assert len(set(_dropped(small))) == blocks  # one branch per block
    assert [n for n, _ in model.named_modules()] == before and not _dropped(model)  # input untouched
    x5 = torch.randn(5, 1, 28, 28)
    assert small(x5).shape == model(x5).shape == (5, 10)
    m0, m1 = _macs(model, x), _macs(small, x)
    assert m1 < m0 and report.macs == (m0, m1)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


def test_dropped_branch_computes_the_shortcut_alone() -> None:
    model, x = _resnet()
    small = P.prune(model, P.BlockPrune(blocks=1, ignore=("layer2.0", "layer3.0")), example_inputs=x)
    block = small.layer1[0]
    assert isinstance(block, P.DroppedBranch) and small.slim_block_report.removed[0].startswith("layer1.0[")
    h = torch.randn(3, 16, 28, 28)
    assert torch.equal(block(h), torch.relu(h))  # relu(bn2(conv2(...)) + x) -> relu(x): the branch's ops are gone
    assert not any(isinstance(m, nn.Conv2d) for m in block.modules())


def test_output_importance_removes_the_least_important_branch_first() -> None:
    model, x = _resnet()
    small = P.prune(model, P.BlockPrune(blocks=1), example_inputs=x)
    first = small.slim_block_report.rounds[0]
    assert len(first) >= 3
    assert small.slim_block_report.removed == [min(first, key=lambda n: first[n]["importance"])]
    assert all(v["importance"] >= 0 for v in first.values())


def test_target_macs_is_met() -> None:
    model, x = _resnet()
    small = P.prune(model, P.BlockPrune(target_macs=0.5), example_inputs=x)
    m0, m1 = _macs(model, x), _macs(small, x)
    assert m1 <= 0.5 * m0
    rounds = small.slim_block_report.rounds
    assert len(rounds) == len(small.slim_block_report.removed) >= 1
    if len(rounds) > 1:  # it stopped as soon as the target held: the step before was still above it
        previous = rounds[-2][small.slim_block_report.removed[-2]]["macs"]
        assert previous > 0.5 * m0
    assert small(x).shape == model(x).shape


def test_ignore_is_honoured() -> None:
    model, x = _resnet()
    small = P.prune(model, P.BlockPrune(blocks=2, ignore=("layer1.0",)), example_inputs=x)
    report = small.slim_block_report
    assert type(small.layer1[0]).__name__ == "BasicBlock"
    assert not any(n.startswith("layer1.0[") for n in report.removed)
    assert any(k.startswith("layer1.0[") and v == "ignored by config" for k, v in report.not_removable.items())
    with pytest.raises(ConfigError, match="BlockPrune.ignore.*nope"):
        P.prune(model, P.BlockPrune(blocks=1, ignore=("nope",)), example_inputs=x)


def test_model_without_residual_blocks_is_a_clear_error() -> None:
    lenet, x = zoo.model("lenet5-mnist").eval(), torch.randn(2, 1, 28, 28)
    with pytest.raises(InputError, match=r"LeNet5\w* has no removable block \(blocks=1\); looked for residual"):
        P.prune(lenet, P.BlockPrune(blocks=1), example_inputs=x)


def test_asking_for_more_blocks_than_there_are_warns() -> None:
    model, x = _resnet()
    with pytest.warns(UserWarning, match="removed 3 block"):
        small = P.prune(model, P.BlockPrune(blocks=10), example_inputs=x)
    assert len(_dropped(small)) == 3 and small(x).shape == (2, 10)


def test_config_errors() -> None:
    with pytest.raises(ValidationError, match="give blocks or target_macs"):
        P.BlockPrune(blocks=1, target_macs=0.5)
    with pytest.raises(ValidationError, match="blocks .* must be >= 1"):
        P.BlockPrune(blocks=0)
    with pytest.raises(ValidationError, match="unknown block importance 'l1'; known: output, random"):
        P.BlockPrune(blocks=1, importance="l1")
    with pytest.raises(ConfigError, match="needs example_inputs"):
        P.prune(nn.Linear(2, 2), P.BlockPrune(blocks=1))


def test_target_latency_stops_once_the_measured_latency_is_under_it() -> None:
    torch.manual_seed(0)
    net, x = zoo.model("mobilenet-mnist").eval(), torch.randn(1, 1, 28, 28)
    small = P.prune(net, P.BlockPrune(target_latency=0.8, runtime="torch", layers=True), example_inputs=x)
    report = small.slim_block_report
    chosen = [rnd[name]["latency"] for rnd, name in zip(report.rounds, report.removed, strict=True)]
    assert report.removed and report.latency == chosen[-1] <= 0.8  # measured beside the original
    assert all(f > 0.8 for f in chosen[:-1])  # no block more than needed
    assert all("latency" in c and "saving" in c for rnd in report.rounds for c in rnd.values())
    assert small(x).shape == net(x).shape and "latency: " in report.summary()
    with pytest.raises(ValidationError, match="target_latency needs runtime"):
        P.BlockPrune(target_latency=0.5)
    with pytest.raises(ValidationError, match=r"target_latency is the fraction of the latency to keep, in \(0, 1\]"):
        P.BlockPrune(target_latency=1.5, runtime="torch")
    with pytest.raises(ValidationError, match="exactly one of them; got target_macs, target_latency"):
        P.BlockPrune(target_macs=0.5, target_latency=0.5, runtime="torch")


def test_layers_option_skips_shape_preserving_layers() -> None:
    torch.manual_seed(0)
    net, x = zoo.model("mobilenet-mnist").eval(), torch.randn(2, 1, 28, 28)
    small = P.prune(net, P.BlockPrune(blocks=1, layers=True, importance="random"), example_inputs=x)
    skipped = [n for n, m in small.named_modules() if isinstance(m, P.SkippedLayer)]
    assert skipped == small.slim_block_report.removed and len(skipped) == 1
    assert small(x).shape == net(x).shape and _macs(small, x) < _macs(net, x)


def test_round_trips_through_save_pruned_and_slim(tmp_path: Path) -> None:
    model, x = _resnet()
    small = P.prune(model, P.BlockPrune(blocks=2), example_inputs=x).eval()
    P.save_pruned(small, tmp_path / "small.safetensors")
    back = P.load_pruned(tmp_path / "small.safetensors", zoo.model("resnet-mnist"))
    assert _dropped(back) == _dropped(small)
    assert torch.equal(back(x), small(x))
    slim.save(small, tmp_path / "small.slim")
    again = slim.load(tmp_path / "small.slim", zoo.model("resnet-mnist"))
    assert _dropped(again) == _dropped(small)
    assert torch.allclose(again(x), small(x), atol=1e-6)


def test_channel_pruning_after_depth_pruning_keeps_shapes() -> None:
    model, x = _resnet()
    shallow = P.prune(model, P.BlockPrune(blocks=1), example_inputs=x)
    narrow = P.prune(shallow, P.StructuredPrune(sparsity=0.5), example_inputs=x)
    assert narrow(x).shape == model(x).shape
    assert _macs(narrow, x) < _macs(shallow, x) < _macs(model, x)


def test_overshoot_false_stops_above_target_macs() -> None:
    model, x = _resnet()
    m0 = _macs(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all 3 branches may go without crossing: "nothing more removable"
        small = P.prune(model, P.BlockPrune(target_macs=0.5, overshoot=False), example_inputs=x)
    report = small.slim_block_report
    assert report.removed and _macs(small, x) >= 0.5 * m0  # never below the floor
    last = report.rounds[-1]
    left = {n: c for n, c in last.items() if n not in report.removed}
    assert len(report.removed) == 3 or (left and all(c["macs"] < 0.5 * m0 for c in left.values()))
    overshooting = P.prune(model, P.BlockPrune(target_macs=0.5), example_inputs=x)
    assert _macs(overshooting, x) <= 0.5 * m0 < _macs(small, x)  # the default crosses it
    rest = 0.5 * m0 / _macs(small, x)  # then channels close the gap
    narrow = P.prune(small, P.StructuredPrune(target_macs=rest), example_inputs=x)
    assert _macs(narrow, x) <= 0.5 * m0 and narrow(x).shape == model(x).shape
    with pytest.raises(ValidationError, match="overshoot=False needs target_macs"):
        P.BlockPrune(blocks=1, overshoot=False)
