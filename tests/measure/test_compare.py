"""compare(): values and ratio columns; plots are written as real image files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from torchslim.core.errors import UnknownNameError
from torchslim.measure import Metrics, compare, measure
from torchslim.measure.plots import plot_compare, plot_layers


@pytest.fixture(scope="module")
def pair() -> dict[str, Metrics]:
    x = torch.zeros(2, 64)
    wide = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    narrow = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    kw = {"memory": False, "warmup": 1, "min_runs": 5, "min_seconds": 0.0}
    a = measure(wide, x, name="wide", **kw)  # type: ignore[arg-type]
    b = measure(narrow, x, name="narrow", **kw)  # type: ignore[arg-type]
    a.accuracy, b.accuracy = 0.90, 0.88  # as if measured on data
    return {"wide": a, "narrow": b}


def test_compare_shows_values_and_ratios(pair: dict[str, Metrics]) -> None:
    sink = io.StringIO()
    text = compare(pair, console=Console(file=sink, width=200))
    wide, narrow = pair["wide"], pair["narrow"]
    assert wide.macs == 2 * (64 * 64 + 64 * 10) and narrow.macs == 2 * (64 * 16 + 16 * 10)
    assert "x wide" in text  # the ratio column against the baseline (first entry)
    mac_row = next(line for line in text.splitlines() if line.strip("│ ").startswith("MACs"))
    assert f"{narrow.macs / wide.macs:.2f}x" in mac_row
    assert f"{narrow.macs / 1e3:.2f}K" in mac_row and f"{wide.macs / 1e3:.2f}K" in mac_row
    assert "-2.00 pt" in text  # accuracy by difference
    assert "x wide" in sink.getvalue()  # printed to the given console as well


def test_compare_with_named_baseline(pair: dict[str, Metrics]) -> None:
    text = compare(pair, baseline="narrow", console=Console(quiet=True))
    assert "x narrow" in text and "x wide" not in text
    mac_row = next(line for line in text.splitlines() if line.strip("│ ").startswith("MACs"))
    assert f"{pair['wide'].macs / pair['narrow'].macs:.2f}x" in mac_row
    with pytest.raises(UnknownNameError, match="narrow, wide"):
        compare(pair, baseline="nope", console=Console(quiet=True))


def test_plots_are_written(pair: dict[str, Metrics], tmp_path: Path) -> None:
    layers_png = plot_layers(pair["wide"], tmp_path / "layers.png")
    compare_svg = plot_compare(pair, tmp_path / "sub" / "compare.svg")
    assert layers_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in compare_svg.read_bytes()[:2000]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["compare.svg", "layers.png", "sub"]  # no temp files left
