"""Structured pruning, torchslim against Torch-Pruning 1.6.1, side by side in one process.

Run: ``python -m benchmarks prune``. For resnet-mnist and mobilenet-mnist (trained teachers):
both tools prune to the same MACs target (half the MACs, bisection on each tool's ratio),
both fine-tune with the same budget (``train.fit``, Adam 1e-3, cosine, ``epochs``), then
MACs ratio, batch-1 latency speed-up (torch 1 thread and ONNX Runtime 1 thread, interleaved
medians) and test accuracy. MiniLM (if installed): 25% of heads and FFN neurons, embedding
cosine to the original and speed-up. Coverage: which models each tool prunes without error.
"""

from __future__ import annotations

import copy
import importlib
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.harness import side_by_side
from torchslim import data, zoo
from torchslim.export import OrtModel, export_onnx
from torchslim.measure import evaluate
from torchslim.measure.macs import count_macs
from torchslim.train import fit

# The package, not the `prune` function that `torchslim` re-exports under the same name.
P = importlib.import_module("torchslim.prune")


def _macs(m: nn.Module, x: torch.Tensor) -> int:
    return count_macs(m, (x,))[0]


def tp_prune(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    """Torch-Pruning's default call: L2 group magnitude, classifier ignored."""
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    last = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][-1:]
    pruner = tp.pruner.MetaPruner(m, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=last)
    pruner.step()
    return m


def tp_to_target(model: nn.Module, x: torch.Tensor, keep: float) -> tuple[nn.Module, float]:
    """Bisection on Torch-Pruning's ratio until MACs <= keep * original."""
    goal, lo, hi = keep * _macs(model, x), 0.0, 0.9
    best = None
    for _ in range(10):
        mid = (lo + hi) / 2
        m = tp_prune(model, x, mid)
        if _macs(m, x) <= goal:
            hi, best = mid, m
        else:
            lo = mid
    return best or tp_prune(model, x, hi), hi


