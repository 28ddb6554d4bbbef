"""Run configurations side by side in one process, interleaved, and report medians and ratios.

Interleaving (round r runs every case once, in an order rotated by r) spreads slow drifts of
the machine (frequency, a neighbour's load) over all cases instead of penalising whichever ran
last. Only medians are quoted; p10/p90 show the spread.

Example:
    >>> from benchmarks.harness import side_by_side
    >>> res = side_by_side({"a": lambda: sum(range(100)), "b": lambda: sum(range(200))}, rounds=3)
    >>> sorted(res.cases)
    ['a', 'b']
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from torchslim.export import OrtModel, export_onnx


@dataclass
class CaseResult:
    name: str
    times_ms: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    def quantile(self, q: float) -> float:
        xs = sorted(self.times_ms)
        return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


@dataclass
class Results:
    title: str
    cases: dict[str, CaseResult]
    baseline: str
    meta: dict[str, Any] = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        """How many times faster ``name`` is than the baseline (baseline median / case median)."""
        return self.cases[self.baseline].median_ms / self.cases[name].median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "baseline": self.baseline,
            "meta": self.meta,
            "cases": {
                n: {**asdict(c), "median_ms": c.median_ms, "p10_ms": c.quantile(0.1),
                    "p90_ms": c.quantile(0.9), "speedup_vs_baseline": self.ratio(n)}
                for n, c in self.cases.items()
            },
        }

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        table = Table(title=self.title)
        for col in ("case", "median ms", "p10 ms", "p90 ms", f"speed-up vs {self.baseline}"):
            table.add_column(col, justify="left" if col == "case" else "right")
        extra_cols = sorted({k for c in self.cases.values() for k in c.extra})
        for col in extra_cols:
            table.add_column(col, justify="right")
        for n, c in self.cases.items():
            table.add_row(
                n, f"{c.median_ms:.3f}", f"{c.quantile(0.1):.3f}", f"{c.quantile(0.9):.3f}",
                f"{self.ratio(n):.2f}x", *[_fmt(c.extra.get(k)) for k in extra_cols],
            )
        console.print(table)

    def write_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def side_by_side(
    cases: Mapping[str, Callable[[], Any]],
    *,
    rounds: int = 21,
    inner: int = 1,
    warmup: int = 2,
    baseline: str | None = None,
    title: str = "benchmark",
) -> Results:
    """Time every case ``rounds`` times, interleaved; each sample is the mean of ``inner`` calls."""
    names = list(cases)
    for _ in range(warmup):
        for n in names:
            cases[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            fn = cases[n]
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[n].append((time.perf_counter() - t0) * 1e3 / inner)
    return Results(
        title=title,
        cases={n: CaseResult(n, times[n]) for n in names},
        baseline=baseline or names[0],
    )


def torch_and_ort(models: Mapping[str, nn.Module], inputs: tuple[torch.Tensor, ...], workdir: Path, *,
                  rounds: int, inner: int, threads: int = 1, title: str = "") -> dict[str, CaseResult]:
    """Every model in torch eager (``"<name> torch"``) and exported to ONNX Runtime with its inputs
    bound once (``"<name> ort"``). Each runtime's cases are interleaved among themselves, one
    runtime after the other: torch calls between ORT samples slow the ORT cases unequally, the
    larger model more (mobilenet-mnist against it with three layers removed: 1.59-1.67x mixed,
    1.39-1.42x alone, three runs), and a deployed model runs on its own."""
    torch.set_num_threads(threads)
    per_runtime: dict[str, dict[str, Callable[[], Any]]] = {"torch": {}, "ort": {}}
    for k, m in models.items():
        m = m.eval()

        def run(m: nn.Module = m) -> None:
            with torch.inference_mode():
                m(*inputs)
        per_runtime["torch"][f"{k} torch"] = run
        path = workdir / (re.sub(r"\W", "_", k) + f"-b{inputs[0].shape[0]}.onnx")
        example = inputs if len(inputs) > 1 else inputs[0]
        per_runtime["ort"][f"{k} ort"] = OrtModel(export_onnx(m, path, example), threads=threads).prepared(*inputs)
    out: dict[str, CaseResult] = {}
    for rt, cases in per_runtime.items():
        res = side_by_side(cases, rounds=rounds, inner=inner,
                           title=f"{title or f'batch {inputs[0].shape[0]}, {threads} thread(s)'}, {rt}")
        res.print()
        out.update(res.cases)
    return out
