"""The arch tests run torch on one thread: on a shared, busy 2-core machine LAPACK's SVD with
two threads was measured 250x slower (7.5 s against 0.03 s for a 300 x 784 matrix)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
