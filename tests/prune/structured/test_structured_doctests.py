"""Every docstring example of structured and depth pruning, of the dependency graph and of the
shared surgery helpers runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "torchslim.prune", "torchslim.prune.api", "torchslim.prune.structured", "torchslim.prune.structured.attention",
    "torchslim.prune.structured.config", "torchslim.prune.structured.engine", "torchslim.prune.structured.importance",
    "torchslim.prune.structured.recover", "torchslim.prune.structured.report", "torchslim.prune.structured.serialize",
    "torchslim.prune.structured.surgery", "torchslim.core.graph", "torchslim.core.graph_dims", "torchslim.core.graph_rules",
    "torchslim.prune.structured.aware", "torchslim.prune.structured.allocate", "torchslim.prune.structured.latency",
    "torchslim.prune.depth", "torchslim.prune.depth.config", "torchslim.prune.depth.engine", "torchslim.prune.depth.rewrite",
    "torchslim.core.graph_blocks", "torchslim.core.surgery",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{module.__name__}: {result}"
    assert result.attempted > 0 or name == "torchslim.prune.api", f"{name} has no example"
