"""The report's plots, drawn with matplotlib on an Agg canvas and returned as PNG bytes (so
the HTML report can embed them and stay one self-contained file).

- :func:`before_after`: grouped bars of latency, size, MACs and parameters as ratios to the
  original in torch fp32, with the accuracy of each model in the legend;
- :func:`stages_plot`: the validation metric and latency after each stage of a run;
- :func:`pareto_plot`: every candidate of a search, metric against latency and against size,
  with the fronts drawn and each technique-alone candidate marked;
- :func:`sensitivity_plot`: per-layer drop (pt) for each technique.

Example:
    >>> import torch
    >>> from torchslim.measure import measure
    >>> from torchslim.report.figures import before_after
    >>> m = measure(torch.nn.Linear(8, 2), torch.zeros(1, 8), latency=False, memory=False)
    >>> before_after({"a": m, "b": m})[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from torchslim.measure import Metrics
from torchslim.recipe.auto_result import AutoResult
from torchslim.recipe.result import RunResult

COLOURS = {"prune": "tab:blue", "low_rank": "tab:orange", "int8": "tab:green", "combination": "tab:red",
           "fp32": "black"}


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def before_after(models: Mapping[str, Metrics], baseline: str | None = None) -> bytes:
    """Bars of each model's latency, size, MACs and parameters divided by the baseline's."""
    names = list(models)
    base = models[baseline or names[0]]
    quantities = [("latency", lambda m: m.latency.median_ms if m.latency else None), ("size", lambda m: m.bytes),
                  ("MACs", lambda m: m.macs), ("params", lambda m: m.params_total)]
    quantities = [(q, get) for q, get in quantities if get(base)]
    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.subplots()
    width = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        m = models[n]
        ratios = [(get(m) or 0) / get(base) for _, get in quantities]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(quantities))]
        acc = "" if m.accuracy is None else f" ({m.accuracy:.2%})"
        bars = ax.bar(xs, ratios, width=width, label=f"{n}{acc}")
        ax.bar_label(bars, labels=[f"{r:.2f}" for r in ratios], fontsize=7, padding=1)
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(quantities)), [q for q, _ in quantities])
    ax.set_ylabel(f"ratio to {baseline or names[0]}")
    ax.legend(fontsize=8)
    ax.set_title("before / after (lower is better; accuracy in the legend)")
    return png(fig)


def stages_plot(r: RunResult) -> bytes:
    """Validation metric (left) and latency (right; size if not timed) after each stage,
    rolled-back ones hollow."""
    fig = Figure(figsize=(7.5, 3.4))
    ax_m, ax_l = fig.subplots(1, 2)
    labels = ["original"] + [f"{s.index + 1}. {s.label}" for s in r.stages]
    vals = [r.baseline_val] + [s.val for s in r.stages]
    lats: list[float | None] = [r.baseline.latency.median_ms if r.baseline.latency else None] + [
        (s.measured.latency.median_ms if s.measured and s.measured.latency else None) for s in r.stages]
    right = "latency (ms)"
    if all(v is None for v in lats):  # not timed: show the file size instead
        right = "size (KiB)"
        lats = [r.baseline.bytes / 1024] + [(s.measured.bytes / 1024 if s.measured else None) for s in r.stages]
    kept = [True] + [s.status in ("kept", "unchecked") for s in r.stages]
    xs = list(range(len(labels)))
    for ax, ys, what in ((ax_m, vals, f"val {r.metric}"), (ax_l, lats, right)):
        for x, y, k in zip(xs, ys, kept, strict=True):
            if y is not None:
                ax.plot([x], [y], "o", color="tab:blue", fillstyle="full" if k else "none", markersize=7)
        ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(what)
    ax_m.axhline(r.baseline_val - r.budget_pt / 100, color="tab:red", linestyle="--", linewidth=0.8, label="budget")
    ax_m.legend(fontsize=7)
    fig.suptitle(f"{r.name}: after each stage (hollow = rolled back)")
    return png(fig)


def _kind(techniques: list[str]) -> str:
    if not techniques:
        return "fp32"
    return techniques[0] if len(techniques) == 1 else "combination"


def pareto_plot(r: AutoResult) -> bytes:
    """Candidates: validation metric against latency and against size, fronts as lines."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    floor = r.baseline_val - r.budget_pt / 100
    for ax, cost, fr, xlabel in ((axes[0], lambda c: c.latency_ms, r.front_latency, "latency on onnxruntime (ms, batch 1)"),
                                 (axes[1], lambda c: c.bytes / 1024, r.front_size, "size (KiB)")):
        seen: set[str] = set()
        for c in r.candidates:
            kind = _kind(c.techniques)
            ax.scatter([cost(c)], [c.val * 100], color=COLOURS[kind], marker="*" if c.label == r.best_label else "o",
                       s=140 if c.label == r.best_label else 36, label=None if kind in seen else kind.replace("_", "-"),
                       edgecolors="black" if c.label == r.best_label else "none", zorder=3)
            seen.add(kind)
        pts = sorted((cost(c), c.val * 100) for c in r.candidates if c.label in fr)
        if pts:
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="gray", linewidth=1, zorder=2)
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=120, facecolors="none", edgecolors="gray",
                       zorder=4, label="front")
        ax.axhline(floor * 100, color="tab:red", linestyle="--", linewidth=0.8, label="budget")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"val {r.metric} (%)")
        costs = [cost(c) for c in r.candidates if cost(c) > 0]
        if costs and max(costs) / min(costs) > 10:
            ax.set_xscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(f"Pareto fronts ({r.workload}); star = best for {r.objective}")
    return png(fig)


def sensitivity_plot(rows: list[dict[str, Any]]) -> bytes:
    """Horizontal bars: drop (pt) per layer, one panel per technique."""
    techs = sorted({row["technique"] for row in rows})
    tallest = max((sum(1 for r in rows if r["technique"] == t) for t in techs), default=1)
    fig = Figure(figsize=(4.6 * max(len(techs), 1), 0.3 * tallest + 1.8), layout="constrained")
    axes = fig.subplots(1, max(len(techs), 1), squeeze=False)[0]
    for ax, tech in zip(axes, techs, strict=False):
        mine = [row for row in rows if row["technique"] == tech]
        ax.barh([str(row["layer"]).removesuffix(":channels") for row in mine][::-1], [row["drop_pt"] or 0.0 for row in mine][::-1],
                color=COLOURS.get(tech, "gray"))
        drops = [row["drop_pt"] or 0.0 for row in mine] or [0.0]
        ax.set_xlim(min(0.0, min(drops)), max(1.0, max(drops) * 1.05))
        ax.set_xlabel("drop (pt), this layer alone")
        ax.set_title(f"{tech.replace('_', '-')} (setting {mine[0]['setting']})" if mine else tech, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("per-layer sensitivity (no recovery)")
    return png(fig)
