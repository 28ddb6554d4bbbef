"""What a quantizer did: the layers it quantized, what it kept in float and why.

Example:
    >>> import torch
    >>> from torchslim.quant.report import QuantReport, attach_report, report_of
    >>> m = torch.nn.Linear(2, 2)
    >>> attach_report(m, QuantReport(config="int8_static", layers=["0"]))
    >>> report_of(m).layers
    ['0']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn


@dataclass
class QuantReport:
    """``layers``: quantized layer names; ``kept_float``: name -> reason; ``table``: rows of
    measurements (gate latencies, sensitivity) as dicts; ``notes``: free text; ``variant``: what
    the latency gate picked (``"float"``, ``"int8"``, a variant's name, or a per-group mixture)."""

    config: str
    layers: list[str] = field(default_factory=list)
    kept_float: dict[str, str] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"{self.config}: {len(self.layers)} layer(s) quantized"]
        lines += [f"  latency gate picked: {self.variant}"] if self.variant else []
        lines += [f"  kept float: {k} ({v})" for k, v in self.kept_float.items()]
        lines += [f"  {row}" for row in self.table]
        lines += [f"  note: {n}" for n in self.notes if n]
        return "\n".join(lines)


def attach_report(model: nn.Module, report: QuantReport) -> None:
    """Store ``report`` on the model (attribute ``torchslim_quant_report``)."""
    object.__setattr__(model, "torchslim_quant_report", report)


def report_of(model: nn.Module) -> QuantReport | None:
    """The report a quantizer attached, or None."""
    return getattr(model, "torchslim_quant_report", None)