def latency(models: dict[str, nn.Module], x: torch.Tensor, workdir: Path, rounds: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    cases: dict[str, Any] = {}
    for k, m in models.items():
        m = m.eval()

        def run(m: nn.Module = m) -> None:
            with torch.inference_mode():
                m(x)
        cases[f"{k} torch"] = run
        ort = OrtModel(export_onnx(m, workdir / f"{k}.onnx", x), threads=1)
        feeds = ort.feeds(x)
        cases[f"{k} ort"] = lambda ort=ort, feeds=feeds: ort.run_numpy(feeds)
    res = side_by_side(cases, rounds=rounds, inner=20, title="batch 1, 1 thread")
    res.print()
    return {n: c.median_ms for n, c in res.cases.items()}


def bench_model(name: str, epochs: int, rounds: int, workdir: Path) -> dict[str, Any]:
    teacher = zoo.teacher(name).eval()
    x = zoo.example_inputs(name, batch_size=1)
    splits = data.load(zoo.info(name).dataset, batch_size=64, seed=0, shift=2)
    base_macs = _macs(teacher, x)
    ours = P.prune(teacher, P.StructuredPrune(target_macs=0.5, importance="l2"), example_inputs=x)
    theirs, ratio = tp_to_target(teacher, x, 0.5)
    out: dict[str, Any] = {"unpruned": {"macs": base_macs, "acc": evaluate(teacher, splits.test)}}
    for label, m in (("torchslim", ours), ("torch-pruning", theirs)):
        acc0 = evaluate(m, splits.test)
        fit(m, splits.train, epochs=epochs, lr=1e-3, progress=False)
        out[label] = {"macs": _macs(m, x), "macs_ratio": base_macs / _macs(m, x), "acc_before_ft": acc0,
                      "acc": evaluate(m, splits.test), "params": sum(p.numel() for p in m.parameters())}
    out["torch-pruning"]["ratio"] = ratio
    lat = latency({"unpruned": teacher, "torchslim": ours, "torch-pruning": theirs}, x, workdir, rounds)
    for label in ("torchslim", "torch-pruning"):
        for rt in ("torch", "ort"):
            out[label][f"speedup_{rt}"] = lat[f"unpruned {rt}"] / lat[f"{label} {rt}"]
    out["latency_ms"] = lat
    print(name, {k: {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()} for k, v in out.items() if k != "latency_ms"})
    return out


def bench_minilm(rounds: int) -> dict[str, Any]:
    try:
        model, tok = zoo.minilm()
    except ImportError as e:
        return {"skipped": str(e)}
    sents = ["Structured pruning removes whole attention heads.", "The cat sat on the mat.",
             "ONNX Runtime runs the pruned model.", "A sentence embedding model maps text to vectors."] * 2
    b = tok(sents, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    x = (b["input_ids"], b["attention_mask"])
    small = P.prune(model, P.StructuredPrune(sparsity=0.25), example_inputs=x)

    def embed(m: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = m(ids, mask).last_hidden_state  # (B, T, 384)
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, 384) mean pooling

    with torch.inference_mode():
        cos = F.cosine_similarity(embed(model, *x), embed(small, *x)).mean().item()
    torch.set_num_threads(2)
    x1 = (x[0][:1], x[1][:1])

    def run(m: nn.Module) -> Any:
        def f() -> None:
            with torch.inference_mode():
                m(*x1)
        return f
    res = side_by_side({"unpruned": run(model), "torchslim 25%": run(small)}, rounds=rounds, inner=5,
                       title="MiniLM batch 1 x seq 64, 2 threads")
    res.print()
    out = {"cosine": cos, "speedup_torch": res.ratio("torchslim 25%"),
           "params": (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in small.parameters()))}
    print("minilm", out)
    return out


def coverage() -> dict[str, dict[str, str]]:
    """Prune 50% with each tool's default call; 'ok' if the output shape is kept."""
    rows: dict[str, dict[str, str]] = {}
    models: dict[str, tuple[nn.Module, Any]] = {n: (zoo.model(n).eval(), zoo.example_inputs(n, 2)) for n in zoo.names()}
    models["nn.TransformerEncoderLayer"] = (nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval(), torch.randn(2, 5, 32))
    try:
        mini, tok = zoo.minilm()
        b = tok(["a test sentence"], return_tensors="pt")
        models["minilm (BERT blocks)"] = (mini, (b["input_ids"], b["attention_mask"]))
    except ImportError:
        pass
    for name, (m, x) in models.items():
        rows[name] = {}
        xs = x if isinstance(x, tuple) else (x,)
        with torch.no_grad():
            want = P.structured.report.leaves_shape(m(*xs))
        for tool in ("torchslim", "torch-pruning"):
            try:
                if tool == "torchslim":
                    s = P.prune(m, P.StructuredPrune(sparsity=0.5), example_inputs=x)
                else:
                    s = tp_prune(m, x if not isinstance(x, tuple) else list(x), 0.5)
                with torch.no_grad():
                    got = P.structured.report.leaves_shape(s(*xs))
                shrunk = sum(p.numel() for p in s.parameters()) < sum(p.numel() for p in m.parameters())
                rows[name][tool] = "ok" if got == want and shrunk else ("no change" if got == want else f"shape {got}")
            except Exception as e:  # noqa: BLE001 - the table reports it
                rows[name][tool] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"
        print(f"{name:28s} torchslim: {rows[name]['torchslim']:12s} torch-pruning: {rows[name]['torch-pruning']}")
    return rows


def main(out_dir: Path, epochs: int = 3, rounds: int = 21) -> dict[str, Any]:
    previous = torch.get_num_threads()
    results: dict[str, Any] = {}
    try:
        results["coverage"] = coverage()
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("resnet-mnist", "mobilenet-mnist"):
                results[name] = bench_model(name, epochs, rounds, Path(tmp))
        results["minilm"] = bench_minilm(rounds)
    finally:
        torch.set_num_threads(previous)
    return results
