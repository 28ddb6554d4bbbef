"""The one training loop every technique uses: fine-tuning, QAT, distillation (``teacher_loss``),
under ``torchrun`` too.

Example:
    >>> import torch
    >>> from torchslim.train import fit
    >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(4)]
    >>> result = fit(torch.nn.Linear(4, 3), data, epochs=2, progress=False)
    >>> [r.epoch for r in result.history]
    [1, 2]
"""

from torchslim.train.checkpoint import load_checkpoint
from torchslim.train.context import Callback, EpochRecord, LossContext, TrainContext, TrainResult
from torchslim.train.dist import is_main_process, rank_and_world
from torchslim.train.kd import TeacherLoss, kd_loss, soft_kl, teacher_loss
from torchslim.train.loop import fit
from torchslim.train.mixed import MixedData
from torchslim.train.optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_scheduler

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "Callback", "EpochRecord", "LossContext", "MixedData", "TeacherLoss",
    "TrainContext", "TrainResult", "fit", "is_main_process", "kd_loss", "load_checkpoint",
    "make_optimizer", "make_scheduler", "rank_and_world", "soft_kl", "teacher_loss",
]
