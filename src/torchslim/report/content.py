"""What a report says, independent of its format: a title, summary lines, tables and figures,
built from a run (:class:`~torchslim.recipe.RunResult`) or a search (``AutoResult``).

Example:
    >>> from torchslim.report.content import Table
    >>> Table("t", ["a", "b"], [["1", "2"]]).headers
    ['a', 'b']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from torchslim.measure import Metrics
from torchslim.measure.compare import QUANTITIES, ratio_text
from torchslim.recipe.auto_result import AutoResult
from torchslim.recipe.result import RunResult
from torchslim.report.figures import before_after, pareto_plot, sensitivity_plot, stages_plot


@dataclass
class Table:
    """A caption, column headers and rows of already formatted cells."""

    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    """A caption, the PNG bytes and a file name for formats that keep figures beside them."""

    caption: str
    png: bytes
    filename: str


@dataclass
class Doc:
    """Everything a report shows."""

    title: str
    summary: list[str]
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    appendix: str = ""


def compare_table(models: Mapping[str, Metrics], caption: str) -> Table:
    """Before/after: one row per quantity, a value and a ratio column per model."""
    names = list(models)
    headers = ["metric", names[0]] + [h for n in names[1:] for h in (n, f"x {names[0]}")]
    rows = []
    for label, get, fmt in QUANTITIES:
        values = [get(models[n]) for n in names]
        if all(v is None for v in values):
            continue
        cells = [label, fmt(values[0])]
        for v in values[1:]:
            cells += [fmt(v), ratio_text(label, v, values[0])]
        rows.append(cells)
    return Table(caption, headers, rows)


def _ms(m: Metrics | None) -> str:
    return "-" if m is None or m.latency is None else f"{m.latency.median_ms:.3f}"


def run_doc(r: RunResult) -> Doc:
    """The report of a recipe run."""
    verdict = "within" if r.budget_met else "outside"
    summary = [
        f"Workload: {r.workload}; measured on {r.runtime}, {r.baseline.threads} thread(s), batch {r.baseline.batch_size}.",
        f"Final model: validation {r.metric} {r.final_val:.2%} ({-r.final_drop_pt:+.2f} pt against the original, "
        f"{verdict} the {r.budget_pt:g} pt budget); test {r.metric} {r.final.accuracy:.2%}." if r.final.accuracy is not None else "",
        f"Stages kept: {sum(s.status == 'kept' for s in r.stages)} of {len(r.stages)}; rolled back: "
        f"{', '.join(s.label for s in r.stages if s.status == 'rolled_back') or 'none'}.",
        f"The .slim artifact: {r.artifact_bytes / 1024:.1f} KiB, {r.baseline_torch.bytes / r.artifact_bytes:.1f}x smaller than the "
        f"original's float32 safetensors." if r.artifact_bytes else "",
        f"Run time {r.seconds:.0f} s.",
    ]
    stages = Table("Stages (validation metric decides; a stage that breaks the budget is rolled back)",
                   ["#", "stage", "type", "status", f"val {r.metric}", "drop (pt)", "latency (ms)", "size (KiB)", "MACs", "s", "note"],
                   [["-", "original", "-", "-", f"{r.baseline_val:.2%}", "0.00", _ms(r.baseline), f"{r.baseline.bytes / 1024:.1f}",
                     f"{r.baseline.macs:,}", "-", ""]])
    for s in r.stages:
        m = s.measured
        stages.rows.append([str(s.index + 1), s.label, s.type, s.status.replace("_", " ") + (" (resumed)" if s.resumed else ""),
                            "-" if s.val is None else f"{s.val:.2%}", "-" if s.drop_pt is None else f"{s.drop_pt:.2f}",
                            _ms(m), "-" if m is None else f"{m.bytes / 1024:.1f}", "-" if m is None else f"{m.macs:,}",
                            f"{s.seconds:.1f}", s.note])
    models = {"original torch fp32": r.baseline_torch, f"original {r.runtime}": r.baseline, f"final {r.runtime}": r.final}
    figures = [Figure("Before and after", before_after(models), "before_after.png"),
               Figure("After each stage", stages_plot(r), "stages.png")]
    return Doc(f"torchslim run: {r.name}", [s for s in summary if s],
               [compare_table(models, "Before / after (test accuracy)"), stages], figures,
               notes=list(r.notes), appendix=yaml.safe_dump(r.recipe, sort_keys=False))


def auto_doc(r: AutoResult) -> Doc:
    """The report of a search."""
    b = r.best
    summary = [f"Workload: {r.workload}; objective {r.objective}; budget {r.budget_pt:g} pt of validation {r.metric}; "
               f"{len(r.candidates)} candidates measured on onnxruntime ({r.threads} thread(s), batch 1).", *r.summary(),
               f"Search time {r.seconds:.0f} s."]
    cands = Table("Every candidate (latency: interleaved medians in one process; front: L latency, S size)",
                  ["candidate", f"val {r.metric}", "drop (pt)", f"test {r.metric}", "latency (ms)", "x torch eager",
                   "size (KiB)", "MACs", "params", "front", "within budget", "chosen"], [])
    for c in r.candidates:
        cands.rows.append([c.label, f"{c.val:.2%}", f"{c.drop_pt:.2f}",
                           "-" if c.test is None else f"{c.test:.2%}", f"{c.latency_ms:.4f}", f"{r.speedup_vs_torch(c):.1f}x",
                           f"{c.bytes / 1024:.1f}", f"{c.macs:,}", f"{c.params:,}", "L" * c.front_latency + "S" * c.front_size,
                           "yes" if c.within_budget else "no", "best" if c.label == r.best_label else ""])
    sens = Table("Per-layer sensitivity (that layer alone compressed, no recovery)",
                 ["technique", "layer", "setting", f"{r.metric}", "drop (pt)", "saved", "note"],
                 [[row["technique"], row["layer"], str(row["setting"]), "-" if row["metric"] is None else f"{row['metric']:.2%}",
                   "-" if row["drop_pt"] is None else f"{row['drop_pt']:.2f}", f"{row.get('saved', 0):.0%}", row.get("note", "")]
                  for row in r.sensitivity])
    singles = Table("Each technique alone against the combined search",
                    ["technique", "points", "dominated by a combination", "covered by the front", "best alone within budget"],
                    [[t, str(s["points"]), str(s["by_combination"]), str(s["covered"]), s["best"] or "(none)"]
                     for t, s in r.singles.items()])
    best_m = {"original torch fp32": r.baseline_torch, "original onnxruntime fp32": r.baseline,
              f"best: {b.label}": _best_metrics(r)}
    figures = [Figure("Pareto fronts", pareto_plot(r), "pareto.png"),
               Figure("Per-layer sensitivity", sensitivity_plot(r.sensitivity), "sensitivity.png") if r.sensitivity else None,
               Figure("Before and after", before_after(best_m), "before_after.png")]
    return Doc(f"torchslim auto: {r.workload}", summary, [compare_table(best_m, "Before / after (test accuracy)"), cands, singles, sens],
               [f for f in figures if f is not None], notes=list(r.notes))


def _best_metrics(r: AutoResult) -> Metrics:
    """The best candidate as a Metrics record (latency: the interleaved median)."""
    c, base = r.best, r.baseline
    lat = None
    if base.latency is not None:
        lat = type(base.latency)(**{**base.latency.__dict__, "median_ms": c.latency_ms, "p90_ms": c.latency_ms,
                                    "mean_ms": c.latency_ms, "min_ms": c.latency_ms})
    return Metrics(name=c.label, runtime="onnxruntime", threads=r.threads, batch_size=base.batch_size,
                   params_total=c.params, params_nonzero=c.params, bytes=c.bytes, macs=c.macs, latency=lat,
                   accuracy=c.test)


def doc_of(result: Any) -> Doc:
    """The document of a run or a search result."""
    if isinstance(result, AutoResult):
        return auto_doc(result)
    if isinstance(result, RunResult):
        return run_doc(result)
    raise TypeError(f"no report for {type(result).__name__}")
