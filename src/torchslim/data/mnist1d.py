"""MNIST-1D: the procedurally generated 1-D digits of ``mnist1d``, built offline.

``make_dataset(get_dataset_args())`` generates the standard 4,000 train / 1,000 test signals
of length 40 (about 3 s; never ``get_dataset()``, which downloads). Inputs are (1, 40).
Val is carved from the generator's train part with a fixed stratified cut (the same for every
loader seed): **train 3,500 / val 500 / test 1,000** (the standard test set).

:func:`mnist1d_transfer` generates extra inputs from the same generator with another seed:
a transfer set for distillation (labels exist but are not meant to be used). Each call of the
generator normalises its own output to zero mean and unit std, so a transfer set is scaled by
its own statistics, which match the standard set's closely for a few thousand samples.

The generator seeds Python's and NumPy's global random state; both are restored afterwards.

Example:
    >>> from torchslim import data
    >>> data.load("mnist1d").input_shape
    (1, 40)
    >>> data.mnist1d_transfer(20, seed=0).shape
    torch.Size([20, 1, 40])
"""

from __future__ import annotations

import functools
import random
from typing import Any

import numpy as np
import torch

from torchslim.core.errors import ConfigError, MissingPackageError
from torchslim.data.cache import cached_arrays, package_version
from torchslim.data.registry import Arrays, DataSetSpec, register
from torchslim.data.splits import stratified_split, take

VAL_FRACTION, SPLIT_SEED = 0.125, 0
STANDARD_SEED = 42  # the generator seed of the standard MNIST-1D (get_dataset_args)
TRANSFER_SEED_OFFSET = 10_000  # transfer seeds never collide with the standard one


def _generate(**overrides: Any) -> dict[str, Any]:
    """Run ``mnist1d.data.make_dataset`` with ``get_dataset_args()`` updated by ``overrides``."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # optional import
    except ImportError as e:
        raise MissingPackageError("mnist1d", "the data set 'mnist1d'") from e
    args = get_dataset_args()
    for k, v in overrides.items():
        setattr(args, k, v)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        return make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def build_mnist1d() -> Arrays:
    """Generate the standard MNIST-1D and carve the fixed val split from its train part."""
    ds = _generate()
    x = ds["x"].astype(np.float32)[:, None, :]  # (4000, 1, 40)
    y = ds["y"].astype(np.int64)
    train, val, _ = stratified_split(y, val=VAL_FRACTION, test=0.0, seed=SPLIT_SEED)
    arrays = take(x, y, train, val, np.arange(0))
    arrays["x_test"] = ds["x_test"].astype(np.float32)[:, None, :]  # (1000, 1, 40)
    arrays["y_test"] = ds["y_test"].astype(np.int64)
    return arrays


MNIST1D = register(
    DataSetSpec(
        name="mnist1d",
        description="MNIST-1D (Greydanus), generated offline: 1-D signals of length 40, 10 classes",
        num_classes=10,
        input_shape=(1, 40),
        package="mnist1d",
        build=build_mnist1d,
    )
)


@functools.lru_cache(maxsize=8)
def _transfer_arrays(n: int, seed: int) -> np.ndarray:
    version = package_version("mnist1d", "the MNIST-1D transfer set")
    num_samples = -(-n // 10) * 10  # the generator makes num_samples // 10 per class

    def build() -> dict[str, np.ndarray]:
        ds = _generate(num_samples=num_samples, seed=TRANSFER_SEED_OFFSET + seed, train_split=1.0)
        return {"x": ds["x"][:n].astype(np.float32)[:, None, :]}  # (n, 1, 40)

    return cached_arrays(f"mnist1d_transfer-n{n}-s{seed}-mnist1d{version}", build)["x"]


def mnist1d_transfer(n: int, seed: int = 0, *, flatten: bool = False) -> torch.Tensor:
    """``n`` extra MNIST-1D inputs, (n, 1, 40) float32 (``flatten``: (n, 40)), generated with
    seed ``10_000 + seed``, so they never repeat the standard train or test signals.

    Example:
        >>> from torchslim.data import mnist1d_transfer
        >>> mnist1d_transfer(8, seed=1, flatten=True).shape
        torch.Size([8, 40])
    """
    if n <= 0:
        raise ConfigError(f"mnist1d_transfer: n must be positive, got {n}")
    x = torch.tensor(_transfer_arrays(int(n), int(seed)))  # a copy: the cache stays intact
    return x.reshape(n, -1) if flatten else x
