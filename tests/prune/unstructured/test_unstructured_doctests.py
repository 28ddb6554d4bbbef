"""Every docstring example of the unstructured-pruning package runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["", ".masks", ".criteria", ".configs", ".oneshot", ".gradual", ".lottery", ".storage"]


@pytest.mark.parametrize("suffix", MODULES)
def test_docstring_examples_run(suffix: str) -> None:
    module = importlib.import_module("torchslim.prune.unstructured" + suffix)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{module.__name__}: {result}"
