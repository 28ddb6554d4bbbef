"""What a run hands back: a record per stage, the before/after measurements, the files written;
plus the hook that report writers plug into (``torchslim.report`` registers html, markdown and
json), so the runner never imports the report package.

Example:
    >>> from torchslim.recipe.result import StageRecord
    >>> r = StageRecord(index=0, label="prune", type="structured_prune", family="prune", config={},
    ...                 status="kept", val=0.98, drop_pt=0.3, metrics=None, seconds=1.0)
    >>> StageRecord.from_dict(r.to_dict()) == r
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from torch import nn

from torchslim.core.errors import UnknownNameError
from torchslim.core.registry import Registry
from torchslim.measure import Metrics

STATUSES = ("kept", "rolled_back", "unchecked", "failed")
REPORT_FILES = {"html": "report.html", "markdown": "report.md", "json": "report.json"}

# format -> writer(result, path) -> path; registered by torchslim.report.
ReportWriter = Callable[[Any, Path], Path]
REPORT_WRITERS: Registry[ReportWriter] = Registry("report format")


def register_report_writer(fmt: str, writer: ReportWriter) -> None:
    """Let runs write ``fmt`` (``html``, ``markdown``, ``json``) with ``writer(result, path)``."""
    REPORT_WRITERS.add(fmt, writer)


def write_reports(result: Any, out_dir: Path, formats: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """Write each format with its registered writer: ``({fmt: path}, [notes])``."""
    files, notes = {}, []
    for fmt in formats:
        try:
            writer = REPORT_WRITERS.get(fmt)
        except UnknownNameError:
            notes.append(f"no {fmt} report writer registered (import torchslim.report)")
            continue
        files[fmt] = str(writer(result, out_dir / REPORT_FILES[fmt]))
    return files, notes


def _metrics(d: dict[str, Any] | None) -> Metrics | None:
    return Metrics.from_dict(d) if d else None


@dataclass
class StageRecord:
    """One stage of a run: what it was, what became of it (``status``), what it measured."""

    index: int
    label: str
    type: str
    family: str
    config: dict[str, Any]
    status: str
    val: float | None
    drop_pt: float | None
    metrics: dict[str, Any] | None
    seconds: float
    note: str = ""
    resumed: bool = False
    rebuild: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def measured(self) -> Metrics | None:
        """The stage's measurement as a :class:`Metrics`."""
        return _metrics(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageRecord:
        """The record back from :meth:`to_dict`."""
        return cls(**d)


@dataclass
class RunResult:
    """The outcome of :func:`torchslim.recipe.run`: the model it ends with (``model``; not
    serialized), the baseline (torch fp32 eager and the runtime), each stage, the final model's
    measurement and whether the budget holds."""

    name: str
    workload: str
    metric: str
    budget_pt: float
    runtime: str
    baseline_torch: Metrics
    baseline: Metrics
    baseline_val: float
    stages: list[StageRecord]
    final: Metrics
    final_val: float
    files: dict[str, str]
    out_dir: str
    seconds: float
    recipe: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    artifact_bytes: int | None = None
    model: nn.Module | None = field(default=None, compare=False, repr=False)
    kind: str = "run"

    @property
    def final_drop_pt(self) -> float:
        """Validation metric drop of the final model against the original, in points."""
        return (self.baseline_val - self.final_val) * 100

    @property
    def budget_met(self) -> bool:
        """True if the final model is within the budget (always, unless every stage failed it)."""
        return self.final_drop_pt <= self.budget_pt + 1e-9

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the model is left out)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        for k in ("baseline_torch", "baseline", "final"):
            d[k] = d[k].to_dict()
        d["stages"] = [s.to_dict() for s in self.stages]
        d["final_drop_pt"], d["budget_met"] = self.final_drop_pt, self.budget_met
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        """The result back from :meth:`to_dict` (without the model)."""
        d = {k: v for k, v in d.items() if k not in ("final_drop_pt", "budget_met")}
        for k in ("baseline_torch", "baseline", "final"):
            d[k] = Metrics.from_dict(d[k])
        d["stages"] = [StageRecord.from_dict(s) for s in d["stages"]]
        return cls(**d)

    def stage_table(self) -> Table:
        """One row per stage: status, validation metric and drop, latency, size, MACs, time."""
        t = Table(title=f"{self.name}: stages (budget {self.budget_pt:g} pt of {self.metric}, on {self.runtime})")
        for col in ("#", "stage", "status", f"val {self.metric}", "drop (pt)", "latency (ms)", "size (KiB)", "MACs", "s"):
            t.add_column(col, justify="left" if col in ("stage", "status") else "right")
        t.add_row("-", "original", "-", f"{self.baseline_val:.2%}", "0.00", _lat(self.baseline), _kib(self.baseline),
                  f"{self.baseline.macs:,}", "-")
        for s in self.stages:
            m = s.measured
            status = s.status.replace("_", " ") + (" (resumed)" if s.resumed else "")
            t.add_row(str(s.index + 1), s.label, status, "-" if s.val is None else f"{s.val:.2%}",
                      "-" if s.drop_pt is None else f"{s.drop_pt:.2f}", _lat(m), _kib(m),
                      "-" if m is None else f"{m.macs:,}", f"{s.seconds:.1f}")
        return t


def _lat(m: Metrics | None) -> str:
    return "-" if m is None or m.latency is None else f"{m.latency.median_ms:.3f}"


def _kib(m: Metrics | None) -> str:
    return "-" if m is None else f"{m.bytes / 1024:.1f}"
