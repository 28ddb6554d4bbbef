"""Auto-compression, the "Must show" of issue 8: on resnet-mnist with a 1 pt budget, ``auto``
finds a model at least 5x faster in ONNX Runtime than float32 torch eager, within budget, and
its front dominates each single technique alone.

1. ``torchslim.recipe.search.auto("zoo:resnet-mnist", max_accuracy_drop=1.0, objective="latency")``:
   sensitivity, then prune levels 0.3/0.5, low-rank, int8 (latency-gated) and their
   combinations, each recovered by 6 epochs of distillation from the original (lr 2e-3),
   measured on ONNX Runtime.
2. Side by side (``harness.side_by_side``, interleaved rounds, medians, batch 1, 1 thread):
   the original in torch eager fp32, the original in ONNX Runtime fp32, the best found, and the
   fastest within-budget candidate of each technique alone.
3. Checks: speed-up of the best over torch eager; the budget on validation and on test
   accuracy; for each technique, whether every one of its points is dominated (or equalled) by
   the combined front and whether a combination beats its best within-budget latency.

Run: ``python -m benchmarks auto`` (use ``/work/tools/cpu bench`` on the shared machine);
``AUTO_BENCH_MODEL=zoo:lenet5-mnist`` and ``AUTO_BENCH_EPOCHS`` change the workload.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import torchslim.report  # noqa: F401 - registers the report writers
from benchmarks.harness import side_by_side
from torchslim import zoo
from torchslim.export.onnx import OrtModel
from torchslim.measure.latency import torch_threads
from torchslim.recipe.pareto import dominates
from torchslim.recipe.search import auto


def main(out_dir: Path) -> dict[str, Any]:
    model = os.environ.get("AUTO_BENCH_MODEL", "zoo:resnet-mnist")
    epochs = int(os.environ.get("AUTO_BENCH_EPOCHS", "6"))
    result = auto(model, max_accuracy_drop=1.0, objective="latency", prune_levels=(0.3, 0.5), recovery_epochs=epochs,
                  lr=2e-3, threads=1, out_dir=Path(out_dir) / "auto-resnet")  # training: all cores; timing: 1 thread
    best = result.best
    chosen = {"onnxruntime fp32": result.candidates[0], f"best: {best.label}": best}
    for tech, s in result.singles.items():
        if s["best"]:
            chosen.setdefault(f"{tech} alone: {s['best']}", next(c for c in result.candidates if c.label == s["best"]))
    name = model.removeprefix("zoo:")
    original, example = zoo.teacher(name).eval(), zoo.example_inputs(name)
    cases = {"torch fp32 eager": (lambda: original(example))}
    for label, c in chosen.items():
        cases[label] = OrtModel(c.onnx, threads=1).prepared(example)
    with torch.inference_mode(), torch_threads(1):
        res = side_by_side(cases, rounds=31, inner=100, warmup=3, baseline="torch fp32 eager",
                           title=f"{model}: batch 1, 1 thread (medians of 31 interleaved rounds x 100 calls)")
    res.print()
    speedup = res.ratio(f"best: {best.label}")
    floor = result.baseline_val - 0.01
    test_drop = (result.baseline.accuracy - best.test) * 100 if best.test is not None else None
    singles = {}
    for tech, s in result.singles.items():
        combos = [c for c in result.candidates if len(c.techniques) >= 2 and c.val >= floor]
        best_combo = min((c.latency_ms for c in combos), default=None)
        singles[tech] = {**{k: v for k, v in s.items() if k != "by"}, "best_combination_ms": best_combo,
                         "strictly_dominated": [n for n, by in s["by"].items() if by is not None and dominates(
                             _pt(result, by), _pt(result, n))]}
    out = {
        "best": best.label, "budget_met": result.budget_met, "val_drop_pt": best.drop_pt, "test_drop_pt": test_drop,
        "speedup_vs_torch_eager": speedup, "meets_5x": speedup >= 5.0,
        "latency_ms": {k: c.median_ms for k, c in res.cases.items()},
        "front_latency": result.front_latency, "front_size": result.front_size, "singles": singles,
        "candidates": [c.to_dict() for c in result.candidates], "search_seconds": result.seconds,
        "report": result.files.get("html"),
    }
    print(f"best {best.label}: {speedup:.2f}x faster than torch fp32 eager on ONNX Runtime; val drop "
          f"{best.drop_pt:.2f} pt, test drop {test_drop:.2f} pt; budget met: {result.budget_met}")
    for tech, s in singles.items():
        print(f"{tech} alone: {s['covered']}/{s['points']} points covered by the combined front, "
              f"{len(s['strictly_dominated'])} strictly dominated; best alone within budget {s['best']} "
              f"({s['best_cost']}) vs best combination {s['best_combination_ms']}")
    return out


def _pt(result: Any, label: str) -> tuple[float, float]:
    c = next(c for c in result.candidates if c.label == label)
    return c.val, c.latency_ms
