"""fit with a teacher (task_weight), mixed labelled + unlabelled data, and sharding rules."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from train_helpers import make_mlp, same_weights, separable

import torchslim.train.dist as dist_mod
from torchslim.train import Callback, MixedData, fit, kd_loss, teacher_loss
from torchslim.train.mixed import Unlabelled


class FirstLoss(Callback):
    def __init__(self) -> None:
        self.loss: float | None = None

    def on_step_end(self, ctx) -> None:  # noqa: ANN001
        if self.loss is None:
            self.loss = ctx.loss


def test_fit_with_teacher_loss_optimises_the_mixed_objective() -> None:
    x, y = separable(64)
    teacher, student = make_mlp(seed=1, dropout=0.0), make_mlp(seed=2, dropout=0.0)
    start = copy.deepcopy(student)
    first = FirstLoss()
    fit(student, [(x, y)], epochs=1, lr=1e-3, extra_loss=teacher_loss(teacher, temperature=2.0, alpha=0.7),
        callbacks=[first], progress=False)
    expected = kd_loss(start(x), teacher(x), y, temperature=2.0, alpha=0.7)
    assert first.loss == pytest.approx(float(expected.detach()), rel=1e-6)


def test_a_student_learns_from_a_teacher_on_unlabelled_data_alone() -> None:
    x, y = separable(512)
    teacher = make_mlp(seed=0, dropout=0.0)
    fit(teacher, [(x[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)], epochs=20, lr=1e-2, progress=False)
    student = make_mlp(seed=5, dropout=0.0)
    unlabelled = [x[i:i + 64] for i in range(0, 512, 64)]
    fit(student, unlabelled, epochs=20, lr=1e-2, extra_loss=teacher_loss(teacher), progress=False)
    agree = (student(x).argmax(1) == teacher(x).argmax(1)).float().mean()
    assert agree > 0.9


def test_mixed_data_spreads_parts_evenly_and_fit_is_deterministic_on_it() -> None:
    mixed = MixedData(list(range(3)), list(range(10, 19)))
    order = mixed.order()
    assert len(mixed) == 12 and sorted(order) == [0] * 3 + [1] * 9
    assert [i for i, p in enumerate(order) if p == 0] == [1, 5, 9]  # one labelled batch in every 4
    x, y = separable(256)
    g1, g2 = torch.Generator(), torch.Generator()

    def data(g: torch.Generator) -> MixedData:
        labelled = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=32, shuffle=True, generator=g)
        return MixedData(labelled, Unlabelled(DataLoader(TensorDataset(x[128:]), batch_size=32, shuffle=True)))

    teacher = make_mlp(seed=9, dropout=0.0)
    runs = []
    for g in (g1, g2):
        net = make_mlp(seed=0)
        fit(net, data(g), epochs=2, extra_loss=teacher_loss(teacher), seed=4, progress=False)
        runs.append(net)
    assert same_weights(*runs)


def test_unlabelled_drops_targets_and_keeps_multiple_inputs() -> None:
    items = list(Unlabelled([(torch.zeros(2, 3), torch.ones(2)), ((torch.zeros(2, 3), torch.ones(2, 3)), torch.ones(2))]))
    assert len(items[0]) == 1 and items[0][0].shape == (2, 3)
    assert len(items[1]) == 1 and isinstance(items[1][0], tuple) and len(items[1][0]) == 2


def test_shard_splits_lists_loaders_and_mixed_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist_mod, "rank_and_world", lambda: (1, 2))
    assert dist_mod.shard(list(range(5)), seed=0) == [1, 3]
    x, y = separable(100)
    loader = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True)
    part = dist_mod.shard(loader, seed=7)
    assert isinstance(part.sampler, DistributedSampler) and part.sampler.rank == 1 and part.sampler.seed == 7
    assert part.sampler.shuffle and len(part) == 5 and part.batch_size == 10
    mixed = dist_mod.shard(MixedData(list(range(4)), loader), seed=0)
    assert isinstance(mixed, MixedData) and mixed.parts[0] == [1, 3] and len(mixed) == 2 + 5
    with pytest.raises(ValueError, match="fewer than the 2 ranks"):
        dist_mod.shard([0], seed=0)


def test_task_weight_scales_only_the_task_loss() -> None:
    class Half:
        task_weight = 0.5

        def __call__(self, ctx) -> torch.Tensor:  # noqa: ANN001
            return ctx.outputs.sum() * 0.0 + 1.0

    x, y = separable(32)
    net, first = make_mlp(dropout=0.0), FirstLoss()
    ce = float(F.cross_entropy(net(x), y).detach())
    fit(net, [(x, y)], epochs=1, extra_loss=Half(), callbacks=[first], progress=False)
    assert first.loss == pytest.approx(0.5 * ce + 1.0, rel=1e-6)
