"""Recovery after pruning: fine-tune with the common loop, optionally distilling from the
unpruned model, added through ``extra_loss``: the shared logit distillation of
:func:`torchslim.train.kd.teacher_loss` (classifiers), or, for models whose output is an
embedding or a hidden state (sentence encoders), a cosine + mean-squared match of the outputs
(``match="outputs"``), which also works on unlabelled data.

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
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.inputs import first_tensor
from torchslim.train import LossContext, TrainResult, fit
from torchslim.train.kd import teacher_loss


def output_match_loss(teacher: nn.Module, weight: float = 1.0) -> Callable[[LossContext], torch.Tensor]:
    """An ``extra_loss`` matching the student's output to the teacher's, over the last dim:
    ``weight * (mean(1 - cos) + mse / mean(teacher^2))`` (scale-free, so it suits embeddings
    and hidden states of any magnitude).

    Example:
        >>> import torch
        >>> from torchslim.train import LossContext
        >>> t = torch.nn.Linear(2, 3)
        >>> ctx = LossContext(model=t, inputs=(torch.ones(4, 2),), outputs=t(torch.ones(4, 2)),
        ...                   targets=None, epoch=1, step=0)
        >>> float(output_match_loss(t)(ctx).detach()) < 1e-6
        True
    """
    teacher.eval()

    def loss(ctx: LossContext) -> torch.Tensor:
        with torch.no_grad():
            ref = first_tensor(teacher(*ctx.inputs))  # (..., D)
        cos = F.cosine_similarity(ctx.outputs, ref, dim=-1).mean()
        mse = F.mse_loss(ctx.outputs, ref) / ref.pow(2).mean().clamp_min(1e-12)
        return weight * (1 - cos + mse)

    return loss


def recover(model: nn.Module, train_data: Iterable[Any], *, epochs: int, teacher: nn.Module | None = None,
            temperature: float = 4.0, kd_weight: float | None = None, alpha: float | None = None, lr: float = 1e-3,
            match: Literal["logits", "outputs"] = "logits", **fit_options: Any) -> TrainResult:
    """Fine-tune the pruned ``model`` in place with :func:`torchslim.train.fit`; with ``teacher``
    (the unpruned model) a distillation term is added to the task loss.

    - ``match="logits"``: :func:`torchslim.train.kd.teacher_loss`, i.e. per labelled batch
      ``(1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T)`` (``T = temperature``);
      unlabelled batches (``(x,)``) train on ``T^2 * KL`` alone. ``kd_weight`` (the weight of
      the KL term next to an unweighted CE, as before) maps to ``alpha = kd_weight / (1 +
      kd_weight)``: the same mix, the whole loss scaled by ``1 / (1 + kd_weight)`` (Adam does
      not see that scale; with SGD, scale ``lr`` by ``1 + kd_weight`` to match). Give ``alpha`` or
      ``kd_weight``, not both; neither means ``kd_weight=1``, i.e. ``alpha=0.5``.
    - ``match="outputs"``: :func:`output_match_loss` with weight ``kd_weight`` (default 1), for
      embeddings and hidden states.

    Example:
        >>> import torch
        >>> data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(2)]
        >>> net, teacher = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
        >>> len(recover(net, data, epochs=1, teacher=teacher, alpha=0.9, progress=False).history)
        1
    """
    if match not in ("logits", "outputs"):
        raise ConfigError(f"recover: match must be 'logits' or 'outputs', got {match!r}")
    if alpha is not None and kd_weight is not None:
        raise ConfigError(f"recover: give alpha or kd_weight, not both (alpha = kd_weight / (1 + kd_weight)); "
                          f"got alpha={alpha}, kd_weight={kd_weight}")
    if alpha is not None and match == "outputs":
        raise ConfigError("recover: alpha mixes cross-entropy with logit distillation (match='logits'); "
                          "match='outputs' is weighted by kd_weight")
    if kd_weight is not None and not kd_weight >= 0:
        raise ConfigError(f"recover: kd_weight must be >= 0, got {kd_weight}")
    extra = None
    if teacher is not None:
        weight = 1.0 if kd_weight is None else float(kd_weight)
        if match == "logits":
            extra = teacher_loss(teacher, temperature=temperature, alpha=alpha if alpha is not None else weight / (1 + weight))
        else:
            extra = output_match_loss(teacher, weight)
    return fit(model, train_data, epochs=epochs, lr=lr, extra_loss=extra, **fit_options)
