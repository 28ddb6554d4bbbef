"""The .slim artifact reloads every encoding exactly: outputs of the reloaded model are
bit-identical to the in-memory model's (float16 storage: to the float16-rounded model)."""

from __future__ import annotations

import copy
import doctest
import importlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import torchslim as slim
from torchslim import zoo
from torchslim.export.slim import ans
from torchslim.quant.sharing import WeightSharing
from torchslim.recipe.artifact import load, save

L300, L5 = "lenet300-mnist", "lenet5-mnist"


def _calibrated(name: str, config: slim.Config) -> nn.Module:
    return slim.quantize(zoo.model(name).eval(), config, calibration=[zoo.example_inputs(name, batch_size=16)])


CASES: dict[str, tuple[str, Callable[[], nn.Module], str]] = {
    # name: (zoo model, build, an encoding that must appear in the file's report)
    "float32": (L5, lambda: zoo.model(L5), "dense float32"),
    "masked": (L300, lambda: slim.prune(zoo.model(L300), slim.MagnitudePrune(sparsity=0.9)), r"support of"),
    "sparse-relative": (L300, lambda: slim.make_permanent(slim.prune(zoo.model(L300), slim.MagnitudePrune(sparsity=0.97))), r"sparse\(relative"),
    "sparse-bitmask": (L300, lambda: slim.make_permanent(slim.prune(zoo.model(L300), slim.RandomPrune(sparsity=0.5))), r"sparse\(bitmask"),
    "int8-static": (L5, lambda: _calibrated(L5, slim.Int8Static()), "scaled"),
    "int8-dynamic": (L300, lambda: slim.quantize(zoo.model(L300), slim.Int8Dynamic()), "scaled"),
    "int4-weight-only": (L300, lambda: slim.quantize(zoo.model(L300), slim.WeightOnly(bits=4, group_size=64)), r"sym\[1[56]\]"),
    "int8-weight-only": (L300, lambda: slim.quantize(zoo.model(L300), slim.WeightOnly(bits=8)), r"sym\[2\d\d\]"),
    "shared-sparse": (L300, lambda: slim.quantize(slim.prune(zoo.model(L300), slim.MagnitudePrune(sparsity=0.9)), WeightSharing(bits=5)), r"sym\["),
    "shared-dense": (L5, lambda: slim.quantize(zoo.model(L5), WeightSharing(bits=4, conv_bits=6)), "dense sym"),
    "low-rank": (L5, lambda: slim.factorize(zoo.model(L5), slim.LowRank(param_ratio=0.5)), "dense float32"),
    "depthwise": ("resnet-mnist", lambda: slim.factorize(zoo.model("resnet-mnist"), slim.DepthwiseSeparable()), "dense float32"),
    "half": (L5, lambda: zoo.model(L5).half(), "dense float16"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_is_bit_identical(case: str, tmp_path: Path) -> None:
    name, build, encoding = CASES[case]
    model = build().eval()
    path = tmp_path / f"{case}.slim"
    report = save(model, path)
    assert report.file_bytes == path.stat().st_size
    assert any(re.search(encoding, row.encoding) for row in report.tensors), [r.encoding for r in report.tensors]
    back = load(path, zoo.model(name))
    assert [type(m).__name__ for m in back.modules()] == [type(m).__name__ for m in model.modules()]
    x = zoo.example_inputs(name, batch_size=8)
    x = x.half() if case == "half" else x
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    assert not back.training


def test_float16_storage_reloads_the_rounded_model(tmp_path: Path) -> None:
    model = slim.make_permanent(slim.prune(zoo.model(L300), slim.MagnitudePrune(sparsity=0.8))).eval()
    report = save(model, tmp_path / "f16.slim", float16=True)
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    back = load(tmp_path / "f16.slim", L300)
    x = zoo.example_inputs(L300, batch_size=8)
    assert torch.equal(back(x), rounded(x))
    assert report.file_bytes < save(model, tmp_path / "f32.slim").file_bytes


def test_tied_weights_are_stored_once(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Linear(32, 32, bias=False), nn.ReLU(), nn.Linear(32, 32, bias=False))
    net[2].weight = net[0].weight
    report = save(net, tmp_path / "tied.slim")
    assert any(r.encoding.startswith("alias") for r in report.tensors)
    fresh = nn.Sequential(nn.Linear(32, 32, bias=False), nn.ReLU(), nn.Linear(32, 32, bias=False))
    back = load(tmp_path / "tied.slim", fresh)
    x = torch.randn(2, 32)
    assert torch.equal(back(x), net(x))


def test_zoo_name_in_file_and_input_untouched(tmp_path: Path) -> None:
    model = slim.quantize(zoo.model(L300), slim.WeightOnly(bits=4, group_size=64)).eval()
    save(model, tmp_path / "m.slim")
    fresh = zoo.model(L300)
    before = copy.deepcopy(fresh.state_dict())
    back = load(tmp_path / "m.slim", fresh)
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())  # the template is not modified
    assert type(load(tmp_path / "m.slim").fc1).__name__ == type(back.fc1).__name__ == "WeightOnlyLinear"


def test_ans_reaches_the_empirical_entropy() -> None:
    rng = np.random.default_rng(0)
    symbols = rng.choice(32, size=20_000, p=np.exp(-np.arange(32) / 4) / np.exp(-np.arange(32) / 4).sum()).astype(np.int32)
    seg = ans.Segment(symbols, ans.table_of(symbols))
    data, bits = ans.encode([seg, ans.Segment(symbols[:5], ans.table_of(symbols[:5]))])
    h = ans.empirical_entropy_bits(symbols)
    assert 8 * len(data) <= 1.01 * h + 64 + bits[1]  # ~ nH; Huffman would need up to n more bits
    assert bits[0] <= 1.01 * h
    out = ans.decode(data, [(len(symbols), seg.freqs), (5, ans.table_of(symbols[:5]))])
    assert np.array_equal(out[0], symbols) and np.array_equal(out[1], symbols[:5])
    one = ans.Segment(np.zeros(100, np.int32), ans.table_of(np.zeros(100)))
    assert ans.decode(ans.encode([one])[0], [(100, one.freqs)])[0].tolist() == [0] * 100


@pytest.mark.parametrize("module", [
    "torchslim.export.slim", "torchslim.export.slim.ans", "torchslim.export.slim.codec",
    "torchslim.export.slim.container", "torchslim.export.slim.model", "torchslim.core.persist",
    "torchslim.core.shapes", "torchslim.quant.sharing", "torchslim.recipe.artifact",
    "torchslim.recipe.deep_compression",
])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{module}: {result}"
