"""Training-time augmentation on tensors: random integer translations with zero fill.

Deterministic: the offsets come from a ``torch.Generator`` the caller passes. ``data.load``
passes the train DataLoader's own shuffling generator, so reseeding the loader (as
``train.fit`` does at every epoch start) fixes both the order and the augmentation, and two
loaders built with the same seed yield the same augmented batches.

Example:
    >>> import torch
    >>> from torchslim.data.augment import shift_batch
    >>> x = torch.zeros(2, 1, 5, 5); x[:, :, 2, 2] = 1.0
    >>> y = shift_batch(x, 1, torch.Generator().manual_seed(0))
    >>> y.shape, float(y.sum())
    (torch.Size([2, 1, 5, 5]), 2.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def shift_batch(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each sample of ``x`` (B, C, *spatial) by an offset drawn uniformly from
    [-max_shift, max_shift] along every spatial dim; vacated positions are zero."""
    if max_shift <= 0:
        return x
    b, nd = x.shape[0], x.dim() - 2
    padded = F.pad(x, [max_shift, max_shift] * nd)  # (B, C, *(spatial + 2*max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (b, nd), generator=generator)
    out = torch.empty_like(x)
    for i in range(b):
        window = tuple(slice(int(o), int(o) + n) for o, n in zip(offsets[i], x.shape[2:], strict=True))
        out[i] = padded[(i, slice(None), *window)]
    return out


class RandomShift:
    """A DataLoader ``collate_fn``: stack ``(x, y)`` items and randomly shift the inputs.

    ``sample_shape`` is the unflattened per-sample shape (C, *spatial), so flattened inputs
    are shifted in their image layout and handed back flat.
    """

    def __init__(self, max_shift: int, sample_shape: Sequence[int], generator: torch.Generator) -> None:
        self.max_shift = max_shift
        self.sample_shape = tuple(sample_shape)
        self.generator = generator

    def __call__(self, batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([item[0] for item in batch])
        y = torch.stack([item[1] for item in batch])
        shifted = shift_batch(x.view(len(batch), *self.sample_shape), self.max_shift, self.generator)
        return shifted.reshape(x.shape), y
