"""Where the time of a tiny MobileNet goes, and every depth choice it allows (the ``space``
part of ``python -m benchmarks prune``).

- :func:`prefix_times`: batch-1 latency of the stem plus the first k blocks (then a mean
  over space), k = 0..all, in torch and ONNX Runtime: the cost of each block and the floor
  under them (an empty graph).
- :func:`depth_width_space`: every combination of removing, in each shape-preserving block,
  nothing, its depthwise layer or the whole block, then channels (global L2, ``round_to=8``)
  down to half the original MACs in total; MACs ratio and speed-up on both runtimes. Two more
  choices bound what any depth pruning could do: every depthwise layer removed (the strided
  ones too, their stride moved into the next 1x1 conv), alone and with those blocks removed.
- :func:`thin_floors`: the same graph with 8 channels in every layer, for five depth
  structures: the most channel pruning could gain on each, at any MACs.

Example (a few minutes on 2 cores):
    >>> from benchmarks._prune_space import depth_width_space  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import importlib
import itertools
from typing import Any

import torch
from torch import nn

from torchslim.core.modules import get_module, set_module
from torchslim.measure.macs import count_macs
from torchslim.prune.depth.rewrite import SkippedLayer
from torchslim.prune.structured.latency import time_variants
from torchslim.zoo.mobilenet import DepthwiseSeparable, conv_bn

P = importlib.import_module("torchslim.prune")
RUNTIMES = ("torch", "onnxruntime")


class _Prefix(nn.Module):
    """The stem and the first ``k`` blocks of a zoo MobileNet, then a spatial mean."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.stem, self.blocks = model.stem, model.blocks[:k]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28)
        return self.blocks(self.stem(x)).mean((2, 3))  # (B, C_k)


class _Floor(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28)
        return x.mean((2, 3))  # (B, 1): one op, the cost of a call


def _timed(variants: dict[str, nn.Module], x: torch.Tensor) -> dict[str, dict[str, float]]:
    return {rt: time_variants(variants, (x,), rt, rounds=31) for rt in RUNTIMES}


def prefix_times(model: nn.Module, x: torch.Tensor) -> dict[str, dict[str, float]]:
    """Median ms of an empty graph, the stem + k blocks (k = 0..len(blocks)) and the whole model."""
    variants = {"empty": _Floor(), **{f"stem + {k} blocks": _Prefix(model, k) for k in range(len(model.blocks) + 1)},
                "whole model": model}
    ms = _timed(variants, x)
    for rt, row in ms.items():
        print(f"{rt:12s}", "  ".join(f"{k} {v * 1e3:.1f} us" for k, v in row.items()), flush=True)
    return ms


def _removable(model: nn.Module) -> tuple[list[int], list[int]]:
    """The blocks whose depthwise layer can go as a layer (stride 1), and those of them that can
    go whole (their 1x1 keeps the width too)."""
    movable = [i for i, b in enumerate(model.blocks) if b.depthwise[0].stride == (1, 1)]
    return movable, [i for i in movable if model.blocks[i].pointwise[0].in_channels == model.blocks[i].pointwise[0].out_channels]


def depth_width_space(model: nn.Module, x: torch.Tensor) -> dict[str, dict[str, float]]:
    """Every removal choice per shape-preserving block (nothing, ``depthwise``, the block), then
    channels to half the MACs: ``{choice: {macs_ratio, speedup_torch, speedup_onnxruntime}}``."""
    base = count_macs(model, (x,))[0]
    movable, keep = _removable(model)
    variants: dict[str, nn.Module] = {"unpruned": model}
    for choice in itertools.product(*[("", "depthwise", "block") if i in keep else ("", "depthwise") for i in movable]):
        m = copy.deepcopy(model)
        removed = [f"blocks.{i}" + (".depthwise" if c == "depthwise" else "") for i, c in zip(movable, choice, strict=True) if c]
        for name in removed:
            set_module(m, name, SkippedLayer(type(get_module(m, name)).__name__))
        variants[" + ".join(removed) or "channels only"] = _half_macs(m, x, base)
    variants |= _every_depthwise(model, x, keep)
    ms = _timed(variants, x)
    out = {}
    for k, m in list(variants.items())[1:]:
        ratio = base / count_macs(m, (x,))[0]
        out[k] = {"macs_ratio": ratio, **{f"speedup_{rt}": ms[rt]["unpruned"] / ms[rt][k] for rt in RUNTIMES}}
        print(f"{k:58s} macs {ratio:.2f}x  " + "  ".join(
            f"{rt} {out[k][f'speedup_{rt}']:.2f}x ({out[k][f'speedup_{rt}'] / ratio:.2f})" for rt in RUNTIMES), flush=True)
    return out


