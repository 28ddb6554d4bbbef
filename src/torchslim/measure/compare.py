"""Side-by-side comparison of several :class:`~torchslim.measure.metrics.Metrics` records.

One row per quantity, one value column per model, and after each non-baseline model a
ratio column ``x <baseline>`` = value / baseline value (``0.25x`` = four times smaller).
Accuracy is compared by difference, in percentage points, since a ratio of accuracies
hides what matters.

Example:
    >>> import torch
    >>> from torchslim.measure import measure, compare
    >>> x = torch.zeros(1, 32)
    >>> big = measure(torch.nn.Linear(32, 32), x, latency=False, memory=False, name="big")
    >>> small = measure(torch.nn.Linear(32, 8), x, latency=False, memory=False, name="small")
    >>> from rich.console import Console
    >>> "0.25x" in compare({"big": big, "small": small}, console=Console(quiet=True))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.console import Console
from rich.table import Table

from torchslim.core.errors import InputError, UnknownNameError
from torchslim.measure._format import human_bytes, human_count, render
from torchslim.measure.metrics import Metrics

# (label, value getter, formatter); lower is better for every quantity except accuracy.
Quantity = tuple[str, Callable[[Metrics], float | None], Callable[[float | None], str]]
QUANTITIES: list[Quantity] = [
    ("params", lambda m: m.params_total, human_count),
    ("nonzero params", lambda m: m.params_nonzero, human_count),
    ("size", lambda m: m.bytes, human_bytes),
    ("MACs", lambda m: m.macs, human_count),
    ("latency median (ms)", lambda m: m.latency.median_ms if m.latency else None,
     lambda v: "-" if v is None else f"{v:.3f}"),
    ("latency p90 (ms)", lambda m: m.latency.p90_ms if m.latency else None,
     lambda v: "-" if v is None else f"{v:.3f}"),
    ("memory footprint", lambda m: m.peak_memory.footprint_bytes if m.peak_memory else None, human_bytes),
    ("energy est. (uJ)", lambda m: m.energy.total_uj if m.energy else None,
     lambda v: "-" if v is None else f"{v:.3f}"),
    ("accuracy", lambda m: m.accuracy, lambda v: "-" if v is None else f"{v:.2%}"),
]


def ratio_text(label: str, value: float | None, base: float | None) -> str:
    """``"0.25x"`` (value / base), or for accuracy ``"-1.20 pt"``; ``"-"`` when undefined.

    Example:
        >>> ratio_text("MACs", 25, 100), ratio_text("accuracy", 0.95, 0.97)
        ('0.25x', '-2.00 pt')
    """
    if value is None or base is None:
        return "-"
    if label == "accuracy":
        return f"{(value - base) * 100:+.2f} pt"
    if base == 0:
        return "-" if value == 0 else "inf"
    return f"{value / base:.2f}x"


def compare(
    metrics: Mapping[str, Metrics],
    baseline: str | None = None,
    *,
    console: Console | None = None,
) -> str:
    """Print a table of ``metrics`` side by side with ratios against ``baseline`` (the first
    entry by default) and return its plain text. The table is printed to ``console``, by
    default a new ``rich`` console on stdout (``Console(quiet=True)`` prints nothing).

    Example:
        >>> import torch
        >>> from torchslim.measure import measure
        >>> a = measure(torch.nn.Linear(8, 8), torch.zeros(1, 8), latency=False, memory=False)
        >>> from rich.console import Console
        >>> "x a" in compare({"a": a, "b": a}, console=Console(quiet=True))
        True
    """
    if not metrics:
        raise InputError("compare() needs at least one Metrics record")
    names = list(metrics)
    base_name = names[0] if baseline is None else baseline
    if base_name not in metrics:
        raise UnknownNameError("baseline", base_name, names)
    order = [base_name] + [n for n in names if n != base_name]

    table = Table(title=f"compared with {base_name}")
    table.add_column("metric", style="bold")
    for n in order:
        m = metrics[n]
        table.add_column(f"{n}\n{m.runtime}, {m.threads}t, b{m.batch_size}", justify="right")
        if n != base_name:
            table.add_column(f"x {base_name}", justify="right", style="cyan")
    for label, get, fmt in QUANTITIES:
        values = [get(metrics[n]) for n in order]
        if all(v is None for v in values):
            continue
        cells = [fmt(values[0])]
        for v in values[1:]:
            cells += [fmt(v), ratio_text(label, v, values[0])]
        table.add_row(label, *cells)
    return render(table, console if console is not None else Console())
