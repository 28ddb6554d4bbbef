"""The pruning benchmark's picture: for each model, every arm's speed-up / MACs ratio in torch
(x) against the same in ONNX Runtime (y), for the arms at (about) half the MACs. The goal,
>= 0.9 on both, is the shaded corner.

Not a benchmark itself (``benchmarks/__main__.py`` skips modules whose name starts with ``_``).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> arm = {"torch_over_macs": 0.95, "ort_over_macs": 0.8, "macs_ratio": 2.0}
    >>> plot_speedups({"resnet-mnist": {"torchslim": arm}}, Path(tempfile.mkdtemp()) / "p.png").stat().st_size > 0
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from torchslim.core.io import atomic_write

GOAL = 0.9  # the bound on speed-up / MACs ratio, per runtime
AT_TARGET = 1.9  # arms with fewer MACs saved than this (depth alone, stopped above half) are left out


def speedup_sections(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{model: {arm: row}}`` for every section with speed-ups, mnist ones first."""
    found = {k: results[k] for k in ("resnet-mnist", "mobilenet-mnist") if isinstance(results.get(k), dict)}
    found |= {k: v for k, v in results.get("large", {}).items() if isinstance(v, dict)}
    return {name: {arm: row for arm, row in sec.items()
                   if isinstance(row, dict) and "torch_over_macs" in row and row["macs_ratio"] >= AT_TARGET}
            for name, sec in found.items()}


def plot_speedups(results: dict[str, Any], path: Path) -> Path:
    """One panel per model; a dot per torchslim arm, a cross per Torch-Pruning arm, each labelled
    with its arm and MACs ratio. Returns ``path`` (written atomically)."""
    sections = {k: v for k, v in speedup_sections(results).items() if v}
    if not sections:
        raise ValueError("no section of these results has speed-ups to plot")
    fig = Figure(figsize=(5.2 * len(sections), 5.0))
    axes = fig.subplots(1, len(sections), squeeze=False)[0]
    for ax, (name, arms) in zip(axes, sections.items(), strict=True):
        xs = [r["torch_over_macs"] for r in arms.values()]
        ys = [r["ort_over_macs"] for r in arms.values()]
        hi = max(1.05, *xs, *ys) + 0.05
        lo = min(0.3, *xs, *ys) - 0.05
        ax.fill_between([GOAL, hi], GOAL, hi, color="green", alpha=0.12, label=f">= {GOAL} on both runtimes")
        for i, (arm, r) in enumerate(arms.items()):
            peer = arm.startswith("torch-pruning")
            ax.plot(r["torch_over_macs"], r["ort_over_macs"], "x" if peer else "o", color="C1" if peer else "C0",
                    markersize=9 if peer else 6)
            right = r["torch_over_macs"] > (lo + hi) / 2  # label towards the middle, neighbours apart
            ax.annotate(f"{arm} ({r['macs_ratio']:.2f}x)", (r["torch_over_macs"], r["ort_over_macs"]), fontsize=6,
                        xytext=(-3 if right else 3, 3 if i % 2 else -9), textcoords="offset points",
                        ha="right" if right else "left")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), title=name, xlabel="torch speed-up / MACs ratio",
               ylabel="ONNX Runtime speed-up / MACs ratio")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Structured pruning to half the MACs (arms at >= {AT_TARGET}x fewer), batch 1, 1 thread: "
                 "torchslim (dots), Torch-Pruning (crosses)")
    FigureCanvasAgg(fig)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path
