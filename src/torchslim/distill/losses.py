"""The distillation losses beyond plain logit KD (which lives in :mod:`torchslim.train.kd`,
shared with pruning recovery and QAT): decoupled KD, attention transfer, feature hints and
their learnable adapters.

Example:
    >>> import torch
    >>> from torchslim.distill.losses import dkd_loss
    >>> z, y = torch.randn(4, 10), torch.randint(0, 10, (4,))
    >>> float(dkd_loss(z, z, y)) < 1e-6  # a student equal to its teacher has nothing to learn
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.train.kd import check_logits


def dkd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, *,
    temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0,
) -> torch.Tensor:
    """Decoupled KD: ``alpha * TCKD + beta * NCKD`` (Zhao et al., 2022), batch mean.

    TCKD is the KL divergence of the binary (target, rest) distributions, NCKD that of the
    distributions over the non-target classes; both at temperature ``T``, times ``T^2``.

    Example:
        >>> import torch
        >>> s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
        >>> float(dkd_loss(s, t, y)) > 0
        True
    """
    check_logits(student_logits, teacher_logits, "DKD")
    t_logits = teacher_logits.detach()
    gt = F.one_hot(targets, student_logits.shape[-1]).bool()  # (B, classes)
    s_log = F.log_softmax(student_logits / temperature, dim=-1)  # (B, classes)
    t_log = F.log_softmax(t_logits / temperature, dim=-1)

    def binary(log_p: torch.Tensor) -> torch.Tensor:  # (B, 2): log p(target), log p(rest)
        target = log_p.masked_fill(~gt, float("-inf")).logsumexp(-1)
        rest = log_p.masked_fill(gt, float("-inf")).logsumexp(-1)
        return torch.stack([target, rest], dim=-1)

    s_bin, t_bin = binary(s_log), binary(t_log)
    tckd = (t_bin.exp() * (t_bin - s_bin)).sum(-1).mean()
    low = torch.finfo(student_logits.dtype).min  # finite: no inf - inf at the masked target
    s_nt = F.log_softmax((student_logits / temperature).masked_fill(gt, low), dim=-1)  # (B, classes)
    t_nt = F.log_softmax((t_logits / temperature).masked_fill(gt, low), dim=-1)
    nckd = (t_nt.exp() * (t_nt - s_nt)).masked_fill(gt, 0.0).sum(-1).mean()
    return temperature**2 * (alpha * tckd + beta * nckd)


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``mean_c |F|^p`` of a feature map (B, C, *spatial) -> (B, *spatial).

    Example:
        >>> import torch
        >>> attention_map(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 4, 4])
    """
    return feature.abs().pow(p).mean(1)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Mean squared difference of the flattened, L2-normalised attention maps of two feature
    maps; maps of different spatial sizes are average-pooled to the smaller one.

    Example:
        >>> import torch
        >>> f = torch.rand(2, 4, 6, 6)
        >>> float(attention_loss(f, 3 * f.repeat(1, 2, 1, 1))) < 1e-12  # scale- and width-free
        True
    """
    a_s, a_t = attention_map(student, p), attention_map(teacher.detach(), p)  # (B, *spatial)
    if a_s.shape[1:] != a_t.shape[1:]:
        size = tuple(min(a, b) for a, b in zip(a_s.shape[1:], a_t.shape[1:], strict=True))
        pool = F.adaptive_avg_pool1d if a_s.dim() == 2 else F.adaptive_avg_pool2d
        a_s, a_t = (pool(a.unsqueeze(1), size).squeeze(1) for a in (a_s, a_t))
    a_s = F.normalize(a_s.flatten(1), dim=1)  # (B, positions)
    a_t = F.normalize(a_t.flatten(1), dim=1)
    return (a_s - a_t).pow(2).mean()


class Adapter(nn.Module):
    """Maps a student feature onto the shape of the teacher's: a 1x1 convolution (plus
    average pooling to the teacher's spatial size) for feature maps of the same rank, else a
    linear map of the flattened feature.

    Example:
        >>> import torch
        >>> a = Adapter(torch.zeros(2, 8, 5, 5), torch.zeros(2, 16, 10, 10))
        >>> a(torch.zeros(2, 8, 5, 5)).shape
        torch.Size([2, 16, 10, 10])
    """

    def __init__(self, student: torch.Tensor, teacher: torch.Tensor) -> None:
        super().__init__()
        self.out_shape = tuple(teacher.shape[1:])
        if student.dim() == teacher.dim() and student.dim() in (3, 4):
            conv = nn.Conv1d if student.dim() == 3 else nn.Conv2d
            self.map: nn.Module = conv(student.shape[1], teacher.shape[1], kernel_size=1)
            self.pool = student.shape[2:] != teacher.shape[2:]
        else:
            self.map = nn.Sequential(nn.Flatten(), nn.Linear(student[0].numel(), teacher[0].numel()))
            self.pool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.map(x)
        if self.pool:
            pool = F.adaptive_avg_pool1d if y.dim() == 3 else F.adaptive_avg_pool2d
            y = pool(y, self.out_shape[1:])
        return y.reshape(len(x), *self.out_shape)


def hint_loss(adapted: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between an adapted student feature and the teacher's (FitNets)."""
    return F.mse_loss(adapted, teacher.detach())


def check_feature_map(feature: torch.Tensor, path: str, where: str) -> None:
    """ConfigError unless ``feature`` is a map (B, C, L) or (B, C, H, W) (attention transfer)."""
    if feature.dim() not in (3, 4):
        raise ConfigError(
            f"AttentionKD: {where} feature {path!r} has shape {tuple(feature.shape)}; attention "
            "transfer needs feature maps (B, C, L) or (B, C, H, W), e.g. a convolution's output"
        )
