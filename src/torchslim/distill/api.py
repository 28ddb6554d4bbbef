"""The public verb ``distill``: train a student to mimic a teacher through the common loop.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.distill import KD, distill
    >>> teacher = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> student = nn.Linear(4, 3)
    >>> data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(4)]
    >>> extra = torch.randn(64, 4)  # unlabelled inputs: the teacher labels them
    >>> small = distill(student, teacher, data, KD(temperature=4.0, alpha=0.9), epochs=2,
    ...                 transfer_data=extra, progress=False)
    >>> small is student, small.distill_report.transfer_batches
    (False, 4)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from torchslim.core.config import Config
from torchslim.core.errors import ConfigError
from torchslim.core.inputs import batch_of
from torchslim.data.transfer import transfer_loader
from torchslim.distill.configs import KD
from torchslim.distill.distiller import Distiller
from torchslim.train import fit
from torchslim.train.kd import device_of
from torchslim.train.mixed import MixedData, Unlabelled


@dataclass
class DistillReport:
    """What ``distill`` attaches to the student it returns (``student.distill_report``)."""

    config: dict[str, Any]
    epochs: int
    labelled_batches: int
    transfer_batches: int
    best_val: float | None = None
    final_val: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _batch_size(data: Any) -> int:
    """The labelled data's batch size (a DataLoader's, else the first batch's), or 64."""
    size = getattr(data, "batch_size", None)
    if isinstance(size, int) and size > 0:
        return size
    if isinstance(data, (list, tuple)) and data:
        inputs, _ = batch_of(data[0])
        if inputs[0].dim() > 0:
            return int(inputs[0].shape[0])
    return 64


def _training_data(train_data: Iterable[Any] | None, transfer_data: Any, seed: int) -> tuple[Any, int, int]:
    """(what fit iterates, labelled batches, transfer batches) per epoch."""
    if train_data is None and transfer_data is None:
        raise ConfigError("distill needs train_data (labelled batches), transfer_data (unlabelled inputs), or both")
    if transfer_data is None:
        return train_data, len(train_data), 0  # type: ignore[arg-type]
    if isinstance(transfer_data, torch.Tensor):
        transfer: Any = transfer_loader(transfer_data, batch_size=_batch_size(train_data), seed=seed)
    else:
        transfer = Unlabelled(transfer_data)
    if train_data is None:
        return transfer, 0, len(transfer)
    return MixedData(train_data, transfer), len(train_data), len(transfer)  # type: ignore[arg-type]


def distill(
    student: nn.Module,
    teacher: nn.Module,
    train_data: Iterable[Any] | None,
    config: Config | None = None,
    *,
    epochs: int,
    val_data: Iterable[Any] | None = None,
    transfer_data: Any = None,
    inplace: bool = False,
    lr: float = 1e-3,
    **fit_options: Any,
) -> nn.Module:
    """Train ``student`` to mimic ``teacher`` with the loss ``config`` names (default
    :class:`KD`) and return the trained student, in eval mode (a copy unless ``inplace``).

    - ``train_data``: labelled ``(x, y)`` batches (or ``None`` with a transfer set only).
    - ``transfer_data``: unlabelled inputs the teacher labels on the fly: a tensor (N, ...)
      (batched like ``train_data``, shuffled), or a DataLoader / list of batches (labels in
      them are ignored). Its batches are interleaved with the labelled ones in every epoch.
    - ``fit_options`` go to :func:`torchslim.train.fit` (``optimizer``, ``schedule``,
      ``weight_decay``, ``seed``, ``checkpoint_dir``, ``keep_best``, ``callbacks``,
      ``progress``, ...); under ``torchrun`` it trains with DistributedDataParallel.

    The teacher runs in eval mode without gradients; its weights, mode and device are the same
    afterwards. Learnable adapters (FeatureKD) are trained with the student and dropped. The
    student gets ``distill_report`` (:class:`DistillReport`).
    """
    if not isinstance(config, Config) and config is not None:
        raise ConfigError(f"distill: config must be a distillation config such as KD(), got {type(config).__name__}")
    for key in ("extra_loss", "model"):
        if key in fit_options:
            raise ConfigError(f"distill sets {key} itself; it cannot be passed")
    config = config or KD()
    data, n_labelled, n_transfer = _training_data(train_data, transfer_data, int(fit_options.get("seed", 0)))
    model = student if inplace else copy.deepcopy(student)
    teacher_mode, teacher_device = teacher.training, device_of(teacher)
    example = next(iter(data))
    distiller = Distiller(model, teacher, config, example)
    try:
        fit_options.setdefault("description", "distill")
        result = fit(distiller, data, epochs=epochs, val_data=val_data, lr=lr, extra_loss=distiller.extra_loss,
                     **fit_options)
    finally:
        distiller.close()
        teacher.train(teacher_mode)
        if teacher_device is not None:
            teacher.to(teacher_device)
    model.distill_report = DistillReport(
        config=config.to_dict(), epochs=epochs, labelled_batches=n_labelled, transfer_batches=n_transfer,
        best_val=result.best_val, final_val=result.final_val, history=[r.as_dict() for r in result.history],
    )
    return model.eval()
