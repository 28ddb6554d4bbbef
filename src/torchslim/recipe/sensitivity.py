"""Per-layer sensitivity for each technique: compress one layer (or one channel group) alone,
without any recovery, and measure how much the validation metric drops.

- ``prune``: each prunable channel group of structured pruning (the layers whose output
  channels are tied, e.g. across a residual add) loses ``ratio`` of its channels;
- ``low_rank``: each Linear/Conv layer is replaced by a factorization keeping ``ratio`` of its
  weights (layers where that saves nothing are left out);
- ``int8``: each Linear/Conv layer alone is quantized to static int8.

The drops order layers from robust to fragile; the search uses them to prune robust groups
harder, factorize only robust layers and keep fragile ones in float.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.recipe.sensitivity import int8_sensitivity
    >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    >>> data = [(torch.randn(64, 8), torch.randint(0, 3, (64,)))]
    >>> [row["layer"] for row in int8_sensitivity(net, data, data)]
    ['0', '2']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from torchslim.arch import LowRank, factorize
from torchslim.core.errors import TorchslimError
from torchslim.core.targets import Target
from torchslim.measure.accuracy import BatchMetric, evaluate
from torchslim.measure.macs import count_macs
from torchslim.prune import StructuredPrune, preflight, prune
from torchslim.quant import Int8Static, quantize

Row = dict[str, Any]
Progress = Callable[[str], None]
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the model's Linear and Conv layers, in order.

    Example:
        >>> layer_names(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)))
        ['0', '2']
    """
    return [n for n, m in model.named_modules() if n and isinstance(m, LAYERS)]


def prune_groups(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> dict[str, list[str]]:
    """Prunable channel group name -> the modules whose output channels form it (what
    ``StructuredPrune.ignore`` must name to keep that group whole)."""
    report = preflight(model, example_inputs)
    groups: dict[str, list[str]] = {}
    for g in report.groups:
        mods = sorted({m.param.rsplit(".", 1)[0] for m in g.members if m.dim == 0})
        if mods:
            groups[g.name()] = mods
    return groups


def prune_only(groups: dict[str, list[str]], chosen: Iterable[str]) -> tuple[str, ...]:
    """The ``ignore`` list that leaves only the ``chosen`` groups prunable."""
    keep = set(chosen)
    return tuple(sorted({m for g, mods in groups.items() if g not in keep for m in mods}
                        - {m for g in keep for m in groups[g]}))


def _drop(base: float, model: nn.Module, val: Iterable[Any], metric: BatchMetric | None) -> tuple[float, float]:
    value = evaluate(model, val, metric)
    return value, (base - value) * 100


def prune_sensitivity(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], val: Iterable[Any], *,
                      metric: BatchMetric | None = None, ratio: float = 0.5, step: Progress | None = None) -> list[Row]:
    """One row per prunable channel group: metric and drop (pt) with ``ratio`` of it removed."""
    base = evaluate(model, val, metric)
    macs0 = count_macs(model, example_inputs)[0]
    groups = prune_groups(model, example_inputs)
    rows = []
    for name in groups:
        if step:
            step(f"prune {name}")
        try:
            small = prune(model, StructuredPrune(sparsity=ratio, ignore=prune_only(groups, [name])),
                          example_inputs=example_inputs)
        except TorchslimError as e:
            rows.append({"technique": "prune", "layer": name, "setting": ratio, "metric": None, "drop_pt": None,
                         "saved": 0.0, "note": str(e)})
            continue
        value, drop = _drop(base, small, val, metric)
        saved = 1 - count_macs(small, example_inputs)[0] / macs0 if macs0 else 0.0
        rows.append({"technique": "prune", "layer": name, "setting": ratio, "metric": value, "drop_pt": drop,
                     "saved": saved, "modules": groups[name], "note": ""})
    return rows


def low_rank_sensitivity(model: nn.Module, val: Iterable[Any], *, metric: BatchMetric | None = None,
                         ratio: float = 0.5, step: Progress | None = None) -> list[Row]:
    """One row per Linear/Conv layer that a ``param_ratio=ratio`` factorization shrinks."""
    base = evaluate(model, val, metric)
    rows = []
    for name in layer_names(model):
        if step:
            step(f"low-rank {name}")
        try:
            small = factorize(model, LowRank(param_ratio=ratio, target=Target(include=(name,))))
        except TorchslimError:
            continue
        if not getattr(small, "arch_report", None):
            continue  # no saving at this ratio
        value, drop = _drop(base, small, val, metric)
        rep = small.arch_report[0]
        rows.append({"technique": "low_rank", "layer": name, "setting": ratio, "metric": value, "drop_pt": drop,
                     "saved": 1 - rep.params_after / rep.params_before, "note": f"rank {rep.rank}"})
    return rows


def int8_sensitivity(model: nn.Module, calibration: Any, val: Iterable[Any], *, metric: BatchMetric | None = None,
                     samples: int = 256, step: Progress | None = None) -> list[Row]:
    """One row per Linear/Conv layer quantized alone to static int8."""
    base = evaluate(model, val, metric)
    rows = []
    for name in layer_names(model):
        if step:
            step(f"int8 {name}")
        try:
            q = quantize(model, Int8Static(calibration_samples=samples, target=Target(include=(name,))),
                         calibration=calibration)
        except TorchslimError as e:
            rows.append({"technique": "int8", "layer": name, "setting": 8, "metric": None, "drop_pt": None,
                         "saved": 0.0, "note": str(e)})
            continue
        value, drop = _drop(base, q, val, metric)
        rows.append({"technique": "int8", "layer": name, "setting": 8, "metric": value, "drop_pt": drop,
                     "saved": 0.75, "note": ""})
    return rows


def tiers(rows: list[Row], key: str = "layer") -> dict[str, int]:
    """Sensitivity tercile of each row's ``key``: 0 robust, 1 middle, 2 fragile (unmeasured
    rows count as fragile).

    Example:
        >>> tiers([{"layer": "a", "drop_pt": 0.1}, {"layer": "b", "drop_pt": 5.0}, {"layer": "c", "drop_pt": 1.0}])
        {'a': 0, 'c': 1, 'b': 2}
    """
    ranked = sorted(rows, key=lambda r: float("inf") if r["drop_pt"] is None else r["drop_pt"])
    n = max(len(ranked), 1)
    return {r[key]: min(2, 3 * i // n) for i, r in enumerate(ranked)}
