"""The reports: one self-contained HTML file that opens and holds the plots (base64 PNGs, no
external resource), markdown with its figure files, and JSON that reads back."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from torchslim.measure import measure
from torchslim.recipe.auto_result import AutoResult, Candidate, finish_fronts
from torchslim.recipe.result import REPORT_WRITERS, RunResult, StageRecord
from torchslim.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith("data:"):
                self.external.append(v)
            if tag == "img" and k == "src" and v:
                self.images.append(v)


def _metrics(name: str, width: int, acc: float) -> object:
    m = measure(torch.nn.Linear(16, width), torch.zeros(1, 16), latency=True, memory=False, warmup=1, min_runs=5,
                min_seconds=0.0, name=name)
    m.accuracy = acc
    return m


@pytest.fixture(scope="module")
def run_result() -> RunResult:
    base, small = _metrics("base", 64, 0.98), _metrics("small", 16, 0.975)
    stages = [StageRecord(index=0, label="prune", type="structured_prune", family="prune", config={}, status="kept",
                          val=0.975, drop_pt=0.5, metrics=small.to_dict(), seconds=1.0),
              StageRecord(index=1, label="destroy", type="random_prune", family="prune", config={}, status="rolled_back",
                          val=0.2, drop_pt=78.0, metrics=small.to_dict(), seconds=1.0, note="rolled back it")]
    return RunResult(name="t", workload="w", metric="top1", budget_pt=1.0, runtime="onnxruntime", baseline_torch=base,
                     baseline=base, baseline_val=0.98, stages=stages, final=small, final_val=0.975, files={}, out_dir=".",
                     seconds=3.0, recipe={"name": "t", "stages": [{"type": "structured_prune"}]})


@pytest.fixture(scope="module")
def auto_result(run_result: RunResult) -> AutoResult:
    def cand(label: str, techniques: list[str], val: float, ms: float, size: int) -> Candidate:
        return Candidate(label=label, techniques=techniques, plan={}, val=val, test=val, drop_pt=(0.98 - val) * 100,
                         within_budget=(0.98 - val) * 100 <= 1.0, bytes=size, macs=10, params=10, onnx="x", latency_ms=ms)

    cands = [cand("fp32", [], 0.98, 0.3, 1000), cand("int8", ["int8"], 0.978, 0.35, 300),
             cand("prune 0.50", ["prune"], 0.975, 0.15, 500), cand("prune 0.50 + int8", ["prune", "int8"], 0.974, 0.2, 150)]
    sens = [{"technique": t, "layer": f"l{i}", "setting": 0.5, "metric": 0.9, "drop_pt": float(i), "saved": 0.5, "note": ""}
            for t in ("prune", "int8") for i in range(3)]
    return finish_fronts(AutoResult(workload="w", metric="top1", budget_pt=1.0, objective="latency", threads=1,
                                    baseline_torch=run_result.baseline_torch, baseline=run_result.baseline, baseline_val=0.98,
                                    torch_eager_ms=1.5, sensitivity=sens, candidates=cands, out_dir="."))


def _open(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.mark.parametrize("which", ["run", "auto"])
def test_html_report_opens_and_holds_the_plots(which: str, run_result: RunResult, auto_result: AutoResult, tmp_path: Path) -> None:
    result = run_result if which == "run" else auto_result
    files = write_report(result, str(tmp_path))
    assert set(files) == {"html", "markdown", "json"}
    page = _open(Path(files["html"]))
    assert "table" in page.tags and not page.external  # self-contained
    expected = 2 if which == "run" else 3  # before/after + stages | Pareto + sensitivity + before/after
    assert len(page.images) == expected
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    text = Path(files["html"]).read_text()
    assert ("Pareto fronts" in text) == (which == "auto")
    assert "rolled back" in text if which == "run" else "prune 0.50 + int8" in text


def test_markdown_and_json_reports(run_result: RunResult, auto_result: AutoResult, tmp_path: Path) -> None:
    files = write_report(auto_result, str(tmp_path))
    md = Path(files["markdown"]).read_text()
    assert "| candidate |" in md and "![Pareto fronts](figures/pareto.png)" in md
    for name in ("pareto.png", "sensitivity.png", "before_after.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == PNG
    back = AutoResult.from_dict(json.loads(Path(files["json"]).read_text()))
    assert back.best_label == auto_result.best_label == "prune 0.50"
    run_files = write_report(run_result, str(tmp_path / "run"))
    assert RunResult.from_dict(json.loads(Path(run_files["json"]).read_text())).to_dict() == run_result.to_dict()


def test_importing_the_report_registers_its_formats() -> None:
    assert {"html", "markdown", "json"} <= set(REPORT_WRITERS.names())
