"""Accuracy-aware auto-compression on a measured Pareto front.

1. Measure the original: torch fp32 eager and ONNX Runtime fp32.
2. Per-layer sensitivity per technique (:mod:`torchslim.recipe.sensitivity`).
3. Candidates, each built from the original (:mod:`torchslim.recipe.candidates`), recovered by
   distillation from the original, exported and measured on ONNX Runtime: each technique
   alone (int8, low-rank, prune at rising levels), then combinations of the promising levels
   (prune + int8, prune + low-rank, prune + low-rank + int8). For the latency objective the
   combinations' int8 is gated layer by layer: a layer stays float where ONNX Runtime runs the
   model faster that way (narrow pruned layers often are).
4. All candidates are timed interleaved in one process (medians), with torch eager beside
   them, so their latencies compare.
5. The Pareto fronts of the validation metric against latency and against size; the best model
   is the one with the lowest objective within the budget. If none is within budget, the
   smallest drop is returned and the result says the budget was missed. The full table
   always comes back.

Example:
    >>> from torchslim.recipe.search import auto
    >>> result = auto("zoo:resnet-mnist", max_accuracy_drop=1.0, objective="latency")  # doctest: +SKIP
    >>> result.best.label, result.budget_met  # doctest: +SKIP
    ('prune 0.50', True)
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from torch import nn

from torchslim import zoo
from torchslim.core.errors import ConfigError, TorchslimError
from torchslim.core.io import atomic_write
from torchslim.export.onnx import OrtModel
from torchslim.measure.latency import Latency, torch_threads
from torchslim.recipe.artifact import save as save_slim
from torchslim.recipe.auto_result import AutoResult, Candidate, finish_fronts
from torchslim.recipe.candidates import Builder, Plan
from torchslim.recipe.measuring import Measured, interleaved_ms, measure_model
from torchslim.recipe.result import REPORT_FILES, write_reports
from torchslim.recipe.schema import DataSpec, MeasureSpec, model_spec
from torchslim.recipe.sensitivity import (
    int8_sensitivity,
    low_rank_sensitivity,
    prune_groups,
    prune_sensitivity,
)
from torchslim.recipe.sources import Workload, workload
from torchslim.recipe.stages import StageContext

TECHNIQUES = ("prune", "low_rank", "int8")


def _workload(model: nn.Module | str | Workload, data: Any, example_inputs: Any, weights: str | None) -> Workload:
    if isinstance(model, Workload):
        return model
    if isinstance(model, str):
        spec = model_spec(model, weights)
        shift = zoo.info(spec.zoo).recipe.shift if spec.zoo and spec.zoo in zoo.names() else 0
        d = DataSpec(name=data, shift=shift) if isinstance(data, str) else DataSpec(shift=shift, text="sentences" if spec.is_text else None)
        return workload(spec, d)
    if data is None or isinstance(data, str):
        raise ConfigError("auto(model=<nn.Module>) needs data= (a torchslim.data.DataSplits or loaders with .train/.val/.test)")
    x = example_inputs if example_inputs is not None else next(iter(data.test))[0][:1]
    return Workload(model.eval(), tuple(x) if isinstance(x, (tuple, list)) else (x,), data.train, data.val, data.test,
                    "top1", type(model).__name__)


def _plans(techniques: tuple[str, ...], levels: tuple[float, ...], low_rank: float, int8: str) -> dict[str, list[Plan]]:
    singles: list[Plan] = []
    if "int8" in techniques:
        singles.append(Plan(quant=int8))
    if "low_rank" in techniques:
        singles.append(Plan(low_rank=low_rank))
    return {"singles": singles, "levels": [Plan(prune=p) for p in sorted(levels)] if "prune" in techniques else []}


def _combos(level: float, techniques: tuple[str, ...], low_rank: float, int8: str) -> list[Plan]:
    out = []
    if "int8" in techniques:
        out.append(Plan(prune=level, quant=int8))
    if "low_rank" in techniques:
        out.append(Plan(prune=level, low_rank=low_rank))
        if "int8" in techniques:
            out.append(Plan(prune=level, low_rank=low_rank, quant=int8))
    return out


def auto(model: nn.Module | str | Workload, *, data: Any = None, example_inputs: Any = None, weights: str | None = None,
         max_accuracy_drop: float = 0.5, objective: Literal["latency", "size"] = "latency",
         techniques: tuple[str, ...] = TECHNIQUES, prune_levels: tuple[float, ...] = (0.3, 0.5, 0.7),
         low_rank_ratio: float = 0.5, recovery_epochs: int = 3, lr: float = 1e-3, threads: int = 1,
         out_dir: str | os.PathLike[str] = "out/auto", console: Console | None = None,
         latency_rounds: int = 15, reports: tuple[str, ...] = ("html", "markdown", "json")) -> AutoResult:
    """Search compressions of ``model`` for the best ``objective`` (ONNX Runtime latency at
    batch 1, or file size) within ``max_accuracy_drop`` points of the validation metric.

    ``model`` is ``"zoo:NAME"`` (its trained teacher and data set), ``"package.module:factory"``
    (with ``weights`` and ``data``, a bundled data set name), a ``Workload``, or an ``nn.Module``
    with ``data`` (a ``DataSplits``). Writes every candidate's ONNX file, the
    best model (``best.onnx``, ``best.slim``), ``result.json`` and the reports to ``out_dir``.
    """
    if objective not in ("latency", "size"):
        raise ConfigError(f"objective must be 'latency' or 'size', got {objective!r}")
    unknown = sorted(set(techniques) - set(TECHNIQUES))
    if unknown or not techniques:
        raise ConfigError(f"techniques: unknown {unknown}; known: {', '.join(TECHNIQUES)}")
    if max_accuracy_drop < 0 or recovery_epochs < 1 or not all(0 < p < 1 for p in prune_levels):
        raise ConfigError("need max_accuracy_drop >= 0, recovery_epochs >= 1 and prune levels in (0, 1)")
    console = console or Console()
    out = Path(out_dir)
    t0 = time.perf_counter()
    w = _workload(model, data, example_inputs, weights)
    spec = MeasureSpec(threads=threads, latency_seconds=0.0)
    console.rule(f"torchslim auto: {w.description} - objective {objective}, budget {max_accuracy_drop:g} pt")
    base_torch = measure_model(w.model, w, spec.model_copy(update={"latency_seconds": 0.5}), label="original torch fp32", runtime="torch")
    base = measure_model(w.model, w, spec, label="fp32 (onnxruntime)", onnx_path=out / "candidates" / "00-fp32.onnx")
    ctx = StageContext(original=_frozen(w.model), example_inputs=w.example_inputs, train=w.train, val=w.val,
                       threads=threads, metric=w.metric, progress=False)
    sens, groups = _sensitivity(w, techniques, low_rank_ratio, console)
    builder = Builder(w.model, ctx, groups, sens, max_accuracy_drop, recovery_epochs, lr)
    cands = [Candidate.of(Plan(), base, base.val, max_accuracy_drop, 0.0)]
    int8 = "int8-gated" if objective == "latency" else "int8"  # for latency: int8 only where it is faster
    cands += _search(builder, w, spec, base, max_accuracy_drop, _plans(techniques, prune_levels, low_rank_ratio, int8),
                     lambda level: _combos(level, techniques, low_rank_ratio, int8), out, console)
    eager_ms = _time_all(cands, w, threads, latency_rounds, console)
    batch = int(w.example_inputs[0].shape[0])
    base_torch.metrics.latency = _latency(eager_ms, latency_rounds, threads, "torch", batch)
    base.metrics.latency = _latency(cands[0].latency_ms, latency_rounds, threads, "onnxruntime", batch)
    result = finish_fronts(AutoResult(
        workload=w.description, metric=w.metric_name, budget_pt=max_accuracy_drop, objective=objective,
        threads=threads, baseline_torch=base_torch.metrics, baseline=base.metrics, baseline_val=base.val,
        torch_eager_ms=eager_ms,
        sensitivity=[r for rows in sens.values() for r in rows], candidates=cands, out_dir=str(out),
    ))
    return _write(result, cands, w, out, reports, console, time.perf_counter() - t0)


def _latency(ms: float, rounds: int, threads: int, runtime: str, batch: int) -> Latency:
    """A latency record from an interleaved median (one value per round; only the median is kept)."""
    return Latency(median_ms=ms, p90_ms=ms, mean_ms=ms, min_ms=ms, runs=rounds, threads=threads, runtime=runtime,
                   batch_size=batch)


def _search(builder: Builder, w: Workload, spec: MeasureSpec, base: Measured, budget: float,
            plans: dict[str, list[Plan]], combos: Callable[[float], list[Plan]], out: Path,
            console: Console) -> list[Candidate]:
    """Evaluate the single techniques, the prune levels (stopping once far outside the budget)
    and the combinations of the promising levels; a progress bar counts the candidates."""
    found: list[Candidate] = []
    upper = len(plans["singles"]) + 1 + len(plans["levels"]) * (1 + len(combos(0.5)))
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("candidates", total=upper)

        def evaluate(plan: Plan) -> Candidate | None:
            bar.update(task, description=f"candidate: {plan.label}")
            start = time.perf_counter()
            try:
                m = builder.build(plan)
                got = measure_model(m, w, spec, label=plan.label,
                                    onnx_path=out / "candidates" / f"{len(found) + 1:02d}-{_slug(plan.label)}.onnx")
            except TorchslimError as e:
                bar.console.print(f"[yellow]{plan.label}: failed ({e})[/yellow]")
                return None
            finally:
                bar.advance(task)
            c = Candidate.of(plan, got, base.val, budget, time.perf_counter() - start)
            c.model = m
            found.append(c)
            bar.console.print(f"  {c.label:32s} val {c.val:.2%} ({-c.drop_pt:+.2f} pt)  {c.bytes / 1024:8.1f} KiB  "
                              f"{c.macs:>12,} MACs  {c.seconds:5.1f} s")
            return c

        bar.console.print("candidates (each recovered by distillation from the original, measured on onnxruntime):")
        for plan in plans["singles"]:
            c = evaluate(plan)
            if c is not None and plan.quant.startswith("int8") and not c.within_budget:
                evaluate(Plan(quant="mixed"))
        promising = []
        for plan in plans["levels"]:
            c = evaluate(plan)
            if c is None:
                continue
            if c.drop_pt <= budget + 1.0:
                promising.append(plan.prune)
            if c.drop_pt > budget + 2.0:
                bar.console.print(f"  (stopping at prune {plan.prune:.2f}: {c.drop_pt:.2f} pt is far outside the budget)")
                break
        for level in promising:
            for plan in combos(level):
                evaluate(plan)
    return found


def _frozen(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in label).strip("-")[:48]


def _sensitivity(w: Workload, techniques: tuple[str, ...], ratio: float, console: Console) -> tuple[dict[str, Any], dict[str, list[str]]]:
    sens: dict[str, Any] = {}
    groups = prune_groups(w.model, w.example_inputs) if "prune" in techniques else {}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("per-layer sensitivity", total=None)

        def step(what: str) -> None:
            bar.update(task, description=f"sensitivity: {what}", advance=1)

        if "prune" in techniques:
            sens["prune"] = prune_sensitivity(w.model, w.example_inputs, w.val, metric=w.metric, step=step)
        if "low_rank" in techniques:
            sens["low_rank"] = low_rank_sensitivity(w.model, w.val, metric=w.metric, ratio=ratio, step=step)
        if "int8" in techniques:
            sens["int8"] = int8_sensitivity(w.model, w.train, w.val, metric=w.metric, step=step)
    for tech, rows in sens.items():
        shown = ", ".join(f"{r['layer']} {r['drop_pt']:.1f}" for r in rows if r["drop_pt"] is not None)
        console.print(f"sensitivity ({tech}, drop in pt with that layer alone compressed): {shown}")
    return sens, groups


def _time_all(cands: list[Candidate], w: Workload, threads: int, rounds: int, console: Console) -> float:
    """Time every candidate's ONNX file and torch eager fp32 interleaved; store the medians on
    the candidates and return torch eager's."""
    calls = {}
    for c in cands:
        calls[c.label] = OrtModel(c.onnx, threads=threads).prepared(*w.example_inputs)
    model = w.model.eval()
    calls["torch fp32 eager"] = lambda: model(*w.example_inputs)
    console.print(f"timing {len(calls)} models interleaved ({rounds} rounds, batch {w.example_inputs[0].shape[0]}, {threads} thread(s)) ...")
    with torch_threads(threads), torch.inference_mode():
        ms = interleaved_ms(calls, rounds=rounds)
    for c in cands:
        c.latency_ms = ms[c.label]
    return ms["torch fp32 eager"]


def _write(result: AutoResult, cands: list[Candidate], w: Workload, out: Path, reports: tuple[str, ...],
           console: Console, seconds: float) -> AutoResult:
    result.seconds = seconds
    best = result.best
    result.model = best.model if best.model is not None else copy.deepcopy(w.model)
    with atomic_write(out / "best.onnx") as tmp:
        tmp.write_bytes(Path(best.onnx).read_bytes())
    result.files["onnx"] = str(out / "best.onnx")
    try:
        save_slim(result.model, out / "best.slim")
        result.files["slim"] = str(out / "best.slim")
    except Exception as e:  # noqa: BLE001 - the search's work is done: say why, keep the ONNX file
        result.notes.append(f"no .slim artifact ({type(e).__name__}: {e})")
    written, notes = write_reports(result, out, tuple(f for f in reports if f in REPORT_FILES))
    result.files.update(written)
    result.notes += notes
    result.files["result"] = str(out / "result.json")
    with atomic_write(out / "result.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    console.print(result.table())
    for line in result.summary():
        console.print(line)
    return result
