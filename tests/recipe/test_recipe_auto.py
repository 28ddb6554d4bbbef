"""Auto-compression: per-layer sensitivity per technique, single techniques and combinations
measured on ONNX Runtime, Pareto fronts that no candidate dominates, the best model within the
budget (or, when none is, the smallest drop, flagged), the full table and the files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import torchslim.report  # noqa: F401 - registers the report writers (as `import torchslim` does)
from torchslim.recipe.auto_result import AutoResult, Candidate, finish_fronts
from torchslim.recipe.pareto import dominates
from torchslim.recipe.schema import DataSpec, ModelSpec
from torchslim.recipe.search import auto
from torchslim.recipe.sources import workload


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> AutoResult:
    w = workload(ModelSpec(zoo="lenet300-mnist"), DataSpec(train_samples=512, val_samples=200, test_samples=200))
    out = tmp_path_factory.mktemp("auto")
    return auto(w, max_accuracy_drop=2.0, objective="size", prune_levels=(0.3,), recovery_epochs=1, lr=2e-3,
                latency_rounds=3, out_dir=out)


def test_sensitivity_is_measured_per_layer_for_each_technique(searched: AutoResult) -> None:
    by_tech = {t: [r for r in searched.sensitivity if r["technique"] == t] for t in ("prune", "low_rank", "int8")}
    assert [r["layer"] for r in by_tech["int8"]] == ["fc1", "fc2", "fc3"]
    assert {r["layer"] for r in by_tech["prune"]} == {"fc1:channels", "fc2:channels"}
    assert by_tech["low_rank"] and all(r["drop_pt"] is not None for r in by_tech["low_rank"])


def test_singles_and_combinations_are_all_measured(searched: AutoResult) -> None:
    kinds = {tuple(c.techniques) for c in searched.candidates}
    assert {(), ("int8",), ("low_rank",), ("prune",)} <= kinds
    assert {("prune", "int8"), ("prune", "low_rank"), ("prune", "low_rank", "int8")} <= kinds
    for c in searched.candidates:
        assert Path(c.onnx).is_file() and c.latency_ms > 0 and not math.isnan(c.latency_ms)
        assert c.within_budget == (c.drop_pt <= 2.0 + 1e-9)
    int8 = next(c for c in searched.candidates if c.techniques == ["int8"])
    assert int8.bytes < 0.35 * searched.candidates[0].bytes


def test_fronts_are_non_dominated_and_the_best_is_within_budget(searched: AutoResult) -> None:
    for front, cost in ((searched.front_latency, lambda c: c.latency_ms), (searched.front_size, lambda c: c.bytes)):
        pts = {c.label: (c.val, cost(c)) for c in searched.candidates}
        assert front
        for name in front:
            assert not any(dominates(p, pts[name]) for other, p in pts.items() if other != name)
    best = searched.best
    assert searched.budget_met and best.within_budget
    feasible = [c for c in searched.candidates if c.within_budget]
    assert best.bytes == min(c.bytes for c in feasible)
    assert searched.model is not None
    x = torch.zeros(2, 1, 28, 28)
    assert searched.model(x).shape == (2, 10)


def test_files_and_the_full_table_are_written(searched: AutoResult) -> None:
    out = Path(searched.out_dir)
    for name in ("best.onnx", "result.json", "report.html", "report.md"):
        assert (out / name).is_file(), name
    back = AutoResult.from_dict(json.loads((out / "result.json").read_text()))
    assert [c.label for c in back.candidates] == [c.label for c in searched.candidates]
    assert back.best_label == searched.best_label and back.singles.keys() == searched.singles.keys()


def _cand(label: str, techniques: list[str], val: float, ms: float, size: int) -> Candidate:
    return Candidate(label=label, techniques=techniques, plan={}, val=val, test=val, drop_pt=(0.99 - val) * 100,
                     within_budget=(0.99 - val) * 100 <= 0.5, bytes=size, macs=1, params=1, onnx="x", latency_ms=ms)


def test_budget_missed_still_returns_the_best_found_and_says_so(searched: AutoResult) -> None:
    r = AutoResult(workload="w", metric="top1", budget_pt=0.5, objective="latency", threads=1,
                   baseline_torch=searched.baseline_torch, baseline=searched.baseline, baseline_val=0.99,
                   torch_eager_ms=1.0, sensitivity=[], out_dir=".", candidates=[
                       _cand("prune 0.50", ["prune"], 0.95, 0.5, 100), _cand("int8", ["int8"], 0.97, 0.9, 50),
                       _cand("prune 0.50 + int8", ["prune", "int8"], 0.96, 0.4, 30)])
    finish_fronts(r)
    assert not r.budget_met and r.best_label == "int8"  # the smallest drop
    assert r.front_latency == ["prune 0.50 + int8", "int8"]
    assert r.singles["prune"]["by_combination"] == 1  # prune alone is dominated by prune + int8
    assert any("OUTSIDE" in line for line in r.summary())
