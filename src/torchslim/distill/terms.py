"""One loss term per config, registered as the config's handler: what the student is taught,
from which features, with which learnable adapters.

A term gets the student's logits and features (with gradients), the teacher's (without), the
targets (``None`` on a transfer-set batch) and the epoch; ``task_weight`` is how much of the
task loss ``fit`` keeps on labelled batches.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.core.config import handler_for
    >>> from torchslim.distill.configs import KD
    >>> net = nn.Linear(4, 3)
    >>> term = handler_for(KD(alpha=0.5), "distill")(KD(alpha=0.5), net, net)
    >>> term.task_weight, term.student_paths
    (0.5, [])
"""

from __future__ import annotations

import torch
from torch import nn

from torchslim.core.config import register_handler
from torchslim.core.hooks import last_linear
from torchslim.distill.configs import DKD, KD, AttentionKD, FeatureKD
from torchslim.distill.losses import Adapter, attention_loss, check_feature_map, dkd_loss, hint_loss
from torchslim.train.kd import soft_kl


class Term(nn.Module):
    """Base of the loss terms: logit KD with ``temperature`` and ``alpha`` from ``config``,
    plus what a subclass adds in :meth:`features_loss`."""

    def __init__(self, config: KD | FeatureKD | AttentionKD | DKD, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.student_paths: list[str] = []
        self.teacher_paths: list[str] = []
        self.task_weight = 1.0 - getattr(config, "alpha", 0.0)

    def build(self, student_features: list[torch.Tensor], teacher_features: list[torch.Tensor]) -> None:
        """Called once with features of a first batch (no gradients), to create adapters."""

    def needs_teacher(self, labelled: bool) -> bool:
        """Whether a batch needs the teacher's forward pass at all."""
        return not labelled or self.task_weight < 1.0 or bool(self.teacher_paths)

    def logits_loss(self, s: torch.Tensor, t: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        alpha = self.config.alpha
        if targets is not None and alpha == 0:
            return s.new_zeros(())
        soft = soft_kl(s, t, self.config.temperature)
        return soft if targets is None else alpha * soft

    def features_loss(self, s: list[torch.Tensor], t: list[torch.Tensor]) -> torch.Tensor | float:
        return 0.0

    def forward(
        self, s_logits: torch.Tensor, t_logits: torch.Tensor, s_features: list[torch.Tensor],
        t_features: list[torch.Tensor], targets: torch.Tensor | None, epoch: int,
    ) -> torch.Tensor:
        return self.logits_loss(s_logits, t_logits, targets) + self.features_loss(s_features, t_features)


@register_handler(KD)
class KDTerm(Term):
    """Logit KD only."""


@register_handler(FeatureKD)
class FeatureTerm(Term):
    """Logit KD plus FitNets hints through learnable adapters."""

    def __init__(self, config: FeatureKD, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(config, student, teacher)
        self.student_paths = list(config.student_layers) or [f"{last_linear(student)}:input"]
        self.teacher_paths = list(config.teacher_layers) or [f"{last_linear(teacher)}:input"]
        self.adapters = nn.ModuleList()

    def build(self, student_features: list[torch.Tensor], teacher_features: list[torch.Tensor]) -> None:
        device = student_features[0].device
        self.adapters = nn.ModuleList(
            Adapter(s, t).to(device) for s, t in zip(student_features, teacher_features, strict=True)
        )

    def features_loss(self, s: list[torch.Tensor], t: list[torch.Tensor]) -> torch.Tensor:
        hints = [hint_loss(a(f_s), f_t) for a, f_s, f_t in zip(self.adapters, s, t, strict=True)]
        return self.config.weight * torch.stack(hints).mean()


def last_conv(model: nn.Module) -> str:
    """The path of the model's last Conv1d/Conv2d output; without convolutions its last
    Linear's input, which AttentionKD then refuses with a message naming it."""
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    return names[-1] if names else f"{last_linear(model)}:input"


@register_handler(AttentionKD)
class AttentionTerm(Term):
    """Logit KD plus attention transfer on feature maps."""

    def __init__(self, config: AttentionKD, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(config, student, teacher)
        self.student_paths = list(config.student_layers) or [last_conv(student)]
        self.teacher_paths = list(config.teacher_layers) or [last_conv(teacher)]

    def build(self, student_features: list[torch.Tensor], teacher_features: list[torch.Tensor]) -> None:
        for where, paths, feats in (("student", self.student_paths, student_features),
                                    ("teacher", self.teacher_paths, teacher_features)):
            for path, f in zip(paths, feats, strict=True):
                check_feature_map(f, path, where)

    def features_loss(self, s: list[torch.Tensor], t: list[torch.Tensor]) -> torch.Tensor:
        maps = [attention_loss(f_s, f_t, self.config.p) for f_s, f_t in zip(s, t, strict=True)]
        return self.config.weight / 2 * torch.stack(maps).sum()


@register_handler(DKD)
class DKDTerm(Term):
    """Decoupled KD; the teacher's top class stands in for missing targets."""

    def __init__(self, config: DKD, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(config, student, teacher)
        self.task_weight = config.ce_weight

    def needs_teacher(self, labelled: bool) -> bool:
        return True

    def forward(
        self, s_logits: torch.Tensor, t_logits: torch.Tensor, s_features: list[torch.Tensor],
        t_features: list[torch.Tensor], targets: torch.Tensor | None, epoch: int,
    ) -> torch.Tensor:
        c = self.config
        ramp = min(1.0, epoch / c.warmup_epochs) if c.warmup_epochs else 1.0
        y = targets if targets is not None else t_logits.argmax(-1)  # (B,)
        return ramp * dkd_loss(s_logits, t_logits, y, temperature=c.temperature, alpha=c.alpha, beta=c.beta)

