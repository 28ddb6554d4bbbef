"""Logit knowledge distillation, shared by every fine-tuning entry point (distillation,
pruning recovery, QAT): the loss math and the ``teacher=`` extra loss for :func:`fit`.

With temperature ``T`` and mixing weight ``alpha`` (Hinton et al., 2015), per batch::

    soft = T^2 * KL(softmax(teacher / T) || softmax(student / T))      # batch mean
    loss = (1 - alpha) * CE(student, y) + alpha * soft                  # labelled batch
    loss = soft                                                         # unlabelled batch

The ``T^2`` keeps the soft term's gradients on the scale of the hard term's when ``T`` changes.
An unlabelled (transfer-set) batch has only the teacher as its target, so its loss is the
whole soft term; ``alpha = 0`` on labelled data is plain cross-entropy (the teacher is not run).

Example:
    >>> import torch
    >>> from torchslim.train import fit
    >>> from torchslim.train.kd import teacher_loss
    >>> teacher, student = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    >>> data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    >>> extra = teacher_loss(teacher, temperature=4.0, alpha=0.75)
    >>> extra.task_weight
    0.25
    >>> len(fit(student, data, epochs=1, extra_loss=extra, progress=False).history)
    1
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.errors import ConfigError, InputError
from torchslim.core.inputs import first_tensor
from torchslim.train.context import LossContext


def check_kd_args(temperature: float, alpha: float, where: str = "distillation") -> None:
    """ConfigError unless ``temperature`` > 0 (finite) and ``alpha`` in [0, 1]."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"{where}: temperature must be a finite number > 0, got {temperature!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ConfigError(f"{where}: alpha (the weight of the teacher's soft targets) must be in [0, 1], got {alpha!r}")


def check_logits(student: torch.Tensor, teacher: torch.Tensor, where: str = "distillation") -> None:
    """InputError unless student and teacher outputs have the same shape (same classes)."""
    if student.shape != teacher.shape:
        raise InputError(
            f"{where}: the teacher outputs shape {tuple(teacher.shape)} but the student "
            f"{tuple(student.shape)}; logit distillation needs the same number of outputs (classes) "
            "from both models"
        )


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, summed over classes (the last
    dimension) and averaged over every other position (the batch).

    Example:
        >>> import torch
        >>> z = torch.tensor([[1.0, 2.0, 3.0]])
        >>> float(soft_kl(z, z))
        0.0
    """
    check_logits(student_logits, teacher_logits)
    s = F.log_softmax(student_logits / temperature, dim=-1)  # (B, classes)
    t = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)  # (B, classes)
    kl = (t.exp() * (t - s)).sum(-1)  # (B,)
    return temperature**2 * kl.mean()


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """The whole distillation loss of one batch: ``(1 - alpha) * CE + alpha * soft_kl`` with
    ``targets``, ``soft_kl`` alone without (a transfer-set batch).

    Example:
        >>> import torch, torch.nn.functional as F
        >>> s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
        >>> bool(torch.isclose(kd_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y)))
        True
    """
    check_kd_args(temperature, alpha)
    if targets is None:
        return soft_kl(student_logits, teacher_logits, temperature)
    ce = F.cross_entropy(student_logits, targets)
    if alpha == 0:
        return ce
    return (1 - alpha) * ce + alpha * soft_kl(student_logits, teacher_logits, temperature)


def device_of(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter or buffer (None if it has neither)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return None


def teacher_forward(teacher: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Any:
    """Run ``teacher`` in eval mode without gradients on ``inputs``; the teacher is moved to
    the inputs' device first if it lives elsewhere. Returns the raw output."""
    device = inputs[0].device
    if device_of(teacher) not in (None, device):
        teacher.to(device)
    if teacher.training:
        teacher.eval()
    with torch.no_grad():
        return teacher(*inputs)


class TeacherLoss:
    """An ``extra_loss`` for :func:`torchslim.train.fit` that distils ``teacher``'s logits.

    ``task_weight`` (``1 - alpha``) tells ``fit`` how much of its task loss to keep, so the
    total of a labelled batch is ``(1 - alpha) * CE + alpha * soft_kl`` and of an unlabelled
    batch ``soft_kl``. The teacher runs in eval mode under ``torch.no_grad``.
    """

    def __init__(self, teacher: nn.Module, *, temperature: float = 4.0, alpha: float = 0.9) -> None:
        check_kd_args(temperature, alpha, "teacher_loss")
        if not isinstance(teacher, nn.Module):
            raise ConfigError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        self.teacher, self.temperature, self.alpha = teacher, float(temperature), float(alpha)
        self.task_weight = 1.0 - self.alpha

    def __call__(self, ctx: LossContext) -> torch.Tensor:
        if ctx.targets is not None and self.alpha == 0:
            return ctx.outputs.new_zeros(())
        t_logits = first_tensor(teacher_forward(self.teacher, ctx.inputs))  # (B, classes)
        soft = soft_kl(ctx.outputs, t_logits, self.temperature)
        return soft if ctx.targets is None else self.alpha * soft


def teacher_loss(teacher: nn.Module, *, temperature: float = 4.0, alpha: float = 0.9) -> TeacherLoss:
    """The ``extra_loss`` that adds logit distillation from ``teacher`` to a :func:`fit` run:
    ``fit(model, data, extra_loss=teacher_loss(teacher, temperature=4.0, alpha=0.9))``.

    Example:
        >>> import torch
        >>> teacher_loss(torch.nn.Linear(2, 2), alpha=0.5).task_weight
        0.5
    """
    return TeacherLoss(teacher, temperature=temperature, alpha=alpha)
