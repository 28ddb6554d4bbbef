"""The data API: ``load`` a registered data set as three DataLoaders, list ``names``, and
take a deterministic ``example_batch``.

Example:
    >>> from torchslim import data
    >>> splits = data.load("digits", batch_size=32, seed=0)
    >>> x, y = next(iter(splits.train))
    >>> x.shape, x.dtype, y.dtype
    (torch.Size([32, 1, 8, 8]), torch.float32, torch.int64)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from torchslim.core.errors import ConfigError
from torchslim.data.augment import RandomShift
from torchslim.data.cache import cached_arrays, package_version
from torchslim.data.registry import DATASETS, SPLITS, DataSetSpec, check_arrays

DATA_FORMAT_VERSION = 1  # bump when a builder or split changes: old cache files are ignored


@dataclass(frozen=True)
class DataSplits:
    """Train / val / test loaders of one data set, yielding ``(x float32, y int64)``.

    ``input_shape`` is the per-sample shape the loaders yield ((1, 28, 28), or (784,) when
    flattened). Only ``train`` shuffles (and augments, if asked).
    """

    name: str
    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    input_shape: tuple[int, ...]

    @property
    def sizes(self) -> dict[str, int]:
        """Sample count per split, e.g. ``{'train': 3500, 'val': 500, 'test': 1000}``."""
        return {s: len(getattr(self, s).dataset) for s in SPLITS}  # type: ignore[arg-type]


def names() -> list[str]:
    """The registered data set names, sorted.

    Example:
        >>> from torchslim import data
        >>> data.names()
        ['digits', 'mnist1d', 'mnist_5k']
    """
    return DATASETS.names()


def info(name: str) -> DataSetSpec:
    """The spec of data set ``name`` (classes, input shape, package); unknown names raise
    UnknownNameError listing the known ones."""
    return DATASETS.get(name)


@functools.cache
def arrays(name: str) -> dict[str, np.ndarray]:
    """The fixed splits of ``name`` as read-only numpy arrays (built once per process and
    cached on disk under ``cache_dir()/data``)."""
    spec = DATASETS.get(name)
    version = package_version(spec.package, f"the data set {name!r}")
    key = f"{name}-{spec.package}{version}-v{DATA_FORMAT_VERSION}"
    return cached_arrays(key, spec.build, check=functools.partial(check_arrays, spec))


def _tensors(name: str, split: str, flatten: bool) -> tuple[torch.Tensor, torch.Tensor]:
    a = arrays(name)
    x, y = torch.tensor(a[f"x_{split}"]), torch.tensor(a[f"y_{split}"])  # copies
    return (x.reshape(len(x), -1) if flatten else x), y


def load(
    name: str,
    *,
    batch_size: int = 64,
    seed: int = 0,
    flatten: bool = False,
    shift: int = 0,
) -> DataSplits:
    """Load data set ``name`` as train/val/test DataLoaders.

    The splits are fixed (independent of ``seed``, so test data never leaks into a model
    trained with another seed). ``seed`` fixes the train loader's shuffling and augmentation:
    two calls with the same arguments give identical batches. ``flatten`` yields (B, D) instead
    of (B, C, *spatial). ``shift`` > 0 translates each training input by a random integer
    offset in [-shift, shift] along each spatial axis (zero fill); val/test are never augmented.

    Example:
        >>> from torchslim import data
        >>> s = data.load("mnist_5k", batch_size=64, seed=0, flatten=True)
        >>> s.input_shape, s.num_classes
        ((784,), 10)
    """
    spec = DATASETS.get(name)
    if batch_size <= 0 or shift < 0:
        raise ConfigError(f"data.load({name!r}): batch_size must be > 0 and shift >= 0")
    sets = {s: TensorDataset(*_tensors(name, s, flatten)) for s in SPLITS}
    generator = torch.Generator().manual_seed(seed)  # drives shuffling and augmentation
    collate = RandomShift(shift, spec.input_shape, generator) if shift else None
    train = DataLoader(
        sets["train"], batch_size=batch_size, shuffle=True, generator=generator, collate_fn=collate
    )
    val = DataLoader(sets["val"], batch_size=batch_size, shuffle=False)
    test = DataLoader(sets["test"], batch_size=batch_size, shuffle=False)
    shape = (int(np.prod(spec.input_shape)),) if flatten else spec.input_shape
    return DataSplits(name, train, val, test, spec.num_classes, shape)


def example_batch(name: str, batch_size: int = 1, *, flatten: bool = False) -> torch.Tensor:
    """The first ``batch_size`` inputs of the test split of ``name`` (deterministic).

    Example:
        >>> from torchslim import data
        >>> data.example_batch("mnist_5k", batch_size=2).shape
        torch.Size([2, 1, 28, 28])
    """
    x, _ = _tensors(name, "test", flatten)
    if not 0 < batch_size <= len(x):
        raise ConfigError(f"example_batch({name!r}): batch_size must be in 1..{len(x)}, got {batch_size}")
    return x[:batch_size].clone()
