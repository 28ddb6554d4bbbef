"""Mixed precision by sensitivity: quantize one layer at a time and measure the metric change,
then keep the most sensitive layers in float until the accuracy budget holds.

It always returns the best model it found (the first meeting the budget, else the most
accurate) and a table of every evaluation it made.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.configs import Int8Static
    >>> from torchslim.quant.mixed import mixed_precision
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    >>> data = [(torch.randn(32, 4), torch.randint(0, 3, (32,)))]
    >>> model, table = mixed_precision(net, Int8Static(), calibration=data, eval_data=data, budget=1.0)
    >>> table[0]["step"]
    'float'
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from torch import nn

from torchslim.core.config import Config
from torchslim.core.errors import ConfigError
from torchslim.core.modules import set_module
from torchslim.measure.accuracy import BatchMetric, evaluate
from torchslim.quant.api import quantize
from torchslim.quant.fake_quant import quant_modules
from torchslim.quant.report import QuantReport, attach_report


def _with_float(qmodel: nn.Module, names: Iterable[str]) -> nn.Module:
    """A copy of ``qmodel`` with the named quantized layers back in float."""
    out = copy.deepcopy(qmodel)
    layers = dict(quant_modules(out))
    for n in names:
        set_module(out, n, layers[n].module)
    return out


def mixed_precision(model: nn.Module, config: Config, *, calibration: Any, eval_data: Iterable[Any], budget: float,
                    metric: BatchMetric | None = None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Quantize with ``config``, then keep layers float, most sensitive first, until
    ``float_metric - metric <= budget`` (a fraction, e.g. 0.003 for 0.3 pt of accuracy).
    Returns ``(model, table)``; the model's report lists what stayed float and why."""
    if budget < 0:
        raise ConfigError(f"budget must be >= 0, got {budget}")
    base = evaluate(model, eval_data, metric)
    table: list[dict[str, Any]] = [{"step": "float", "layer": None, "metric": base}]
    full = quantize(model, config, calibration=calibration)
    names = [n for n, _ in quant_modules(full)]
    sens = {}
    for n in names:
        only = _with_float(full, [m for m in names if m != n])
        sens[n] = base - evaluate(only, eval_data, metric)
        table.append({"step": "sensitivity", "layer": n, "metric": base - sens[n], "drop": sens[n]})
    order = sorted(names, key=lambda n: -sens[n])
    kept: list[str] = []
    best, best_metric = full, evaluate(full, eval_data, metric)
    table.append({"step": "all quantized", "layer": None, "metric": best_metric})
    current = best_metric
    while base - current > budget and len(kept) < len(names):
        kept.append(order[len(kept)])
        cand = _with_float(full, kept)
        current = evaluate(cand, eval_data, metric)
        table.append({"step": "keep float", "layer": kept[-1], "metric": current})
        if current > best_metric or base - current <= budget:
            best, best_metric = cand, current
    report = QuantReport(config=config.type_key, layers=[n for n in names if n not in kept], table=table,
                         kept_float={n: f"sensitivity {sens[n]:+.4f}" for n in kept})
    report.notes.append(f"float {base:.4f}, result {best_metric:.4f}, budget {budget}")
    attach_report(best, report)
    return best, table
