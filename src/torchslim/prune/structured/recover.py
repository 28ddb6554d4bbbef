"""Recovery after pruning: fine-tune with the common loop, optionally distilling from the
unpruned model (KL divergence of temperature-softened logits, added through ``extra_loss``).

Example:
    >>> import torch
    >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(2)]
    >>> student, teacher = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    >>> result = recover(student, data, epochs=1, teacher=teacher, progress=False)
    >>> len(result.history)
    1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.inputs import first_tensor
from torchslim.train import LossContext, TrainResult, fit


def kd_loss(teacher: nn.Module, temperature: float = 4.0, weight: float = 1.0) -> Callable[[LossContext], torch.Tensor]:
    """An ``extra_loss`` for :func:`torchslim.train.fit`: ``weight * T^2 * KL(teacher_T || student_T)``.

    Example:
        >>> import torch
        >>> from torchslim.train import LossContext
        >>> t = torch.nn.Linear(2, 3)
        >>> ctx = LossContext(model=t, inputs=(torch.zeros(1, 2),), outputs=t(torch.zeros(1, 2)),
        ...                   targets=None, epoch=1, step=0)
        >>> float(kd_loss(t)(ctx).detach()) < 1e-6
        True
    """
    teacher.eval()

    def loss(ctx: LossContext) -> torch.Tensor:
        with torch.no_grad():
            t_logits = first_tensor(teacher(*ctx.inputs))  # (B, classes)
        s = F.log_softmax(ctx.outputs / temperature, dim=-1)
        t = F.log_softmax(t_logits / temperature, dim=-1)
        return weight * temperature**2 * F.kl_div(s, t, log_target=True, reduction="batchmean")

    return loss


def recover(model: nn.Module, train_data: Iterable[Any], *, epochs: int, teacher: nn.Module | None = None,
            temperature: float = 4.0, kd_weight: float = 1.0, lr: float = 1e-3, **fit_options: Any) -> TrainResult:
    """Fine-tune the pruned ``model`` in place with :func:`torchslim.train.fit`; with ``teacher``
    (the unpruned model) the KD term of :func:`kd_loss` is added to the task loss."""
    extra = kd_loss(teacher, temperature, kd_weight) if teacher is not None else None
    return fit(model, train_data, epochs=epochs, lr=lr, extra_loss=extra, **fit_options)
