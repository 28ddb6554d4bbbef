"""Latency-aware structured pruning (StructuredPrune(runtime=...)): the MACs target holds on the
exact count, output shapes stay, the report carries the measured latency, and the allocator
spends the MACs budget where the measured table says time is saved."""

from __future__ import annotations

import importlib

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.graph import ChannelGroup, Member
from torchslim.measure.macs import count_macs
from torchslim.prune.structured.allocate import MacsModel, allocate, counts_to_removal
from torchslim.prune.structured.latency import LatencyTable, candidate_counts, time_variants

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


def _convnet() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 48, 3, stride=2, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
        nn.Conv2d(48, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5),
    )
    return net.eval(), torch.randn(1, 3, 16, 16)


def _widths(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_meets_target_macs_and_keeps_shapes(runtime: str) -> None:
    net, x = _convnet()
    cfg = P.StructuredPrune(target_macs=0.5, runtime=runtime, latency_points=3)
    small = P.prune(net, cfg, example_inputs=x)
    m0, m1 = count_macs(net, (x,))[0], count_macs(small, (x,))[0]
    assert m1 <= 0.5 * m0
    assert _widths(net) == [32, 48, 32]  # input untouched
    x4 = torch.randn(4, 3, 16, 16)
    assert small(x4).shape == net(x4).shape == (4, 5)
    lat = small.slim_prune_report.latency
    assert lat["runtime"] == runtime and lat["batch_size"] == 1 and lat["threads"] == 1
    assert set(lat["measured_ms"]) == {"unpruned", "pruned"} and all(v > 0 for v in lat["measured_ms"].values())
    assert lat["estimated_ms"] > 0 and len(lat["tables"]) == 1
    # what the report says was kept is what the model has; kept counts are multiples of 8 (the default step)
    convs = [i for i, m in enumerate(small) if isinstance(m, nn.Conv2d)]
    assert lat["kept"] == {f"{i}:channels": w for i, w in zip(convs, _widths(small), strict=True)}
    assert all(v % 8 == 0 for v in lat["kept"].values())
    assert f"latency on {runtime}" in small.slim_prune_report.summary()


def test_target_latency_holds_on_the_table_estimate() -> None:
    net, x = _convnet()
    small = P.prune(net, P.StructuredPrune(target_latency=0.8, runtime="torch", latency_points=3), example_inputs=x)
    lat = small.slim_prune_report.latency
    table = lat["tables"][-1]
    assert lat["estimated_ms"] <= 0.8 * table["reference_ms"] + 1e-9  # the goal only tightens after re-measuring
    assert count_macs(small, (x,))[0] < count_macs(net, (x,))[0]
    assert small(x).shape == net(x).shape


def _two_groups() -> tuple[ChannelGroup, ChannelGroup, MacsModel, list[torch.Tensor]]:
    a = ChannelGroup(0, 8, [Member("a.weight", 0, 0, 1)])
    b = ChannelGroup(1, 8, [Member("b.weight", 0, 0, 1)])
    macs = MacsModel(base=10, layers=[(100, [(a, 1)]), (100, [(b, 1)])])
    return a, b, macs, [torch.arange(8.0), torch.arange(8.0)]


def test_allocator_spends_the_budget_where_time_is_saved() -> None:
    a, b, macs, scores = _two_groups()
    counts = {"a:channels": [2, 4, 6, 8], "b:channels": [2, 4, 6, 8]}
    # a: narrowing saves time; b: no measurable saving at any count
    table = LatencyTable("torch", 1, {"a:channels": 8, "b:channels": 8}, 10.0, counts=counts,
                         ms={"a:channels": [4.0, 6.0, 8.0, 10.0], "b:channels": [10.0] * 4})
    n = allocate([a, b], scores, table.counts_by_id([a, b]), table, macs, goal_macs=160)
    assert macs(n) <= 160
    assert n[id(a)] < 8 and n[id(b)] == 8
    n = allocate([a, b], scores, table.counts_by_id([a, b]), table, macs, goal_ms=6.5)
    assert table.estimate({"a:channels": n[id(a)], "b:channels": n[id(b)]}) <= 6.5 and n[id(b)] == 8
    removal = counts_to_removal([a, b], scores, n)
    assert removal[id(a)][1] == list(range(8 - n[id(a)]))  # the lowest-scored units go


def test_allocator_gives_back_what_a_jump_overshot() -> None:
    a, b, macs, scores = _two_groups()
    counts = {"a:channels": [2, 8], "b:channels": [6, 8]}
    table = LatencyTable("torch", 1, {"a:channels": 8, "b:channels": 8}, 10.0, counts=counts,
                         ms={"a:channels": [5.0, 10.0], "b:channels": [9.0, 10.0]})
    n = allocate([a, b], scores, table.counts_by_id([a, b]), table, macs, goal_macs=190)
    assert macs(n) <= 190
    assert n[id(a)] == 2 or n[id(b)] == 6  # one move meets the goal...
    assert not (n[id(a)] == 2 and n[id(b)] == 6)  # ...and the other is not taken as well


def test_candidate_counts_and_timer() -> None:
    g = ChannelGroup(0, 64, [])
    got = candidate_counts(g, 16, 4, 8)
    assert got == [16, 32, 48, 64]
    assert len(candidate_counts(g, 1, 1, 5)) == 5 and candidate_counts(g, 1, 1, 5)[-1] == 64
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'; known: torch, onnxruntime"):
        time_variants({"a": nn.ReLU()}, (torch.zeros(2),), "tensorrt")


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValidationError, match="target_latency needs runtime='torch' or 'onnxruntime'"):
        P.StructuredPrune(target_latency=0.5)
    with pytest.raises(ValidationError, match="not target_params"):
        P.StructuredPrune(target_params=0.5, runtime="torch")
    with pytest.raises(ValidationError, match="runtime=... needs a target: target_macs and/or target_latency"):
        P.StructuredPrune(runtime="onnxruntime")
    with pytest.raises(ValidationError, match=r"fraction to keep, in \(0, 1\]"):
        P.StructuredPrune(target_latency=1.5, runtime="torch")
    with pytest.raises(ValidationError, match="latency_points must be >= 2"):
        P.StructuredPrune(target_macs=0.5, runtime="torch", latency_points=1)
    with pytest.raises(ValidationError, match="runtime"):
        P.StructuredPrune(target_macs=0.5, runtime="tensorrt")
