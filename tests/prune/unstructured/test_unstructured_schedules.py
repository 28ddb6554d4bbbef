"""Gradual pruning (Zhu & Gupta's cubic ramp, as a fit callback) and lottery-ticket rewinding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.prune.api import prune
from torchslim.prune.unstructured import (
    GradualPrune,
    GradualPruner,
    LotteryTicket,
    get_masks,
    lottery_ticket,
    masked_layers,
)
from torchslim.train import fit


class Crash(Exception):
    pass


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 4))


def _data(n: int = 128, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = x[:, :4].argmax(1)
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, n, 32)]  # 4 steps per epoch


def _zeros(model: nn.Module) -> int:
    return sum(int((m.weight == 0).sum()) for m in masked_layers(model).values())


TOTAL = 16 * 32 + 32 * 8 + 8 * 4  # 800 prunable weights


class Record:
    """Records the achieved global sparsity after every step (runs after the pruner)."""

    def __init__(self) -> None:
        self.by_step: dict[int, float] = {}

    def on_step_end(self, ctx) -> None:
        self.by_step[ctx.global_step] = _zeros(ctx.model) / TOTAL


def test_gradual_follows_the_cubic_ramp_and_hits_the_final_sparsity() -> None:
    net = _mlp()
    cfg = GradualPrune(final_sparsity=0.8, start_epoch=1, end_epoch=4, frequency=3)
    pruner, rec = GradualPruner(net, cfg), Record()
    fit(net, _data(), epochs=5, callbacks=[pruner, rec], progress=False)
    t0, t_end = 4, 16  # 4 steps per epoch
    last = 0.0
    for t in range(1, 21):
        if t0 <= t <= t_end and ((t - t0) % 3 == 0 or t == t_end):
            last = 0.8 + (0.0 - 0.8) * (1 - (t - t0) / (t_end - t0)) ** 3  # Zhu & Gupta
        expected = round(last * TOTAL) / TOTAL
        assert rec.by_step[t] == pytest.approx(expected, abs=1e-9), t
    assert rec.by_step[t_end] == pytest.approx(0.8) and rec.by_step[20] == pytest.approx(0.8)
    assert 0.0 < rec.by_step[10] < 0.8 and rec.by_step[3] == 0.0
    # masks only grew, and the pruned weights stayed zero while training went on
    assert pruner.sparsity == pytest.approx(0.8)
    for m in masked_layers(net).values():
        assert m.parametrizations.weight.original[~m.parametrizations.weight[0].mask].abs().sum() == 0


def test_gradual_layer_scope_prunes_every_layer_equally() -> None:
    net = prune(_mlp(), GradualPrune(final_sparsity=0.5, end_epoch=2, frequency=2, scope="layer"),
                train_data=_data(), epochs=3, progress=False)
    sizes = {"0": 512, "2": 256, "4": 32}
    assert {n: int((m.weight == 0).sum()) for n, m in masked_layers(net).items()} == {
        n: s // 2 for n, s in sizes.items()
    }


def test_gradual_resumes_from_a_checkpoint_to_the_same_weights(tmp_path: Path) -> None:
    cfg = GradualPrune(final_sparsity=0.7, start_epoch=0, end_epoch=3, frequency=2)
    straight = _mlp()
    fit(straight, _data(), epochs=4, callbacks=[GradualPruner(straight, cfg)], progress=False)

    class CrashAt:
        def on_step_end(self, ctx) -> None:
            if ctx.epoch == 3 and ctx.step == 1:
                raise Crash

    first = _mlp()
    with pytest.raises(Crash):
        fit(first, _data(), epochs=4, callbacks=[GradualPruner(first, cfg), CrashAt()],
            checkpoint_dir=tmp_path, progress=False)
    resumed = _mlp()  # a new process: fresh model, fresh callback
    pruner = GradualPruner(resumed, cfg)
    result = fit(resumed, _data(), epochs=4, callbacks=[pruner], checkpoint_dir=tmp_path, progress=False)
    assert result.resumed_from == 2
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert pruner.sparsity == pytest.approx(0.7)


def test_gradual_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="0 <= start_epoch < end_epoch"):
        GradualPrune(start_epoch=3, end_epoch=2)
    with pytest.raises(ValueError, match=r"final_sparsity must be in \[0, 1\)"):
        GradualPrune(final_sparsity=1.0)
    with pytest.raises(ConfigError, match="pass train_data= and epochs="):
        prune(_mlp(), GradualPrune(end_epoch=2))
    with pytest.raises(ConfigError, match="ends its ramp at epoch 5, but training runs 2 epochs"):
        prune(_mlp(), GradualPrune(end_epoch=5), train_data=_data(), epochs=2, progress=False)


def test_lottery_ticket_rewinds_survivors_to_the_saved_early_weights() -> None:
    net = _mlp()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = LotteryTicket(rounds=2, sparsity_per_round=0.5, rewind_epoch=1)
    ticket, saved = lottery_ticket(net, cfg, train_data=_data(), epochs=2, train_final=False,
                                   lr=1e-2, progress=False)
    assert _zeros(ticket) == round(0.75 * TOTAL)
    for name, module in masked_layers(ticket).items():
        keep = module.parametrizations.weight[0].mask
        early = saved[f"{name}.parametrizations.weight.original"]
        assert torch.equal(module.weight[keep], early[keep])  # survivors: the rewind point
        assert (module.weight[~keep] == 0).all()
        assert not torch.equal(early, initial[f"{name}.weight"])  # rewound to epoch 1, not 0
        assert torch.equal(module.bias, saved[f"{name}.bias"])


def test_lottery_ticket_through_prune_trains_the_ticket() -> None:
    cfg = LotteryTicket(rounds=2, sparsity_per_round=0.5, scope="layer")
    net = _mlp()
    ticket = prune(net, cfg, train_data=_data(), epochs=1, progress=False)
    assert {n: round(float((m.weight == 0).float().mean()), 3) for n, m in masked_layers(ticket).items()} == {
        "0": 0.75, "2": 0.75, "4": 0.75
    }
    assert not masked_layers(net)  # the input is untouched
    plain = prune(net, cfg, train_data=_data(), epochs=1, progress=False, permanent=True)
    assert not masked_layers(plain) and sum(int((m.weight == 0).sum()) for m in plain if isinstance(m, nn.Linear)) == 600
    with pytest.raises(ConfigError, match="train_data= and epochs="):
        prune(net, cfg)
    with pytest.raises(ValueError, match=r"sparsity_per_round must be in \(0, 1\)"):
        LotteryTicket(sparsity_per_round=0.0)
    assert get_masks(ticket).keys() == {"0", "2", "4"}
