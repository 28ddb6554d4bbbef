"""Transfer sets: unlabelled inputs as a DataLoader, for a teacher to label on the fly.

Each item is a 1-tuple ``(x,)``, which the training loop reads as "inputs, no targets" (also
for multi-input models: ``((ids, mask),)``). :func:`mnist1d_transfer_loader` generates extra
MNIST-1D inputs offline with mnist1d's own generator (another seed than the standard set's).

Example:
    >>> import torch
    >>> from torchslim.data.transfer import transfer_loader
    >>> loader = transfer_loader(torch.randn(100, 1, 40), batch_size=32, seed=0)
    >>> len(loader), next(iter(loader))[0].shape
    (4, torch.Size([32, 1, 40]))
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from torchslim.core.errors import ConfigError
from torchslim.data.augment import shift_batch
from torchslim.data.mnist1d import mnist1d_transfer


def _unlabelled(batch: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor]:
    return (torch.stack([item[0] for item in batch]),)


class _ShiftInputs:
    """Collate unlabelled items and shift each input at random (see ``augment.shift_batch``)."""

    def __init__(self, max_shift: int, generator: torch.Generator) -> None:
        self.max_shift, self.generator = max_shift, generator

    def __call__(self, batch: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor]:
        return (shift_batch(_unlabelled(batch)[0], self.max_shift, self.generator),)


def transfer_loader(
    inputs: torch.Tensor, *, batch_size: int = 64, seed: int = 0, shuffle: bool = True, shift: int = 0
) -> DataLoader:
    """A DataLoader of ``(x,)`` batches over the rows of ``inputs`` (N, *input_shape),
    shuffled by a generator seeded with ``seed`` (``fit`` reseeds it every epoch).
    ``shift`` > 0 translates each input by a random integer in [-shift, shift] along each
    spatial axis of (N, C, *spatial) inputs (zero fill), as :func:`torchslim.data.load` does
    for training data.

    Example:
        >>> import torch
        >>> next(iter(transfer_loader(torch.zeros(8, 2, 3), batch_size=4)))[0].shape
        torch.Size([4, 2, 3])
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or len(inputs) == 0:
        raise ConfigError("transfer_loader: inputs must be a non-empty tensor (N, *input_shape)")
    if batch_size <= 0 or shift < 0:
        raise ConfigError(f"transfer_loader: batch_size must be > 0 and shift >= 0, got {batch_size}, {shift}")
    generator = torch.Generator().manual_seed(seed)
    if shift and inputs.dim() < 3:
        raise ConfigError("transfer_loader: shift needs inputs shaped (N, C, *spatial), not flattened")
    collate = _ShiftInputs(shift, generator) if shift else _unlabelled
    return DataLoader(TensorDataset(inputs), batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=collate)


def mnist1d_transfer_loader(
    n: int = 16_000, *, seed: int = 0, batch_size: int = 64, flatten: bool = False, shift: int = 0
) -> DataLoader:
    """``n`` extra, unlabelled MNIST-1D inputs (generated offline, never the standard train or
    test signals) as a :func:`transfer_loader`.

    Example:
        >>> from torchslim.data.transfer import mnist1d_transfer_loader
        >>> len(mnist1d_transfer_loader(640, batch_size=64))
        10
    """
    return transfer_loader(mnist1d_transfer(n, seed, flatten=flatten), batch_size=batch_size, seed=seed, shift=shift)
