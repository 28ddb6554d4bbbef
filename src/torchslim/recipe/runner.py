"""The pipeline runner: stages in order, measured after each one, guarded by the budget.

For each stage: apply it to a copy of the current model, measure the result on the runtime
(validation metric for the decision, test metric, size, MACs and latency for the report), then

- ``guard: true`` (default): if the validation metric dropped more than the budget against the
  original, the stage is **rolled back**, together with any unguarded stages just before it
  (``guard: false`` defers the check, e.g. pruning is judged after the fine-tuning that
  recovers it); the run says so and goes on with the next stage;
- ``guard: false``: kept for now, checked by the next guarded stage (the last stage always is).

Each finished stage is saved (weights as safetensors, a JSON record); a rerun of the same
recipe into the same folder continues after the last finished stage. At the end the final
model is written as ONNX (and as ``.slim`` when available), with the reports.

Example:
    >>> import torchslim as slim  # doctest: +SKIP
    >>> result = slim.run("recipes/lenet5_demo.yaml")  # doctest: +SKIP
    >>> result.budget_met, [s.status for s in result.stages]  # doctest: +SKIP
    (True, ['kept', 'kept', 'kept'])
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn

from torchslim.core.errors import TorchslimError
from torchslim.core.io import atomic_write
from torchslim.measure import Metrics, compare
from torchslim.recipe.artifact import save as save_slim
from torchslim.recipe.measuring import Measured, measure_model
from torchslim.recipe.result import RunResult, StageRecord, write_reports
from torchslim.recipe.schema import Recipe, load_recipe
from torchslim.recipe.sources import Workload, build_workload
from torchslim.recipe.stages import Stage, StageContext, load_state
from torchslim.recipe.state import StateDir, fingerprint


def _fingerprints(r: Recipe) -> list[str]:
    base = {k: v for k, v in r.to_dict().items() if k not in ("stages", "output", "name", "description")}
    return [fingerprint({"base": base, "stages": [s.to_dict() for s in r.stages[: i + 1]]}) for i in range(len(r.stages))]


def _baseline(w: Workload, r: Recipe, state: StateDir, fp: str, console: Console) -> tuple[Measured, Measured]:
    saved = state.load_json("baseline")
    if saved and saved.get("fingerprint") == fp:
        console.print("baseline: resumed from the saved measurement")
        return (Measured(Metrics.from_dict(saved["torch"]), saved["torch_val"]),
                Measured(Metrics.from_dict(saved["runtime"]), saved["runtime_val"]))
    console.print(f"measuring the original model (torch fp32 eager and {r.measure.runtime}) ...")
    torch_m = measure_model(w.model, w, r.measure, label="original torch fp32", runtime="torch")
    rt = measure_model(w.model, w, r.measure, label=f"original {r.measure.runtime}",
                       onnx_path=state.root / "baseline.onnx")
    state.save_json("baseline", {"fingerprint": fp, "torch": torch_m.metrics.to_dict(), "torch_val": torch_m.val,
                                 "runtime": rt.metrics.to_dict(), "runtime_val": rt.val})
    return torch_m, rt


class _Pipeline:
    """The mutable state of one run: the current model, the last accepted one, the records."""

    def __init__(self, r: Recipe, w: Workload, state: StateDir, console: Console, progress: bool) -> None:
        self.r, self.w, self.state, self.console = r, w, state, console
        self.budget = r.budget.max_accuracy_drop / 100
        self.fps = _fingerprints(r)
        original = copy.deepcopy(w.model).eval()
        for p in original.parameters():
            p.requires_grad_(False)
        self.ctx = StageContext(original=original, example_inputs=w.example_inputs, train=w.train, val=w.val,
                                threads=r.measure.threads, metric=w.metric, progress=progress)
        self.current: nn.Module = copy.deepcopy(w.model).eval()
        self.accepted: nn.Module = self.current
        self.records: list[StageRecord] = []
        self.group: list[int] = []  # unguarded stages since the last accepted model

    def start(self, base: Measured) -> None:
        self.ref_val = base.val
        self.accepted_measured = base
        self.accepted_onnx: Path | None = base.onnx

    def _close_group(self, i: int, keep: bool, measured: Measured | None, onnx: Path | None) -> None:
        if keep:
            self.accepted, self.accepted_measured = self.current, measured or self.accepted_measured
            self.accepted_onnx = onnx or self.accepted_onnx
            for j in self.group:
                if j != i and self.records[j].status == "unchecked":
                    self.records[j].status = "kept"
                    self.records[j].note = (self.records[j].note + f"; checked with stage {i + 1}").lstrip("; ")
        else:
            self.current = self.accepted
            for j in self.group:
                self.records[j].status = "rolled_back"
                if j == i:
                    continue
                self.records[j].note = (self.records[j].note + f"; rolled back with stage {i + 1}").lstrip("; ")
        self.group = []

    def restore(self, i: int, stage: Stage, rec: dict[str, Any]) -> bool:
        """Rebuild stage ``i`` from its saved state; False if that is not possible."""
        record = StageRecord.from_dict({k: v for k, v in rec.items() if k != "fingerprint_of"})
        record.resumed = True
        try:
            if record.status in ("kept", "unchecked"):
                model = stage.family.rebuild(self.current, stage.config, stage.options, self.ctx, record.rebuild)
                self.current = load_state(model, self.state.weights(i)).eval()
        except (TorchslimError, RuntimeError, ValueError, KeyError) as e:
            self.console.print(f"[yellow]stage {i + 1} ({stage.label}): saved state does not load ({e}); running it again[/yellow]")
            return False
        self.records.append(record)
        measured = Measured(record.measured, record.val, self.state.onnx(i)) if record.metrics else None
        if record.status == "unchecked":
            self.group.append(i)
        elif record.status in ("kept", "rolled_back"):
            self.group.append(i)
            self._close_group(i, record.status == "kept", measured, self.state.onnx(i))
        self.console.print(f"stage {i + 1}/{len(self.r.stages)} {stage.label}: {record.status.replace('_', ' ')} (resumed)")
        return True

    def run_stage(self, i: int, stage: Stage) -> None:
        n, fp = len(self.r.stages), self.fps[i]
        self.console.rule(f"stage {i + 1}/{n}: {stage.label} ({stage.type})")
        work = self.state.workdir(i, fp)
        self.ctx.workdir, self.ctx.notes = work, []
        self.ctx.budget = self.budget - (self.ref_val - self.accepted_measured.val)
        t0 = time.perf_counter()
        base = {"index": i, "label": stage.label, "type": stage.type, "family": stage.family.name,
                "config": stage.config.to_dict(), "fingerprint": fp}
        try:
            model = stage.family.apply(copy.deepcopy(self.current), stage.config, stage.options, self.ctx)
            measured = measure_model(model, self.w, self.r.measure, label=stage.label, onnx_path=work / "model.onnx")
        except TorchslimError as e:
            rec = StageRecord(**base, status="failed", val=None, drop_pt=None, metrics=None,
                              seconds=time.perf_counter() - t0, note=f"failed and skipped: {e}")
            self.records.append(rec)
            self.state.save(i, rec.to_dict(), None)
            self.console.print(f"[red]stage {i + 1} ({stage.label}) failed and was skipped:[/red] {e}")
            return
        drop = (self.ref_val - measured.val) * 100
        guarded = stage.options.guard or i == n - 1
        status = "unchecked"
        if guarded:
            status = "kept" if drop <= self.r.budget.max_accuracy_drop + 1e-9 else "rolled_back"
        note = "; ".join(self.ctx.notes)
        if status == "rolled_back":
            what = "stages " + ", ".join(str(j + 1) for j in [*self.group, i]) if self.group else "it"
            note = (note + "; " if note else "") + (f"val {self.w.metric_name} dropped {drop:.2f} pt > budget "
                                                    f"{self.r.budget.max_accuracy_drop:g} pt: rolled back {what}")
        rec = StageRecord(**base, status=status, val=measured.val, drop_pt=drop, metrics=measured.metrics.to_dict(),
                          seconds=time.perf_counter() - t0, note=note, rebuild=stage.family.record(model))
        self.records.append(rec)
        self.current = model
        self.group.append(i)
        if guarded:
            self._close_group(i, status == "kept", measured, None)
        self.state.save(i, rec.to_dict(), model if status != "rolled_back" else None, measured.onnx)
        if status == "kept":
            self.accepted_onnx = self.state.onnx(i)
        shutil.rmtree(work, ignore_errors=True)
        colour = {"kept": "green", "rolled_back": "red", "unchecked": "yellow"}[status]
        self.console.print(f"stage {i + 1} {stage.label}: [{colour}]{status.replace('_', ' ')}[/{colour}] - val "
                           f"{self.w.metric_name} {measured.val:.2%} ({-drop:+.2f} pt), "
                           f"{_ms(measured.metrics)}, {measured.metrics.bytes / 1024:.1f} KiB" + (f" - {note}" if note else ""))


def _ms(m: Metrics) -> str:
    return "-" if m.latency is None else f"{m.latency.median_ms:.3f} ms"


def _out_dir(r: Recipe, out_dir: str | os.PathLike[str] | None) -> Path:
    if out_dir is not None:
        return Path(out_dir)
    return r.resolve(r.output.dir) if r.output.dir else Path("out") / r.name


def run(recipe: str | os.PathLike[str] | Recipe, *, out_dir: str | os.PathLike[str] | None = None,
        overrides: dict[str, Any] | None = None, resume: bool = True, console: Console | None = None,
        progress: bool = True) -> RunResult:
    """Run a recipe (a YAML path or a :class:`Recipe`) and return its :class:`RunResult`.

    The recipe is validated completely before any work (a broken one raises
    :class:`~torchslim.recipe.yamlio.RecipeError` naming each key and line). ``overrides`` set
    dotted keys (``{"stages.1.epochs": 1}``). With ``resume`` (default) finished stages saved
    in ``out_dir/state`` by an earlier run of the same recipe are reused; ``resume=False``
    starts over.

    Example:
        >>> from torchslim.recipe import run
        >>> result = run("recipes/lenet5_demo.yaml", out_dir="/tmp/demo")  # doctest: +SKIP
    """
    r = load_recipe(recipe, overrides)
    console = console or Console()
    out = _out_dir(r, out_dir)
    state = StateDir(out / "state")
    if not resume:
        state.clear()
    t0 = time.perf_counter()
    w = build_workload(r)
    console.rule(f"torchslim run: {r.name} - {w.description}")
    p = _Pipeline(r, w, state, console, progress)
    d = r.to_dict()
    base_torch, base = _baseline(w, r, state, fingerprint([d["model"], d.get("data"), d.get("measure"), d.get("budget")]), console)
    p.start(base)
    resuming = resume
    for i, stage in enumerate(r.stages):
        rec = state.record(i, p.fps[i]) if resuming else None
        if rec is not None and p.restore(i, stage, rec):
            continue
        if resuming:
            state.drop_from(i)
            resuming = False
        p.run_stage(i, stage)
    return _finish(r, w, p, base_torch, base, out, console, time.perf_counter() - t0)


def _finish(r: Recipe, w: Workload, p: _Pipeline, base_torch: Measured, base: Measured, out: Path,
            console: Console, seconds: float) -> RunResult:
    final = p.accepted_measured
    files: dict[str, str] = {}
    notes: list[str] = []
    artifact_bytes = None
    model = p.accepted
    if r.output.onnx and r.measure.runtime == "onnxruntime" and p.accepted_onnx is not None:
        with atomic_write(out / "model.onnx") as tmp:
            shutil.copyfile(p.accepted_onnx, tmp)
        files["onnx"] = str(out / "model.onnx")
    elif r.output.onnx:
        files["onnx"] = str(measure_model(model, w, r.measure.model_copy(update={"latency_seconds": 0}),
                                          label="final", onnx_path=out / "model.onnx", runtime="onnxruntime").onnx)
    if r.output.slim:
        try:
            artifact_bytes = save_slim(model, out / "model.slim").file_bytes
            files["slim"] = str(out / "model.slim")
        except Exception as e:  # noqa: BLE001 - the run's work is done: say why, keep the ONNX file
            notes.append(f"no .slim artifact ({type(e).__name__}: {e})")
    result = RunResult(name=r.name, workload=w.description, metric=w.metric_name, budget_pt=r.budget.max_accuracy_drop,
                       runtime=r.measure.runtime, baseline_torch=base_torch.metrics, baseline=base.metrics,
                       baseline_val=base.val, stages=p.records, final=final.metrics, final_val=final.val, files=files,
                       out_dir=str(out), seconds=seconds, recipe=r.to_dict(), notes=notes, artifact_bytes=artifact_bytes,
                       model=model)
    written, more = write_reports(result, out, r.output.report)
    files.update(written)
    notes += more
    files["result"] = str(out / "result.json")
    with atomic_write(out / "result.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    _print_summary(result, console)
    return result


def _print_summary(result: RunResult, console: Console) -> None:
    console.print(result.stage_table())
    final_name = f"final {result.runtime}"
    compare({"original torch fp32": result.baseline_torch, f"original {result.runtime}": result.baseline,
             final_name: result.final}, console=console)
    verdict = "within" if result.budget_met else "OUTSIDE"
    console.print(f"final: val {result.metric} {result.final_val:.2%} ({-result.final_drop_pt:+.2f} pt, {verdict} the "
                  f"{result.budget_pt:g} pt budget); wrote " + ", ".join(result.files.values()))
    if result.artifact_bytes is not None:
        console.print(f"model.slim: {result.artifact_bytes / 1024:.1f} KiB ({result.baseline_torch.bytes / result.artifact_bytes:.1f}x "
                      f"smaller than the original's float32 safetensors)")
    for note in result.notes:
        console.print(f"note: {note}")
