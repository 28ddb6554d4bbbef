"""The records and hooks of the training loop: what a loss term, a callback and the caller see.

Epochs are counted from 1 everywhere (``EpochRecord.epoch``, ``LossContext.epoch``,
``TrainContext.epoch``); ``step`` is the 0-based index of a batch within its epoch and
``global_step`` counts optimizer steps taken since the run began (resumed runs included).

Example:
    >>> from torchslim.train.context import Callback
    >>> class CountSteps(Callback):
    ...     def __init__(self) -> None:
    ...         self.steps = 0
    ...     def on_step_end(self, ctx) -> None:
    ...         self.steps += 1
    >>> CountSteps().steps
    0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class LossContext:
    """What an ``extra_loss`` term sees for one batch (distillation plugs in here).

    ``outputs`` is the model's output tensor (the first element of a tuple output, or
    ``.logits``); ``raw_outputs`` is what the model returned, untouched. ``targets`` is ``None``
    for unlabelled (transfer) data, and then ``task_loss`` is ``None`` too.

    Example:
        >>> import torch
        >>> def l2(ctx: LossContext) -> torch.Tensor:
        ...     return 1e-4 * sum((p ** 2).sum() for p in ctx.model.parameters())
    """

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    outputs: torch.Tensor
    targets: torch.Tensor | None
    epoch: int
    step: int
    task_loss: torch.Tensor | None = None
    raw_outputs: Any = None
    global_step: int = 0


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: mean training loss (task + extra, per sample), validation metric
    (``None`` without ``val_data``), learning rate of the epoch's last step, wall seconds
    (training and validation) and training throughput.

    Example:
        >>> EpochRecord(epoch=1, train_loss=0.5, val_metric=0.9, lr=1e-3, seconds=1.0,
        ...             samples_per_s=100.0).epoch
        1
    """

    epoch: int
    train_loss: float
    val_metric: float | None
    lr: float
    seconds: float
    samples_per_s: float

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers, safe to store in a ``weights_only`` checkpoint or as JSON."""
        return {
            "epoch": self.epoch, "train_loss": self.train_loss, "val_metric": self.val_metric,
            "lr": self.lr, "seconds": self.seconds, "samples_per_s": self.samples_per_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochRecord:
        """Inverse of :meth:`as_dict`."""
        return cls(**{k: d[k] for k in ("epoch", "train_loss", "val_metric", "lr", "seconds", "samples_per_s")})


@dataclass
class TrainResult:
    """What :func:`torchslim.train.fit` returns. ``model`` is the same object that was passed
    in (trained in place). ``best_val``/``best_epoch`` are ``None`` without validation data;
    ``resumed_from`` is the number of epochs the checkpoint had finished, or ``None`` for a
    fresh run.

    Example:
        >>> TrainResult(model=None, history=[]).final_val is None
        True
    """

    model: nn.Module
    history: list[EpochRecord] = field(default_factory=list)
    best_val: float | None = None
    best_epoch: int | None = None
    resumed_from: int | None = None

    @property
    def final_val(self) -> float | None:
        """Validation metric after the last epoch (``None`` without validation data)."""
        return self.history[-1].val_metric if self.history else None


@dataclass
class TrainContext:
    """What callbacks see: the live training state. A callback may set ``stop = True`` to end
    training after the current epoch (early stopping).

    ``record`` is the finished epoch's record in ``on_epoch_end`` and ``None`` before;
    ``loss`` is the last step's total loss.

    Example:
        >>> ctx = TrainContext(model=None, optimizer=None, scheduler=None, epochs=3,
        ...                    steps_per_epoch=10)
        >>> ctx.total_steps
        30
    """

    model: Any
    optimizer: Any
    scheduler: Any
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    loss: float = float("nan")
    history: list[EpochRecord] = field(default_factory=list)
    record: EpochRecord | None = None
    start_epoch: int = 1
    stop: bool = False

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the whole run (as planned from ``len(train_data)``)."""
        return self.epochs * self.steps_per_epoch


class Callback:
    """Base class (optional: any object with some of these methods works) for code that runs
    inside the loop, such as gradual pruning schedules. Each hook gets a :class:`TrainContext`.

    - ``on_train_begin``: once, before the first (or first resumed) epoch.
    - ``on_step_end``: after every optimizer step (re-apply masks, update a sparsity schedule).
    - ``on_epoch_end``: after validation, before the epoch's checkpoint is written.
    - ``on_train_end``: once, after the last epoch (and after ``keep_best`` restores weights).

    A callback with ``state_dict()``/``load_state_dict(d)`` has its state saved in checkpoints
    and restored on resume (plain tensors, numbers, strings, lists and dicts only).

    Example:
        >>> class StopAt(Callback):
        ...     def on_epoch_end(self, ctx: TrainContext) -> None:
        ...         ctx.stop = ctx.record.val_metric is not None and ctx.record.val_metric > 0.99
    """

    def on_train_begin(self, ctx: TrainContext) -> None:  # noqa: B027 - optional hook
        """Called once before training starts."""

    def on_step_end(self, ctx: TrainContext) -> None:  # noqa: B027 - optional hook
        """Called after each optimizer step."""

    def on_epoch_end(self, ctx: TrainContext) -> None:  # noqa: B027 - optional hook
        """Called after each epoch's validation, before its checkpoint."""

    def on_train_end(self, ctx: TrainContext) -> None:  # noqa: B027 - optional hook
        """Called once after training ends."""
