"""Shared fixtures of the unstructured-pruning tests: the LeNet-300-100 teacher and MNIST-5k
(from the test session's private cache, see tests/conftest.py: trained once per session)."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn


@pytest.fixture(scope="session")
def unstructured_lenet300() -> tuple[nn.Module, Any, float]:
    """(teacher in eval mode, mnist_5k splits, teacher test accuracy)."""
    from torchslim import data, zoo
    from torchslim.measure import evaluate

    teacher = zoo.teacher("lenet300-mnist", progress=False)
    splits = data.load("mnist_5k", batch_size=64, seed=0)
    return teacher, splits, evaluate(teacher, splits.test)
