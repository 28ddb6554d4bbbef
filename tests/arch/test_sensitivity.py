"""Per-layer ranks by measured sensitivity: the target holds, the allocation is the least-loss
one, and on LeNet-300-100 it beats one uniform ratio at an aggressive budget."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from torch import nn

from torchslim import data, zoo
from torchslim.arch import LowRank, factorize
from torchslim.arch.sensitivity import LayerSensitivity, RankOption, allocate_ranks
from torchslim.core.config import config_from_yaml
from torchslim.core.errors import ConfigError
from torchslim.measure import evaluate
from torchslim.measure.macs import count_macs


def _weights(model: nn.Module, names: list[str]) -> int:
    return sum(model.get_submodule(n).weight.numel() for n in names)


def _toy() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 5)).eval()
    x = torch.randn(96, 3, 8, 8)
    with torch.no_grad():
        y = net(x).argmax(1)  # labels the model gets right: every factorization can only lose
    return net, [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]


@pytest.mark.parametrize("ratio", [0.6, 0.35])
def test_params_target_is_respected(ratio: float) -> None:
    net, loader = _toy()
    names = ["0", "2", "5"]
    cfg = LowRank(rank_selection="sensitivity", param_ratio=ratio, target={"include": names})
    small = factorize(net, cfg, data=loader, progress=False)
    replaced = {r.name for r in small.arch_report}
    kept = [n for n in names if n not in replaced]
    after = sum(r.params_after - (net.get_submodule(r.name).bias.numel()) for r in small.arch_report)
    after += _weights(net, kept)
    assert after <= ratio * _weights(net, names)
    assert {n for n, _ in small.arch_skipped} == set(kept)
    assert small(loader[0][0]).shape == net(loader[0][0]).shape
    assert isinstance(net[0], nn.Conv2d)  # the input model is untouched
    for row in small.arch_sensitivity:  # losses are non-increasing in rank, whole layer last at 0
        losses = [o.loss for o in row.options]
        assert losses == sorted(losses, reverse=True) and row.options[-1].rank is None and losses[-1] == 0


def test_macs_target_is_respected_on_measured_macs() -> None:
    net, loader = _toy()
    x = loader[0][0][:1]
    small = factorize(net, LowRank(rank_selection="sensitivity", macs_ratio=0.4), data=loader, progress=False)
    before, _ = count_macs(net, (x,))
    after, _ = count_macs(small, (x,))
    assert after <= 0.4 * before
    assert small.arch_report  # something was factorized


def _brute_force(table: list[LayerSensitivity], budget: float) -> float:
    best = float("inf")
    for combo in itertools.product(*(row.options for row in table)):
        if sum(o.cost for o in combo) <= budget:
            best = min(best, sum(o.loss for o in combo))
    return best


def test_allocation_is_the_least_loss_choice_within_budget() -> None:
    rng = random.Random(0)
    for _ in range(30):
        table = []
        for i in range(rng.randint(2, 4)):
            whole = rng.randint(50, 400)
            costs = sorted(rng.sample(range(1, whole), 3))
            losses = sorted((rng.random() for _ in costs), reverse=True)
            table.append(LayerSensitivity(f"l{i}", "params", [*(RankOption(r + 1, c, lo, lo) for r, (c, lo) in
                                                      enumerate(zip(costs, losses, strict=True))), RankOption(None, whole, 0.0)]))
        ratio = rng.uniform(0.3, 0.9)
        full = sum(row.full_cost for row in table)
        if sum(row.options[0].cost for row in table) > ratio * full:
            continue
        chosen = allocate_ranks(table, ratio=ratio, grid=20000)
        assert sum(o.cost for o in chosen.values()) <= ratio * full
        assert sum(o.loss for o in chosen.values()) <= _brute_force(table, ratio * full * (1 - 1e-3)) + 1e-9


def test_sensitivity_beats_a_uniform_ratio_on_lenet300() -> None:
    teacher = zoo.teacher("lenet300-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=250, seed=0)
    target = {"exclude": ["fc3"]}
    uniform = factorize(teacher, LowRank(param_ratio=0.06, target=target))
    chosen = factorize(teacher, LowRank(rank_selection="sensitivity", param_ratio=0.06, target=target),
                       data=splits.val, progress=False)  # ranks chosen on val, judged on test
    weights = sum(r.params_after - teacher.get_submodule(r.name).bias.numel() for r in chosen.arch_report)
    assert weights <= 0.06 * (teacher.fc1.weight.numel() + teacher.fc2.weight.numel())
    acc_uniform, acc_chosen = evaluate(uniform, splits.test), evaluate(chosen, splits.test)
    assert acc_chosen > acc_uniform + 0.05, f"sensitivity {acc_chosen:.3f} vs uniform {acc_uniform:.3f}"


def test_sensitivity_needs_data_and_a_target() -> None:
    net, loader = _toy()
    with pytest.raises(ConfigError, match="needs data"):
        factorize(net, LowRank(rank_selection="sensitivity", param_ratio=0.3))
    with pytest.raises(ConfigError, match="needs a target"):
        LowRank(rank_selection="sensitivity")
    with pytest.raises(ConfigError, match="do not also give rank"):
        LowRank(rank_selection="sensitivity", param_ratio=0.3, rank=4)
    with pytest.raises(ConfigError, match="not both"):
        LowRank(param_ratio=0.3, macs_ratio=0.3)
    with pytest.raises(ConfigError, match="candidates"):
        LowRank(rank_selection="sensitivity", param_ratio=0.3, candidates=(0.1, 1.5))
    with pytest.raises(ConfigError, match="only by LowRank"):
        factorize(net, LowRank(param_ratio=0.3), data=loader)
    with pytest.raises(ConfigError, match="smallest candidate ranks"):
        factorize(net, LowRank(rank_selection="sensitivity", param_ratio=0.01, candidates=(0.5,)), data=loader,
                  progress=False)


def test_sensitivity_config_round_trips() -> None:
    cfg = LowRank(rank_selection="sensitivity", macs_ratio=0.25, candidates=(0.3, 0.1), target={"exclude": ["fc3"]})
    assert cfg.candidates == (0.1, 0.3)
    assert config_from_yaml(cfg.to_yaml()) == cfg
