"""The data-set registry: each bundled data set is a :class:`DataSetSpec` registered by name.

A spec says what the data set is (classes, per-sample input shape, the package it ships in)
and how to build its fixed train/val/test arrays. Building is the only place a data set's
package is imported, so a missing package fails with a :class:`MissingPackageError` naming it.

Example:
    >>> from torchslim.data.registry import DATASETS
    >>> DATASETS.get("mnist_5k").input_shape
    (1, 28, 28)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from torchslim.core.registry import Registry

# name -> array, with keys x_train, y_train, x_val, y_val, x_test, y_test.
# x is float32 (N, *input_shape), y is int64 (N,).
Arrays = dict[str, np.ndarray]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataSetSpec:
    """A bundled data set: ``build()`` returns its fixed splits as numpy :data:`Arrays`."""

    name: str
    description: str
    num_classes: int
    input_shape: tuple[int, ...]  # per sample, e.g. (1, 28, 28)
    package: str  # the distribution it ships in (pip name)
    build: Callable[[], Arrays]


DATASETS: Registry[DataSetSpec] = Registry("data set")


def register(spec: DataSetSpec) -> DataSetSpec:
    """Add ``spec`` to :data:`DATASETS` under ``spec.name``."""
    DATASETS.add(spec.name, spec)
    return spec


def check_arrays(spec: DataSetSpec, arrays: Arrays) -> Arrays:
    """Raise if ``arrays`` lacks a split or has the wrong shape/dtype (a stale or corrupt cache)."""
    for split in SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.float32 or y.dtype != np.int64:
            raise ValueError(f"{spec.name}/{split}: dtypes {x.dtype}, {y.dtype}; expected float32, int64")
        if tuple(x.shape[1:]) != spec.input_shape or x.shape[0] != y.shape[0]:
            raise ValueError(f"{spec.name}/{split}: shapes {x.shape}, {y.shape} do not fit {spec.input_shape}")
    return arrays
