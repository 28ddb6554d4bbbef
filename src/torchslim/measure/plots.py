"""Plots of measurements (matplotlib, Agg canvas; no global pyplot state, no display needed).

Files are written atomically; the format follows the path's suffix (``.png``, ``.svg``, ``.pdf``).

Example:
    >>> import tempfile, torch
    >>> from torchslim.measure import measure
    >>> from torchslim.measure.plots import plot_layers
    >>> m = measure(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2)),
    ...             torch.zeros(1, 8), latency=False, memory=False)
    >>> plot_layers(m, tempfile.mkdtemp() + "/layers.png").stat().st_size > 0
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from torchslim.core.errors import InputError, UnknownNameError
from torchslim.core.io import atomic_write
from torchslim.measure.compare import QUANTITIES
from torchslim.measure.metrics import Metrics

# Quantities drawn by plot_compare (labels of compare.QUANTITIES).
COMPARED = ("latency median (ms)", "size", "MACs", "accuracy")


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    fmt = target.suffix.lstrip(".").lower() or "png"
    FigureCanvasAgg(fig)
    with atomic_write(target) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
    return target


def plot_layers(metrics: Metrics, path: str | os.PathLike[str], *, top: int = 40) -> Path:
    """Horizontal bars of each layer's own MACs and params (the ``top`` layers by MACs).

    Example:
        >>> import tempfile, torch
        >>> from torchslim.measure import measure
        >>> m = measure(torch.nn.Linear(4, 4), torch.zeros(1, 4), latency=False, memory=False)
        >>> plot_layers(m, tempfile.mkdtemp() + "/l.svg").suffix
        '.svg'
    """
    layers = [lay for lay in metrics.layers if lay.macs or lay.params]
    if not layers:
        raise InputError(f"plot_layers: {metrics.name} has no layer with MACs or parameters to plot")
    layers = sorted(layers, key=lambda lay: lay.macs, reverse=True)[:top][::-1]
    labels = [f"{lay.name or '(model)'} [{lay.type}]" for lay in layers]
    fig = Figure(figsize=(11, 0.3 * len(layers) + 1.6))
    ax_macs, ax_params = fig.subplots(1, 2, sharey=True)
    ax_macs.barh(labels, [lay.macs for lay in layers], color="tab:blue")
    ax_macs.set_xlabel("MACs per forward pass")
    ax_params.barh(labels, [lay.params for lay in layers], color="tab:orange")
    ax_params.set_xlabel("parameters")
    fig.suptitle(f"{metrics.name}: {metrics.runtime}, batch {metrics.batch_size}")
    return _save(fig, path)


def plot_compare(
    metrics_map: Mapping[str, Metrics], path: str | os.PathLike[str], baseline: str | None = None
) -> Path:
    """Grouped bars, one group per quantity (latency, size, MACs, accuracy), of each model's
    value divided by the baseline's (the first entry by default); 1.0 is the baseline.

    Example:
        >>> import tempfile, torch
        >>> from torchslim.measure import measure
        >>> x = torch.zeros(1, 8)
        >>> a = measure(torch.nn.Linear(8, 8), x, latency=False, memory=False)
        >>> b = measure(torch.nn.Linear(8, 2), x, latency=False, memory=False)
        >>> plot_compare({"a": a, "b": b}, tempfile.mkdtemp() + "/c.png").name
        'c.png'
    """
    if not metrics_map:
        raise InputError("plot_compare needs at least one Metrics record")
    names = list(metrics_map)
    base_name = baseline or names[0]
    if base_name not in metrics_map:
        raise UnknownNameError("baseline", base_name, names)
    getters = {label: get for label, get, _ in QUANTITIES if label in COMPARED}
    labels = [q for q in COMPARED if getters[q](metrics_map[base_name]) not in (None, 0)]
    fig = Figure(figsize=(2.2 * max(len(labels), 1) + 3, 4))
    ax = fig.subplots()
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        ratios = []
        for q in labels:
            v, b = getters[q](metrics_map[n]), getters[q](metrics_map[base_name])
            ratios.append(float(v) / float(b) if v is not None and b else 0.0)
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, ratios, width=width, label=n)
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(f"ratio to {base_name}")
    ax.legend()
    fig.suptitle(f"compared with {base_name}")
    return _save(fig, path)
