"""Knowledge distillation: a student learns to mimic a teacher through the common training loop.

Losses are registered configs: :class:`KD` (logits), :class:`FeatureKD` (FitNets hints with
learnable adapters), :class:`AttentionKD` (attention transfer) and :class:`DKD` (decoupled KD).
The logit-KD math itself lives in :mod:`torchslim.train.kd` (``teacher_loss``), so pruning
recovery and QAT distil with the same function.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.distill import KD, distill
    >>> teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)
    >>> data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(2)]
    >>> distill(student, teacher, data, KD(), epochs=1, progress=False).training
    False
"""

from torchslim.distill.api import DistillReport, distill
from torchslim.distill.configs import DKD, KD, AttentionKD, FeatureKD
from torchslim.distill.distiller import Distiller
from torchslim.distill.losses import Adapter, attention_loss, attention_map, dkd_loss, hint_loss

__all__ = [
    "DKD", "KD", "Adapter", "AttentionKD", "DistillReport", "Distiller", "FeatureKD", "attention_loss",
    "attention_map", "distill", "dkd_loss", "hint_loss",
]
