"""The runnable examples in the recipe and report modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "torchslim.recipe", "torchslim.recipe.yamlio", "torchslim.recipe.schema", "torchslim.recipe.stages",
    "torchslim.recipe.sources", "torchslim.recipe.measuring", "torchslim.recipe.result", "torchslim.recipe.state",
    "torchslim.recipe.pareto", "torchslim.recipe.sensitivity", "torchslim.recipe.candidates",
    "torchslim.recipe.auto_result", "torchslim.recipe.text", "torchslim.recipe.demo", "torchslim.recipe.runner",
    "torchslim.recipe.search", "torchslim.report", "torchslim.report.content", "torchslim.report.figures",
    "torchslim.report.writers",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
