"""Per-layer ranks chosen by measured sensitivity.

1. Measure: for each selected layer and each candidate rank, replace *only that layer* by its
   rank-r factorization and evaluate the metric on the given data; the layer's loss at that rank
   is ``metric(original) - metric(with the replacement)``. Losses are then made non-increasing
   in rank (a higher rank never counts as worse than a lower one; staying whole costs 0), which
   also clamps improvements that are only noise to 0.
2. Allocate: choose one option per layer (a candidate rank, or the layer kept whole) so that the
   summed cost (weights, or MACs per sample) stays within the budget and the summed loss is
   least: a multiple-choice knapsack, solved exactly by dynamic programming over the budget cut
   into ``grid`` cells (each option's cost is rounded *up* to whole cells, so the result never
   exceeds the budget). Among equally small losses the larger total cost (higher ranks) wins.

Losses are assumed to add up across layers, the usual first-order assumption of
sensitivity-based allocation.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.arch.sensitivity import allocate_ranks, measure_sensitivity
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    >>> data = [(torch.randn(64, 32), torch.randint(0, 4, (64,)))]
    >>> layers = [("0", net[0]), ("2", net[2])]
    >>> table = measure_sensitivity(net, layers, data, candidates=(0.1, 0.3, 0.5), progress=False)
    >>> [o.rank for o in table[0].options]
    [1, 4, 8, None]
    >>> choice = allocate_ranks(table, ratio=0.3)
    >>> sum(o.cost for o in choice.values()) <= 0.3 * 2 * 32 * 32
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from rich.progress import track
from torch import nn

from torchslim.arch.lowrank import SVD, factorize_layer, max_rank, saves, weight_matrix, weight_svd
from torchslim.core.errors import ConfigError, InputError
from torchslim.core.inputs import batch_of
from torchslim.core.modules import set_module
from torchslim.measure.accuracy import BatchMetric, evaluate

Budget = Literal["params", "macs"]


@dataclass
class RankOption:
    """One choice for a layer: ``rank`` (``None``: the layer stays whole), its cost (weights, or
    MACs per sample) and its loss (measured ``drop``; ``loss`` is the monotone version used)."""

    rank: int | None
    cost: int
    drop: float
    loss: float = 0.0


@dataclass
class LayerSensitivity:
    """A layer's options in ascending rank, the last one the layer kept whole; ``budget`` says
    what the costs count (weights, or MACs per sample)."""

    name: str
    budget: Budget = "params"
    options: list[RankOption] = field(default_factory=list)

    @property
    def full_cost(self) -> int:
        return self.options[-1].cost

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for reports and JSON."""
        return {"name": self.name, "budget": self.budget, "options": [vars(o) for o in self.options]}


