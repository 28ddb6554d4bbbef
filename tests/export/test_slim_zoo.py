"""Structurally pruned reference models round-trip through .slim files into fresh instances."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from torchslim import zoo
from torchslim.recipe.artifact import load, save

P = importlib.import_module("torchslim.prune")  # the package, not the re-exported function


@pytest.mark.parametrize("name", zoo.names())
def test_pruned_shapes_reload_into_a_fresh_instance(name: str, tmp_path: Path) -> None:
    x = zoo.example_inputs(name, batch_size=2)
    small = P.prune(zoo.model(name).eval(), P.StructuredPrune(sparsity=0.4), example_inputs=x).eval()
    path = tmp_path / f"{name}.slim"
    save(small, path)
    back = load(path)  # the zoo name travels in the file; a fresh, full-size instance is rebuilt
    assert sum(p.numel() for p in back.parameters()) == sum(p.numel() for p in small.parameters())
    assert sum(p.numel() for p in back.parameters()) < sum(p.numel() for p in zoo.model(name).parameters())
    with torch.no_grad():
        assert torch.equal(back(x), small(x))
