"""Digits: scikit-learn's 1,797 real 8x8 handwritten digits (``load_digits``).

Pixels 0-16 scaled to [0, 1]; inputs are (1, 8, 8). Fixed stratified split (the same for every
loader seed): 10% val and 25% test per class, which gives **train 1,168 / val 180 / test 449**.

Example:
    >>> from torchslim import data
    >>> data.load("digits").input_shape
    (1, 8, 8)
"""

from __future__ import annotations

import numpy as np

from torchslim.core.errors import MissingPackageError
from torchslim.data.registry import Arrays, DataSetSpec, register
from torchslim.data.splits import stratified_split, take

VAL_FRACTION, TEST_FRACTION, SPLIT_SEED = 0.1, 0.25, 0


def build_digits() -> Arrays:
    """Load scikit-learn's bundled digits and cut the fixed splits."""
    try:
        from sklearn.datasets import load_digits  # optional import: only needed to build
    except ImportError as e:
        raise MissingPackageError("scikit-learn", "the data set 'digits'") from e
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    train, val, test = stratified_split(y, val=VAL_FRACTION, test=TEST_FRACTION, seed=SPLIT_SEED)
    return take(x, y, train, val, test)


DIGITS = register(
    DataSetSpec(
        name="digits",
        description="1,797 real 8x8 digits bundled with scikit-learn (10 classes)",
        num_classes=10,
        input_shape=(1, 8, 8),
        package="scikit-learn",
        build=build_digits,
    )
)
