"""Efficient architecture, the three "Must show" figures of issue 6.

1. ``lenet``: LeNet-300-100 on MNIST-5k factorized to at most 1/3 of its parameters (fc3
   kept), with one uniform ratio and with ranks chosen by measured sensitivity (on the
   validation split), at 0.3 and at an aggressive 0.06; accuracy on the test split before and
   after a short fine-tune; latency in torch and ONNX Runtime, batch 1 and 64.
2. ``resnet``: the small ResNet with every k x k conv depthwise-separable: MACs, parameters,
   latency in torch and ONNX Runtime (batch 1, BatchNorm folded in both), and test accuracy
   after distillation from the original (``torchslim.distill``, logit KD) against fine-tuning
   on labels alone, both for the same epochs from the same start.
3. ``minilm``: all-MiniLM-L6-v2 with its 12 FFN layers factorized: mean cosine of sentence
   embeddings (mean pooling) to the original over 256 sentences against the parameter saving,
   for plain SVD, whitened SVD (64 other sentences as calibration) and whitened SVD with
   sensitivity-allocated ranks; a curve (``arch_minilm_ffn.png`` in ``out_dir``) and torch
   latency at batch 1 x 128 tokens.

Run: ``python -m benchmarks arch``; ``ARCH_BENCH_PARTS=lenet,resnet`` picks parts. Latency:
``harness.side_by_side`` (interleaved rounds, medians), 1 thread, runs in one process.
The sentences are docstrings of Python's standard library (real English text that ships with
the interpreter), split into sentences of 40-200 characters.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.harness import side_by_side, torch_and_ort
from torchslim import data, zoo
from torchslim.arch import LowRank, factorize, fold_batchnorm, replace_depthwise
from torchslim.distill import KD, distill
from torchslim.measure import evaluate, measure
from torchslim.train import fit

FT_EPOCHS = 3  # LeNet fine-tune
KD_EPOCHS, KD_T, KD_ALPHA = 12, 4.0, 0.5  # ResNet distillation (alpha 0.9 and T 1, 2 tried: 0.976-0.977)
LENET_TARGET = {"exclude": ["fc3"]}
FFN = {"include": [r"re:m\.encoder\.layer\.\d+\.(intermediate|output)\.dense"]}
FFN_RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _latency(models: dict[str, nn.Module], x: torch.Tensor, workdir: Path, rounds: int, title: str) -> dict[str, Any]:
    """Torch and ORT cases for every model (:func:`benchmarks.harness.torch_and_ort`); medians."""
    cases = torch_and_ort(models, (x,), workdir, rounds=rounds, inner=max(1, 20 // len(x)), title=title)
    return {n: {"median_ms": c.median_ms, "p10_ms": c.quantile(0.1), "p90_ms": c.quantile(0.9)} for n, c in cases.items()}


def bench_lenet(workdir: Path, rounds: int) -> dict[str, Any]:
    teacher = zoo.teacher("lenet300-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=64, seed=0)
    train = data.load("mnist_5k", batch_size=64, seed=0, shift=1).train  # the teacher's augmentation
    x = zoo.example_inputs("lenet300-mnist", batch_size=1)
    base = measure(teacher, x, latency=False, memory=False)
    out: dict[str, Any] = {"teacher": {"params": base.params_total, "macs": base.macs,
                                       "accuracy": evaluate(teacher, splits.test)}}
    models = {}
    table = None
    for ratio in (0.3, 0.06):
        uniform = factorize(teacher, LowRank(param_ratio=ratio, target=LENET_TARGET))
        cfg = LowRank(rank_selection="sensitivity", param_ratio=ratio, target=LENET_TARGET)
        chosen = factorize(teacher, cfg, data=splits.val, sensitivity=table, progress=False)
        table = chosen.arch_sensitivity  # measured once, reused for the next target
        for kind, model in (("uniform", uniform), ("sensitivity", chosen)):
            m = measure(model, x, latency=False, memory=False)
            row = {"ranks": {r.name: r.rank for r in model.arch_report}, "params": m.params_total,
                   "params_ratio": m.params_total / base.params_total, "macs_ratio": m.macs / base.macs,
                   "accuracy_no_ft": evaluate(model, splits.test)}
            fit(model, train, epochs=FT_EPOCHS, lr=1e-3, progress=False)
            row[f"accuracy_ft{FT_EPOCHS}"] = evaluate(model.eval(), splits.test)
            out[f"{kind}_{ratio}"] = row
            models[f"{kind}_{ratio}"] = model
    out["sensitivity_table"] = [r.as_dict() for r in table or []]
    lat_models = {"teacher": teacher, "uniform_0.3": models["uniform_0.3"], "sensitivity_0.3": models["sensitivity_0.3"]}
    out["latency"] = {f"b{b}": _latency(lat_models, torch.cat([x] * b), workdir, rounds,
                                        f"LeNet-300-100 low rank, batch {b}, 1 thread") for b in (1, 64)}
    return out


def bench_resnet(workdir: Path, rounds: int) -> dict[str, Any]:
    teacher = zoo.teacher("resnet-mnist", progress=False).eval()
    splits = data.load("mnist_5k", batch_size=64, seed=0)
    train = data.load("mnist_5k", batch_size=64, seed=0, shift=2).train  # the teacher's augmentation
    x = zoo.example_inputs("resnet-mnist", batch_size=1)
    student = replace_depthwise(teacher)
    m0, m1 = measure(teacher, x, latency=False, memory=False), measure(student, x, latency=False, memory=False)
    out: dict[str, Any] = {
        "replaced": len(student.arch_report), "params": [m0.params_total, m1.params_total], "macs": [m0.macs, m1.macs],
        "macs_ratio": m1.macs / m0.macs, "params_ratio": m1.params_total / m0.params_total,
        "accuracy": {"teacher": evaluate(teacher, splits.test), "depthwise_init": evaluate(student, splits.test)},
    }
    labels_only = replace_depthwise(teacher)
    fit(labels_only, train, epochs=KD_EPOCHS, lr=3e-3, progress=False)
    out["accuracy"][f"labels_{KD_EPOCHS}ep"] = evaluate(labels_only.eval(), splits.test)
    student = distill(student, teacher, train, KD(temperature=KD_T, alpha=KD_ALPHA), epochs=KD_EPOCHS, lr=3e-3,
                      progress=False)
    out["accuracy"][f"kd_{KD_EPOCHS}ep"] = evaluate(student, splits.test)
    lat = {"teacher": fold_batchnorm(teacher), "depthwise": fold_batchnorm(student.eval())}
    out["latency_b1"] = _latency(lat, x, workdir, rounds, "ResNet-8 depthwise-separable, batch 1, 1 thread, BN folded")
    for rt in ("torch", "ort"):
        out[f"speedup_{rt}"] = out["latency_b1"][f"teacher {rt}"]["median_ms"] / out["latency_b1"][f"depthwise {rt}"]["median_ms"]
    return out


# --- MiniLM ----------------------------------------------------------------------------------

DOC_MODULES = ("argparse", "asyncio", "calendar", "collections", "csv", "datetime", "decimal", "difflib", "email",
               "fractions", "ftplib", "functools", "gzip", "heapq", "hashlib", "http.client", "imaplib", "inspect",
               "itertools", "json", "logging", "mailbox", "pathlib", "pickle", "random", "re", "shutil", "smtplib",
               "socket", "sqlite3", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap",
               "threading", "timeit", "turtle", "unittest", "urllib.request", "uuid", "wave", "zipfile", "zoneinfo")


def sentences(n: int = 320, per_module: int = 12) -> list[str]:
    """Up to ``per_module`` prose sentences from the docstrings of each of ``DOC_MODULES``."""
    seen: set[str] = set()
    out: list[str] = []
    for name in DOC_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        docs = [inspect.getdoc(mod) or ""] + [
            inspect.getdoc(obj) or "" for attr, obj in sorted(vars(mod).items())
            if not attr.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", "").startswith(name)]
        taken = 0
        for s in (s for doc in docs for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split()))):
            prose = sum(c.isalpha() or c == " " for c in s) >= 0.9 * len(s)
            if 40 <= len(s) <= 200 and s[0].isupper() and s.endswith(".") and prose and ">>>" not in s and s not in seen:
                seen.add(s)
                out.append(s)
                taken += 1
                if taken >= per_module:
                    break
    return out[:n]


class Embedder(nn.Module):
    """Sentence embedding as sentence-transformers computes it: mean pooling, L2 normalised."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.m(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, 384)
        w = mask.unsqueeze(-1).to(h.dtype)  # (B, L, 1)
        return F.normalize((h * w).sum(1) / w.sum(1).clamp_min(1), dim=-1)  # (B, 384)


