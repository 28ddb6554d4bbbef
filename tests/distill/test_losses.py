"""The distillation losses against their closed forms on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torchslim.core.errors import ConfigError, InputError
from torchslim.distill import attention_loss, dkd_loss
from torchslim.train import LossContext, kd_loss, soft_kl, teacher_loss

S = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]  # student logits, 2 samples x 3 classes
T = [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]  # teacher logits
Y = [1, 2]


def _softmax(z: list[float], temp: float) -> list[float]:
    e = [math.exp(v / temp) for v in z]
    return [v / sum(e) for v in e]


def _closed_form_soft(temp: float) -> float:
    """T^2 * mean_b sum_c p_t log(p_t / p_s), written out by hand."""
    total = 0.0
    for s, t in zip(S, T, strict=True):
        ps, pt = _softmax(s, temp), _softmax(t, temp)
        total += sum(b * math.log(b / a) for a, b in zip(ps, pt, strict=True))
    return temp**2 * total / len(S)


def _closed_form_ce() -> float:
    return sum(-math.log(_softmax(s, 1.0)[y]) for s, y in zip(S, Y, strict=True)) / len(S)


@pytest.mark.parametrize("temp", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
def test_kd_loss_equals_its_closed_form(temp: float, alpha: float) -> None:
    s, t, y = torch.tensor(S, dtype=torch.float64), torch.tensor(T, dtype=torch.float64), torch.tensor(Y)
    expected = (1 - alpha) * _closed_form_ce() + alpha * _closed_form_soft(temp)
    assert float(kd_loss(s, t, y, temperature=temp, alpha=alpha)) == pytest.approx(expected, rel=1e-12)
    assert float(soft_kl(s, t, temp)) == pytest.approx(_closed_form_soft(temp), rel=1e-12)
    assert float(kd_loss(s, t, None, temperature=temp, alpha=alpha)) == pytest.approx(_closed_form_soft(temp), rel=1e-12)


def test_alpha_zero_is_cross_entropy_and_the_teacher_is_not_run() -> None:
    s, y = torch.randn(5, 4), torch.randint(0, 4, (5,))
    assert torch.equal(kd_loss(s, torch.randn(5, 4), y, alpha=0.0), F.cross_entropy(s, y))

    class Boom(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("the teacher ran at alpha 0 on a labelled batch")

    extra = teacher_loss(Boom(), alpha=0.0)
    ctx = LossContext(model=None, inputs=(torch.zeros(5, 4),), outputs=s, targets=y, epoch=1, step=0)
    assert extra.task_weight == 1.0 and float(extra(ctx)) == 0.0


def test_teacher_loss_in_fit_gives_the_mixed_total() -> None:
    """fit's total for a labelled batch is task_weight * CE + extra = the closed form."""
    teacher, student = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    x, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    extra = teacher_loss(teacher, temperature=2.0, alpha=0.25)
    ctx = LossContext(model=student, inputs=(x,), outputs=student(x), targets=y, epoch=1, step=0)
    total = extra.task_weight * F.cross_entropy(ctx.outputs, y) + extra(ctx)
    expected = kd_loss(student(x), teacher(x), y, temperature=2.0, alpha=0.25)
    assert torch.allclose(total, expected)
    ctx.targets = None  # a transfer-set batch: the whole soft term
    assert torch.allclose(extra(ctx), soft_kl(student(x), teacher(x), 2.0))


def test_kd_is_zero_for_a_copy_of_the_teacher_and_its_gradient_flows_to_the_student() -> None:
    z = torch.randn(4, 10, requires_grad=True)
    assert float(soft_kl(z, z.detach()).detach()) == pytest.approx(0.0, abs=1e-6)
    soft_kl(z, torch.randn(4, 10)).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_dkd_decomposes_kd() -> None:
    """Zhao et al.'s identity, per sample: KD = TCKD + (1 - p_t(target)) * NCKD."""
    torch.manual_seed(0)
    for _ in range(5):
        s, t, y = torch.randn(1, 6, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64), torch.randint(0, 6, (1,))
        temp = 3.0
        tckd = dkd_loss(s, t, y, temperature=temp, alpha=1.0, beta=0.0)
        nckd = dkd_loss(s, t, y, temperature=temp, alpha=0.0, beta=1.0)
        p_gt = F.softmax(t / temp, dim=-1)[0, y]
        assert float(soft_kl(s, t, temp)) == pytest.approx(float(tckd + (1 - p_gt) * nckd), rel=1e-9)
    assert float(dkd_loss(t, t, y)) == pytest.approx(0.0, abs=1e-9)


def test_attention_loss_compares_normalised_maps() -> None:
    f = torch.rand(2, 4, 6, 6)
    assert float(attention_loss(f, 3 * f.repeat(1, 2, 1, 1))) == pytest.approx(0.0, abs=1e-7)  # scale-free
    g = torch.rand(2, 8, 12, 12)  # a bigger teacher map is pooled to the student's size
    assert float(attention_loss(f, g)) > 0
    a = F.normalize(f.pow(2).mean(1).flatten(1), dim=1)
    b = F.normalize(F.adaptive_avg_pool2d(g.pow(2).mean(1, keepdim=True), 6).flatten(1), dim=1)
    assert float(attention_loss(f, g)) == pytest.approx(float((a - b).pow(2).mean()), rel=1e-5)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(InputError, match=r"teacher outputs shape \(2, 5\) but the student \(2, 3\)"):
        soft_kl(torch.zeros(2, 3), torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="temperature must be"):
        teacher_loss(torch.nn.Linear(2, 2), temperature=0.0)
    with pytest.raises(ConfigError, match=r"alpha .* must be in \[0, 1\]"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), alpha=1.5)
