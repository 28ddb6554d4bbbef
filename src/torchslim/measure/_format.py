"""Number formatting and rich-table rendering shared by Metrics and compare().

Example:
    >>> from torchslim.measure._format import human_bytes, human_count
    >>> human_bytes(1536), human_count(2_500_000)
    ('1.50 KiB', '2.50M')
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table


def human_count(n: float | None) -> str:
    """``1234567`` -> ``'1.23M'``; ``None`` -> ``'-'``."""
    if n is None:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``'1.50 KiB'``; ``None`` -> ``'-'``."""
    if n is None:
        return "-"
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}"
    return f"{int(n)} B"


def render(table: Table, console: Console | None = None, width: int = 160) -> str:
    """Plain text of ``table``; also printed to ``console`` if one is given."""
    buf = Console(file=io.StringIO(), width=width, record=True, color_system=None, force_terminal=False)
    buf.print(table)
    text = buf.export_text()
    if console is not None:
        console.print(table)
    return text
