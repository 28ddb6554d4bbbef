"""What :func:`torchslim.recipe.auto` hands back: every candidate measured, the Pareto fronts,
the best model, and how the combined front compares with each technique alone.

Example:
    >>> from torchslim.recipe.auto_result import Candidate
    >>> c = Candidate(label="prune 0.50", techniques=["prune"], plan={"prune": 0.5}, val=0.98, test=0.97,
    ...               drop_pt=0.4, within_budget=True, bytes=100, macs=10, params=5, onnx="x.onnx")
    >>> Candidate.from_dict(c.to_dict()) == c
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from torch import nn

from torchslim.measure import Metrics
from torchslim.recipe.candidates import Plan
from torchslim.recipe.measuring import Measured
from torchslim.recipe.pareto import best_within, covered, front


@dataclass
class Candidate:
    """One measured compression: its plan, validation/test metric on ONNX Runtime, drop (pt)
    against the original, size, MACs, parameters and (interleaved) latency."""

    label: str
    techniques: list[str]
    plan: dict[str, Any]
    val: float
    test: float | None
    drop_pt: float
    within_budget: bool
    bytes: int
    macs: int
    params: int
    onnx: str
    latency_ms: float = math.nan
    seconds: float = 0.0
    front_latency: bool = False
    front_size: bool = False
    model: nn.Module | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, plan: Plan, m: Measured, base_val: float, budget_pt: float, seconds: float) -> Candidate:
        """A candidate from a plan and its measurement."""
        drop = (base_val - m.val) * 100
        return cls(label=plan.label, techniques=list(plan.techniques), plan=dataclasses.asdict(plan), val=m.val,
                   test=m.metrics.accuracy, drop_pt=drop, within_budget=drop <= budget_pt + 1e-9, bytes=m.metrics.bytes,
                   macs=m.metrics.macs, params=m.metrics.params_total, onnx=str(m.onnx), seconds=seconds)

    def cost(self, objective: str) -> float:
        """Latency (ms) or size (bytes)."""
        return self.latency_ms if objective == "latency" else float(self.bytes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the model is left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """The candidate back from :meth:`to_dict`."""
        return cls(**d)


@dataclass
class AutoResult:
    """The search's outcome. ``best_label`` names the chosen candidate; ``model`` is its torch
    model (not serialized). ``singles`` says, per technique, the best within-budget candidate
    using that technique alone, how many of its points a combination of techniques dominates
    (``by_combination``) and how many the front covers (dominates or equals; the front is
    built from every candidate, the single ones included)."""

    workload: str
    metric: str
    budget_pt: float
    objective: str
    threads: int
    baseline_torch: Metrics
    baseline: Metrics
    baseline_val: float
    torch_eager_ms: float
    sensitivity: list[dict[str, Any]]
    candidates: list[Candidate]
    out_dir: str
    best_label: str = ""
    budget_met: bool = False
    front_latency: list[str] = field(default_factory=list)
    front_size: list[str] = field(default_factory=list)
    singles: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model: nn.Module | None = field(default=None, compare=False, repr=False)
    kind: str = "auto"

    @property
    def name(self) -> str:
        """A title for reports."""
        return f"auto ({self.objective})"

    @property
    def best(self) -> Candidate:
        """The chosen candidate."""
        return next(c for c in self.candidates if c.label == self.best_label)

    def speedup_vs_torch(self, c: Candidate) -> float:
        """How many times faster ``c`` runs on ONNX Runtime than the original in torch eager."""
        return self.torch_eager_ms / c.latency_ms if c.latency_ms else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (models left out)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        d["baseline_torch"], d["baseline"] = self.baseline_torch.to_dict(), self.baseline.to_dict()
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoResult:
        """The result back from :meth:`to_dict` (without models)."""
        d = dict(d)
        d["baseline_torch"], d["baseline"] = Metrics.from_dict(d["baseline_torch"]), Metrics.from_dict(d["baseline"])
        d["candidates"] = [Candidate.from_dict(c) for c in d["candidates"]]
        return cls(**d)

    def table(self) -> Table:
        """Every candidate: metric, drop, latency, speed-up over torch eager, size, MACs, front."""
        t = Table(title=f"auto: {self.workload} (budget {self.budget_pt:g} pt of val {self.metric}, objective {self.objective})")
        for col in ("candidate", f"val {self.metric}", "drop (pt)", f"test {self.metric}", "latency (ms)",
                    "x torch eager", "size (KiB)", "MACs", "front"):
            t.add_column(col, justify="left" if col == "candidate" else "right")
        for c in self.candidates:
            marks = "L" * c.front_latency + "S" * c.front_size
            style = "bold green" if c.label == self.best_label else ("" if c.within_budget else "dim")
            t.add_row(c.label, f"{c.val:.2%}", f"{c.drop_pt:.2f}", "-" if c.test is None else f"{c.test:.2%}",
                      f"{c.latency_ms:.3f}", f"{self.speedup_vs_torch(c):.1f}x", f"{c.bytes / 1024:.1f}",
                      f"{c.macs:,}", marks, style=style)
        return t

    def summary(self) -> list[str]:
        """A few lines: the best model, the budget verdict, and the fronts against singles."""
        b = self.best
        verdict = "within" if self.budget_met else "OUTSIDE (no candidate met it; this is the smallest drop)"
        lines = [f"best: {b.label} - val {self.metric} {b.val:.2%} ({-b.drop_pt:+.2f} pt, {verdict} the "
                 f"{self.budget_pt:g} pt budget), {b.latency_ms:.3f} ms on onnxruntime = "
                 f"{self.speedup_vs_torch(b):.1f}x faster than torch fp32 eager ({self.torch_eager_ms:.3f} ms), "
                 f"{b.bytes / 1024:.1f} KiB"]
        for tech, s in self.singles.items():
            lines.append(f"{tech} alone: best within budget {s['best'] or '(none)'}"
                         + (f" ({s['best_cost']:.4g})" if s["best"] else "")
                         + f"; {s['by_combination']}/{s['points']} of its points dominated by a combination, "
                         f"{s['covered']}/{s['points']} covered by the front")
        return lines


def finish_fronts(r: AutoResult) -> AutoResult:
    """Compute the fronts, the best candidate and the comparison with each technique alone."""
    lat = {c.label: (c.val, c.latency_ms) for c in r.candidates}
    size = {c.label: (c.val, float(c.bytes)) for c in r.candidates}
    r.front_latency, r.front_size = front(lat), front(size)
    for c in r.candidates:
        c.front_latency, c.front_size = c.label in r.front_latency, c.label in r.front_size
    points = lat if r.objective == "latency" else size
    floor = r.baseline_val - r.budget_pt / 100
    best = best_within(points, floor)
    r.budget_met = best is not None
    if best is None:
        best = max(r.candidates, key=lambda c: (c.val, -c.cost(r.objective))).label
    r.best_label = best
    front_pts = {n: points[n] for n in (r.front_latency if r.objective == "latency" else r.front_size)}
    combos = {c.label: points[c.label] for c in r.candidates if len(c.techniques) >= 2}
    for tech in sorted({t for c in r.candidates for t in c.techniques}):
        alone = {c.label: points[c.label] for c in r.candidates if c.techniques == [tech]}
        if not alone:
            continue
        cov, by_combo = covered(front_pts, alone), covered(combos, alone)
        b = best_within(alone, floor)
        r.singles[tech] = {"points": len(alone), "covered": sum(v is not None for v in cov.values()), "by": cov,
                           "by_combination": sum(v is not None for v in by_combo.values()),
                           "best": b, "best_cost": alone[b][1] if b else None}
    return r
