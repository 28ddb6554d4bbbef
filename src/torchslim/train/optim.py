"""Optimizer and learning-rate schedule factories, looked up by name.

Every schedule is a per-step multiplier of the base learning rate, run by one
``torch.optim.lr_scheduler.LambdaLR`` (its state is plain numbers, so checkpoints stay
``weights_only``-loadable). With ``warmup_steps`` the multiplier first rises linearly to 1.

- ``constant``: 1.
- ``cosine``: half a cosine from 1 down to 0 over the steps after warmup.
- ``step``: 1, then 0.1 from 50% of the steps, then 0.01 from 75%.
- ``onecycle``: rises from 1/25 to 1 over the first 30% of the steps (or ``warmup_steps``),
  then a cosine down to 1/25e4 (learning rate only: momentum is not cycled).

Example:
    >>> import torch
    >>> from torchslim.train.optim import make_optimizer, make_scheduler
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = make_optimizer(model, "sgd", lr=0.1, weight_decay=0.0, momentum=0.9)
    >>> sched = make_scheduler(opt, "cosine", total_steps=100)
    >>> round(sched.get_last_lr()[0], 3)
    0.1
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from torchslim.core.errors import ConfigError, UnknownNameError


class UnknownChoiceError(UnknownNameError, ConfigError):
    """An unknown optimizer or schedule name: both an UnknownNameError (lists the known names)
    and a ConfigError (a bad argument)."""


def _adam(params: list[nn.Parameter], lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _adamw(params: list[nn.Parameter], lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _sgd(params: list[nn.Parameter], lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)


OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float, float, float], torch.optim.Optimizer]] = {
    "adam": _adam,
    "adamw": _adamw,
    "sgd": _sgd,
}


def _constant(progress: float) -> float:
    return 1.0


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _step(progress: float) -> float:
    return 1.0 if progress < 0.5 else 0.1 if progress < 0.75 else 0.01


# Multipliers of the base lr as a function of progress in [0, 1] through the steps after warmup.
SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": _constant,
    "cosine": _cosine,
    "step": _step,
    "onecycle": _cosine,  # the decay half; its rise is the warmup (see lr_multiplier)
}

ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


def check_optimizer(name: str) -> None:
    """Raise UnknownChoiceError (a ConfigError) if ``name`` is not a known optimizer."""
    if name not in OPTIMIZERS:
        raise UnknownChoiceError("optimizer", name, list(OPTIMIZERS))


def check_schedule(name: str) -> None:
    """Raise UnknownChoiceError (a ConfigError) if ``name`` is not a known schedule."""
    if name not in SCHEDULES:
        raise UnknownChoiceError("schedule", name, list(SCHEDULES))


def make_optimizer(
    model: nn.Module, name: str, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """An optimizer over the model's trainable parameters (weight decay applies to all of them).

    Example:
        >>> import torch
        >>> type(make_optimizer(torch.nn.Linear(2, 2), "adamw", lr=1e-3)).__name__
        'AdamW'
    """
    check_optimizer(name)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters (all requires_grad=False)")
    return OPTIMIZERS[name](params, lr, weight_decay, momentum)


def lr_multiplier(name: str, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """The factor applied to the base lr at optimizer step ``step`` (0-based) of ``total_steps``.

    Example:
        >>> lr_multiplier("cosine", 0, 10), lr_multiplier("step", 9, 10)
        (1.0, 0.01)
    """
    check_schedule(name)
    if name == "onecycle":
        rise = warmup_steps or max(1, round(ONECYCLE_PCT_START * total_steps))
        start = 1.0 / ONECYCLE_DIV
        if step < rise:
            return start + (1.0 - start) * _cosine(1.0 - step / rise)  # (1 - cos)/2 from start to 1
        end = start / ONECYCLE_FINAL_DIV
        progress = min(1.0, (step - rise) / max(1, total_steps - rise))
        return end + (1.0 - end) * _cosine(progress)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return SCHEDULES[name](progress)


def make_scheduler(
    optimizer: torch.optim.Optimizer, name: str, *, total_steps: int, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR for the named schedule; call ``.step()`` after each optimizer step.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=1.0)
        >>> make_scheduler(opt, "constant", total_steps=5).get_last_lr()
        [1.0]
    """
    check_schedule(name)
    if total_steps < 1:
        raise ConfigError(f"a schedule needs at least one step, got total_steps={total_steps}")
    if warmup_steps < 0 or warmup_steps >= total_steps:
        raise ConfigError(
            f"warmup_steps must be in [0, total steps of the run = {total_steps}), got {warmup_steps}"
        )

    def factor(step: int) -> float:
        return lr_multiplier(name, step, total_steps, warmup_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
