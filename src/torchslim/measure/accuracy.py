"""Accuracy (or any metric) of a model over a DataLoader.

Example:
    >>> import torch
    >>> from torchslim.measure.accuracy import evaluate
    >>> model = torch.nn.Linear(2, 2)
    >>> data = [(torch.randn(8, 2), torch.randint(0, 2, (8,)))]
    >>> 0.0 <= evaluate(model, data) <= 1.0
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import InputError
from torchslim.core.inputs import batch_of, first_tensor

# A metric maps (outputs, targets) of one batch to (sum of per-sample scores, sample count).
BatchMetric = Callable[[torch.Tensor, torch.Tensor], tuple[float, int]]


def top1(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, int]:
    """Correct top-1 predictions and the batch size: ``outputs`` (B, classes), ``targets`` (B,)."""
    if outputs.dim() != 2 or targets.dim() != 1 or outputs.shape[0] != targets.shape[0]:
        raise InputError(
            f"top-1 accuracy needs outputs (B, classes) and targets (B,); got {tuple(outputs.shape)} "
            f"and {tuple(targets.shape)}"
        )
    return float((outputs.argmax(dim=1) == targets).sum()), int(targets.shape[0])


@torch.inference_mode()
def evaluate(
    model: nn.Module | Callable[..., Any],
    data: Iterable[Any],
    metric: BatchMetric | None = None,
) -> float:
    """Mean of ``metric`` (default: top-1 accuracy, a fraction in [0, 1]) over ``data``.

    ``model`` is an ``nn.Module`` (put in eval mode for the pass and restored after) or any
    callable taking the input tensors, such as an ONNX Runtime session wrapper.
    """
    metric = metric or top1
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    total, count = 0.0, 0
    try:
        for item in data:
            inputs, targets = batch_of(item)
            if targets is None:
                raise InputError("evaluate() needs (inputs, targets) batches; the data gave no targets")
            s, n = metric(first_tensor(model(*inputs)), targets)
            total, count = total + s, count + n
    finally:
        if was_training and isinstance(model, nn.Module):
            model.train()
    if count == 0:
        raise InputError("evaluate() got an empty data set")
    return total / count
