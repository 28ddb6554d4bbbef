"""The zoo registry: a :class:`ZooEntry` per reference model (architecture, data set, the
recipe its teacher is trained with, and the test accuracy that teacher is documented to reach).

Example:
    >>> from torchslim import zoo
    >>> entry = zoo.info("lenet5-mnist")
    >>> entry.dataset, entry.input_shape, entry.recipe.epochs > 0
    ('mnist_5k', (1, 28, 28), True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchslim import data
from torchslim.core.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """How a teacher is trained (the arguments of ``train.fit`` plus the data loader's).

    ``shift`` is the augmentation: each training input is translated by a random integer
    offset in [-shift, shift] per spatial axis (0: no augmentation). ``seed`` fixes the initial
    weights, the shuffling and the augmentation.
    """

    epochs: int
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    batch_size: int = 64
    shift: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON-safe values."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ZooEntry:
    """A reference model: ``architecture(num_classes=...)`` builds it untrained.

    ``documented_accuracy`` is the test accuracy (fraction) its teacher is tested to reach:
    set about one point below what the recipe measured on this machine.
    """

    name: str
    description: str
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    recipe: Recipe
    documented_accuracy: float
    architecture: type[nn.Module] = dataclasses.field(repr=False)

    def build(self) -> nn.Module:
        """A fresh model with the current torch RNG (use :func:`model` for a seeded one)."""
        return self.architecture(num_classes=self.num_classes)


ZOO: Registry[ZooEntry] = Registry("zoo model")


def register(entry: ZooEntry) -> ZooEntry:
    """Add ``entry`` to :data:`ZOO`; its data set must be registered and its shape must match."""
    spec = data.info(entry.dataset)
    if spec.input_shape != entry.input_shape or spec.num_classes != entry.num_classes:
        raise ValueError(f"zoo entry {entry.name!r} does not fit data set {entry.dataset!r}")
    ZOO.add(entry.name, entry)
    return entry


def names() -> list[str]:
    """The zoo model names, sorted.

    Example:
        >>> from torchslim import zoo
        >>> "lenet5-mnist" in zoo.names()
        True
    """
    return ZOO.names()


def info(name: str) -> ZooEntry:
    """The entry of zoo model ``name``; an unknown name raises UnknownNameError listing the
    known ones.

    Example:
        >>> from torchslim import zoo
        >>> zoo.info("mlp-mnist1d").dataset
        'mnist1d'
    """
    return ZOO.get(name)


def model(name: str, seed: int | None = None) -> nn.Module:
    """A fresh, untrained ``name`` whose initial weights are fixed by ``seed`` (default: the
    recipe's seed); the global torch RNG is left as it was.

    Example:
        >>> import torch
        >>> from torchslim import zoo
        >>> a, b = zoo.model("lenet5-mnist"), zoo.model("lenet5-mnist")
        >>> torch.equal(a.conv1.weight, b.conv1.weight)
        True
    """
    entry = ZOO.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(entry.recipe.seed if seed is None else seed)
        return entry.build()


def example_inputs(name: str, batch_size: int = 1) -> torch.Tensor:
    """The first ``batch_size`` inputs of the test split of the model's data set.

    Example:
        >>> from torchslim import zoo
        >>> zoo.example_inputs("cnn1d-mnist1d", batch_size=3).shape
        torch.Size([3, 1, 40])
    """
    return data.example_batch(ZOO.get(name).dataset, batch_size)