def _cut(model: nn.Module, depthwise: list[int], blocks: list[int]) -> nn.Module:
    """A copy of a zoo MobileNet without the depthwise layers of blocks ``depthwise`` (a strided
    one hands its stride to the 1x1 conv after it, which then samples the positions the 3x3 was
    centred on) and without the whole ``blocks``."""
    m = copy.deepcopy(model)
    for i in depthwise:
        b = m.blocks[i]
        b.pointwise[0].stride = b.depthwise[0].stride
        set_module(m, f"blocks.{i}.depthwise", SkippedLayer(type(b.depthwise).__name__))
    for i in blocks:
        set_module(m, f"blocks.{i}", SkippedLayer(type(m.blocks[i]).__name__))
    return m


def _half_macs(m: nn.Module, x: torch.Tensor, base: int) -> nn.Module:
    macs = count_macs(m, (x,))[0]
    if macs <= 0.5 * base:
        return m
    return P.prune(m, P.StructuredPrune(target_macs=0.5 * base / macs, round_to=8, scope="global", importance="l2"),
                   example_inputs=x)


def _every_depthwise(model: nn.Module, x: torch.Tensor, blocks: list[int]) -> dict[str, nn.Module]:
    """Past what layer removal can do: every depthwise layer gone (:func:`_cut`), alone and with the
    shape-preserving ``blocks`` gone too; then channels to half the MACs."""
    base, rest = count_macs(model, (x,))[0], [i for i in range(len(model.blocks)) if i not in blocks]
    return {"every depthwise layer": _half_macs(_cut(model, list(range(len(model.blocks))), []), x, base),
            f"every depthwise layer + blocks {blocks}": _half_macs(_cut(model, rest, blocks), x, base)}


def _thin(model: nn.Module, width: int = 8) -> nn.Module:
    """The graph of a zoo MobileNet with ``width`` channels in every layer."""
    m = copy.deepcopy(model)
    m.stem = conv_bn(m.stem[0].in_channels, width, 3, stride=m.stem[0].stride[0])
    for i, b in enumerate(model.blocks):
        m.blocks[i] = DepthwiseSeparable(width, width, b.depthwise[0].stride[0])
    m.fc = nn.Linear(width, m.fc.out_features)
    return m.eval()


def thin_floors(model: nn.Module, x: torch.Tensor) -> dict[str, dict[str, float]]:
    """The most any channel pruning can gain on each depth structure: its speed-up over ``model``
    with 8 channels in every layer (nothing removed; the stride-1 depthwise layers; every
    depthwise layer; and each of those two with the shape-preserving blocks removed whole)."""
    s1, whole = _removable(model)
    every = list(range(len(model.blocks)))
    cuts = {"nothing": ([], []), f"depthwise {s1}": (s1, []), "every depthwise": (every, []),
            f"depthwise {[i for i in s1 if i not in whole]} + blocks {whole}": ([i for i in s1 if i not in whole], whole),
            f"every depthwise + blocks {whole}": ([i for i in every if i not in whole], whole)}
    thin = _thin(model)
    ms = _timed({"unpruned": model, **{k: _cut(thin, *v) for k, v in cuts.items()}}, x)
    out = {k: {rt: ms[rt]["unpruned"] / ms[rt][k] for rt in RUNTIMES} for k in cuts}
    for k, v in out.items():
        print(f"8 channels everywhere, {k:40s} " + "  ".join(f"{rt} at most {v[rt]:.2f}x" for rt in RUNTIMES), flush=True)
    return out


def space(teacher: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """The three measurements above, and the best speed-up / MACs ratio each runtime reached."""
    result: dict[str, Any] = {"prefix_ms": prefix_times(teacher, x), "choices": depth_width_space(teacher, x),
                              "thin_floors": thin_floors(teacher, x)}
    result["best_over_macs"] = {rt: max(v[f"speedup_{rt}"] / v["macs_ratio"] for v in result["choices"].values())
                                for rt in RUNTIMES}
    print("best speed-up / MACs ratio:", {k: round(v, 2) for k, v in result["best_over_macs"].items()}, flush=True)
    return result
