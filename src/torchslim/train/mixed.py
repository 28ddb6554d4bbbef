"""Training data made of several parts, e.g. labelled batches and an unlabelled transfer set,
interleaved evenly within each epoch; and :class:`Unlabelled`, which drops the targets.

:func:`fit` treats a :class:`MixedData` like any other training data: its length is the sum of
the parts', each part is reshuffled per epoch (the i-th from ``seed + i``) and, under
``torchrun``, sharded over ranks part by part.

Example:
    >>> import torch
    >>> from torchslim.train.mixed import MixedData
    >>> labelled = [(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))] * 2
    >>> unlabelled = [torch.ones(2, 3)] * 4
    >>> mixed = MixedData(labelled, unlabelled)
    >>> len(mixed), ["x" if isinstance(b, torch.Tensor) else "xy" for b in mixed]
    (6, ['x', 'xy', 'x', 'x', 'xy', 'x'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

from torchslim.core.errors import ConfigError
from torchslim.core.inputs import batch_of


class MixedData:
    """The batches of every part, spread evenly over the epoch: after any prefix, each part has
    given about the same fraction of its batches (the i-th part's k-th batch is due at
    ``(k + 0.5) / len(part)``; ties go to the earlier part). Every part needs ``len()``."""

    def __init__(self, *parts: Iterable[Any]) -> None:
        if not parts:
            raise ConfigError("MixedData needs at least one part")
        for i, part in enumerate(parts):
            if not isinstance(part, Sized):
                raise ConfigError(f"MixedData part {i} ({type(part).__name__}) has no len(); use a DataLoader or a list")
            if len(part) == 0:
                raise ConfigError(f"MixedData part {i} is empty")
        self.parts: tuple[Iterable[Any], ...] = tuple(parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)  # type: ignore[arg-type]

    def order(self) -> list[int]:
        """Which part each batch of an epoch comes from, in order."""
        sizes = [len(p) for p in self.parts]  # type: ignore[arg-type]
        due = sorted(((k + 0.5) / n, i) for i, n in enumerate(sizes) for k in range(n))
        return [i for _, i in due]

    def __iter__(self) -> Iterator[Any]:
        iters = [iter(p) for p in self.parts]
        for i in self.order():
            try:
                yield next(iters[i])
            except StopIteration:
                continue  # a part yielded fewer batches than its len(): skip its remaining turns

    def map_parts(self, fn: Callable[[Iterable[Any]], Iterable[Any]]) -> MixedData:
        """A MixedData of ``fn(part)`` for each part (used to shard over ranks)."""
        return MixedData(*(fn(p) for p in self.parts))


class Unlabelled:
    """The inputs of ``data`` without its targets: each item becomes ``(x,)`` (or
    ``((x1, x2, ...),)``), which ``fit`` reads as an unlabelled batch.

    Example:
        >>> import torch
        >>> items = list(Unlabelled([(torch.zeros(2, 3), torch.zeros(2))]))
        >>> len(items[0]), items[0][0].shape
        (1, torch.Size([2, 3]))
    """

    def __init__(self, data: Iterable[Any]) -> None:
        if not isinstance(data, Sized):
            raise ConfigError(f"unlabelled data ({type(data).__name__}) has no len(); use a DataLoader or a list")
        self.parts: tuple[Iterable[Any], ...] = (data,)

    def __len__(self) -> int:
        return len(self.parts[0])  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for item in self.parts[0]:
            inputs, _ = batch_of(item)
            yield (inputs[0],) if len(inputs) == 1 else (inputs,)

    def map_parts(self, fn: Callable[[Iterable[Any]], Iterable[Any]]) -> Unlabelled:
        """An Unlabelled of ``fn(data)`` (used to shard over ranks)."""
        return Unlabelled(fn(self.parts[0]))