def _cosine_metric(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, int]:
    return float((out * ref).sum()), int(out.shape[0])


def _cosines(model: nn.Module, batches: list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]) -> dict[str, float]:
    with torch.inference_mode():
        cos = torch.cat([(model(*inp) * ref).sum(-1) for inp, ref in batches])
    return {"mean": cos.mean().item(), "p5": cos.quantile(0.05).item(), "min": cos.min().item()}


def _plot(points: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, rows in points.items():
        ax.plot([100 * r["saved_model"] for r in rows], [r["cosine"]["mean"] for r in rows], "o-", label=label)
    ax.set_xlabel("parameters saved, % of all-MiniLM-L6-v2 (FFN layers factorized)")
    ax.set_ylabel("mean cosine to the original embedding")
    ax.set_title("all-MiniLM-L6-v2: FFN low rank, 256 sentences")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bench_minilm(out_dir: Path, rounds: int) -> dict[str, Any]:
    model, tok = zoo.minilm()
    enc = Embedder(model).eval()
    texts = sentences()

    def batches(lines: list[str]) -> list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        out = []
        for i in range(0, len(lines), 32):
            t = tok(lines[i:i + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
            inp = (t["input_ids"], t["attention_mask"])
            with torch.inference_mode():
                out.append((inp, enc(*inp)))
        return out

    evals, calib = batches(texts[:256]), batches(texts[256:320])  # calibration: 64 other sentences
    total, ffn = _params(enc), sum(m.weight.numel() for n, m in enc.named_modules() if re.fullmatch(FFN["include"][0][3:], n))
    res: dict[str, Any] = {"sentences": {"eval": 256, "calibration": len(texts) - 256}, "params": total, "ffn_weights": ffn}
    curves: dict[str, list[dict[str, Any]]] = {"svd": [], "whitened svd": [], "whitened + sensitivity": []}
    kept: dict[str, nn.Module] = {}
    table = None
    for ratio in FFN_RATIOS:
        runs = {"svd": (LowRank(param_ratio=ratio, target=FFN), {}),
                "whitened svd": (LowRank(method="whitened", param_ratio=ratio, target=FFN), {"calibration": calib}),
                "whitened + sensitivity": (LowRank(method="whitened", rank_selection="sensitivity", param_ratio=ratio,
                                                   target=FFN),
                                           {"calibration": calib, "data": calib, "metric": _cosine_metric,
                                            "sensitivity": table, "progress": False})}
        for label, (cfg, kw) in runs.items():
            small = factorize(enc, cfg, **kw)
            table = getattr(small, "arch_sensitivity", table)
            saved = total - _params(small)
            curves[label].append({"ratio": ratio, "saved_model": saved / total, "saved_ffn": saved / ffn,
                                  "cosine": _cosines(small, evals), "ranks": [r.rank for r in small.arch_report]})
            if ratio == 0.5:
                kept[label] = small
            print(f"minilm {label} ratio {ratio}: saved {saved / total:.3f} of params, cosine {curves[label][-1]['cosine']}")
    res["curves"] = curves
    _plot(curves, out_dir / "arch_minilm_ffn.png")
    res["plot"] = str(out_dir / "arch_minilm_ffn.png")
    t = tok(texts[:1], padding="max_length", max_length=128, return_tensors="pt")
    x = (t["input_ids"], t["attention_mask"])
    cases = {"original": enc, "whitened svd 0.5": kept["whitened svd"]}

    def runner(m: nn.Module) -> Any:
        def run() -> None:
            with torch.inference_mode():
                m(*x)
        return run

    lat = side_by_side({k: runner(m) for k, m in cases.items()}, rounds=rounds, title="MiniLM b1 x 128 tokens, torch, 1 thread")
    lat.print()
    res["latency_torch_b1_s128"] = {n: c.median_ms for n, c in lat.cases.items()}
    return res


def main(out_dir: Path, rounds: int = 31) -> dict[str, Any]:
    parts = os.environ.get("ARCH_BENCH_PARTS", "lenet,resnet,minilm").split(",")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    result: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "lenet" in parts:
                result["lenet300"] = bench_lenet(Path(tmp), rounds)
                print({k: v for k, v in result["lenet300"].items() if k not in ("latency", "sensitivity_table")})
            if "resnet" in parts:
                result["resnet_depthwise"] = bench_resnet(Path(tmp), rounds)
                print({k: v for k, v in result["resnet_depthwise"].items() if k != "latency_b1"})
            if "minilm" in parts:
                result["minilm_ffn"] = bench_minilm(Path(out_dir), rounds=11)
        return result
    finally:
        torch.set_num_threads(previous)