def _positions(model: nn.Module, layers: Sequence[tuple[str, nn.Module]], data: Iterable[Any]) -> dict[str, int]:
    """Output positions per sample of each layer (tokens for a Linear on (B, T, C), H*W for a
    conv) on the first batch of ``data``: the MACs of a layer are positions x its weights."""
    seen: dict[str, int] = {}

    def hook(name: str) -> Any:
        def fn(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
            channels = mod.out_features if isinstance(mod, nn.Linear) else mod.out_channels
            seen[name] = max(1, out.numel() // (out.shape[0] * channels))
        return fn

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers]
    try:
        inputs, _ = batch_of(next(iter(data)))
        with torch.inference_mode():
            model(*inputs)
    except StopIteration:
        raise InputError("rank_selection='sensitivity': the data gave no batch") from None
    finally:
        for h in handles:
            h.remove()
    missing = [n for n, _ in layers if n not in seen]
    if missing:
        raise InputError(f"rank_selection='sensitivity': layers {missing[:5]} were not called on the data")
    return seen


def candidate_ranks(layer: nn.Module, candidates: Sequence[float], min_saving: float = 0.0) -> list[int]:
    """The distinct ranks whose pair keeps each fraction in ``candidates`` of the layer's
    weights, limited to those that really save (see :func:`~torchslim.arch.lowrank.saves`).

    Example:
        >>> from torch import nn
        >>> from torchslim.arch.sensitivity import candidate_ranks
        >>> candidate_ranks(nn.Linear(100, 100), (0.1, 0.2, 0.9))
        [5, 10, 45]
    """
    out_dim, in_dim = weight_matrix(layer).shape
    per_rank = in_dim + out_dim
    ranks = {max(1, min(max_rank(layer), math.floor(f * in_dim * out_dim / per_rank))) for f in candidates}
    return sorted(r for r in ranks if saves(layer, r, min_saving))


def measure_sensitivity(
    model: nn.Module,
    layers: Sequence[tuple[str, nn.Module]],
    data: Iterable[Any],
    *,
    candidates: Sequence[float],
    budget: Budget = "params",
    metric: BatchMetric | None = None,
    min_saving: float = 0.0,
    progress: bool = True,
    svds: dict[str, SVD] | None = None,
) -> list[LayerSensitivity]:
    """Each layer's loss at each candidate rank, one layer replaced at a time (``model`` is
    modified during the measurement and restored). ``metric`` is a
    :data:`~torchslim.measure.accuracy.BatchMetric` (default top-1 accuracy) over ``data``;
    ``svds`` the factors to truncate per layer (default: the SVD of each weight)."""
    per_sample = _positions(model, layers, data) if budget == "macs" else {n: 1 for n, _ in layers}
    base = evaluate(model, data, metric)
    table = []
    steps = track(layers, description="rank sensitivity", disable=not progress, transient=True)
    for name, layer in steps:
        out_dim, in_dim = weight_matrix(layer).shape
        pos = per_sample[name]
        svd = svds[name] if svds is not None else weight_svd(layer)
        row = LayerSensitivity(name, budget)
        try:
            for r in candidate_ranks(layer, candidates, min_saving):
                set_module(model, name, factorize_layer(layer, r, svd=svd).train(layer.training))
                row.options.append(RankOption(r, r * (in_dim + out_dim) * pos, base - evaluate(model, data, metric)))
        finally:
            set_module(model, name, layer)
        row.options.append(RankOption(None, in_dim * out_dim * pos, 0.0))
        worst = 0.0
        for opt in reversed(row.options):  # from the whole layer down to the smallest rank
            worst = max(worst, opt.drop)
            opt.loss = worst
        table.append(row)
    return table


def allocate_ranks(table: Sequence[LayerSensitivity], *, ratio: float, grid: int = 2000) -> dict[str, RankOption]:
    """The option per layer with the least summed loss whose summed cost is at most ``ratio``
    of the layers' whole cost. A ConfigError if even the smallest ranks do not fit. Costs are
    rounded up to cells of ``budget / grid``, so up to ``len(table) / grid`` of the budget may
    go unused.

    Example:
        >>> from torchslim.arch.sensitivity import LayerSensitivity, RankOption, allocate_ranks
        >>> a = LayerSensitivity("a", "params", [RankOption(1, 10, 0.0, 0.3), RankOption(None, 100, 0.0)])
        >>> b = LayerSensitivity("b", "params", [RankOption(1, 10, 0.0, 0.1), RankOption(None, 100, 0.0)])
        >>> {k: v.rank for k, v in allocate_ranks([a, b], ratio=0.6).items()}
        {'a': None, 'b': 1}
    """
    full = sum(row.full_cost for row in table)
    budget = ratio * full
    smallest = sum(min(o.cost for o in row.options) for row in table)
    if smallest > budget:
        raise ConfigError(
            f"rank_selection='sensitivity': even the smallest candidate ranks keep {smallest / full:.3f} "
            f"of the selected layers' cost, above the target {ratio}; add smaller candidates or raise the ratio"
        )
    cell = budget / grid
    dp = np.full(grid + 1, np.inf)  # dp[c]: least objective using exactly c cells so far
    dp[0] = 0.0
    choices = []
    for row in table:
        new = np.full(grid + 1, np.inf)
        pick = np.full(grid + 1, -1, dtype=np.int64)
        for i, opt in enumerate(row.options):
            c = math.ceil(opt.cost / cell - 1e-9)
            if c > grid:
                continue
            # a tiny reward for cost: among equal losses, the higher rank
            cand = np.full(grid + 1, np.inf)
            cand[c:] = dp[: grid + 1 - c] + opt.loss - 1e-9 * opt.cost / full
            better = cand < new
            new[better], pick[better] = cand[better], i
        dp = new
        choices.append(pick)
    c = int(np.argmin(dp))
    chosen: dict[str, RankOption] = {}
    for row, pick in zip(reversed(table), reversed(choices), strict=True):
        opt = row.options[int(pick[c])]
        chosen[row.name] = opt
        c -= math.ceil(opt.cost / cell - 1e-9)
    return dict(reversed(list(chosen.items())))
