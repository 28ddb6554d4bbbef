"""Example inputs: one tensor or a tuple of tensors (e.g. ``(input_ids, attention_mask)``).

Example:
    >>> import torch
    >>> from torchslim.core.inputs import as_tuple
    >>> len(as_tuple(torch.zeros(1, 3)))
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import InputError

ExampleInputs = torch.Tensor | Sequence[torch.Tensor]


def as_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """Normalise example inputs to a tuple of tensors; anything else is an InputError."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs and all(
        isinstance(t, torch.Tensor) for t in example_inputs
    ):
        return tuple(example_inputs)
    raise InputError(
        "example_inputs must be a tensor or a non-empty tuple of tensors, got "
        f"{type(example_inputs).__name__}"
    )


def batch_of(item: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """Split one DataLoader item into (model inputs, targets or None).

    ``(x, y)`` -> inputs ``(x,)`` and targets ``y``; ``((ids, mask), y)`` -> ``(ids, mask)``, ``y``;
    a bare tensor -> ``(x,)`` and no targets.
    """
    if isinstance(item, torch.Tensor):
        return (item,), None
    if isinstance(item, (tuple, list)) and len(item) == 2:
        x, y = item
        return as_tuple(x), y
    if isinstance(item, (tuple, list)) and len(item) == 1:
        return as_tuple(item[0]), None
    raise InputError(f"a data item must be x, (x,), or (x, y); got {type(item).__name__} of length {len(item)}")


def first_tensor(out: Any) -> torch.Tensor:
    """The prediction tensor in a model's output: the tensor itself, element 0 of a tuple, or
    ``.logits`` (Hugging Face outputs)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise InputError(f"cannot read a tensor from model output of type {type(out).__name__}")


def run_checked(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Any:
    """Call ``model(*inputs)`` and turn a shape mismatch into an InputError that names the
    model and the input shapes given."""
    try:
        return model(*inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        shapes = ", ".join(f"{tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}" for t in inputs)
        raise InputError(
            f"{type(model).__name__} failed on example inputs [{shapes}]: {str(e).splitlines()[0]}"
        ) from e
