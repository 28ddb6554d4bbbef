"""Quantization side by side: torchslim int8 vs ONNX Runtime's quantize_static / quantize_dynamic
and torch.ao FX static int8, on LeNet-300-100, LeNet-5, resnet-mnist (accuracy in the runtime
on the MNIST-5k test split, latency batch 1 / 1 thread, interleaved medians), and
all-MiniLM-L6-v2 (mean cosine of sentence embeddings to fp32, batch 32 x seq 128, 2 threads).

Run: ``python -m benchmarks quant`` (set ``QUANT_BENCH_MODELS=lenet5-mnist,minilm`` to choose).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from torch import nn

from benchmarks.harness import side_by_side
from torchslim import data, zoo
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.measure import evaluate
from torchslim.quant import Int8Dynamic, Int8Static, optimized_op_counts, quantize
from torchslim.quant.report import report_of

MNIST_MODELS = ("lenet300-mnist", "lenet5-mnist", "resnet-mnist")


class _Reader(CalibrationDataReader):
    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.it = iter([{name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.it, None)


def _torch_ao_fx(model: nn.Module, calib: list[torch.Tensor], example: torch.Tensor) -> nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import get_default_qconfig_mapping
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

            prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), (example,))
            with torch.no_grad():
                for x in calib:
                    prepared(x)
            return convert_fx(prepared)
    except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
        print(f"torch.ao FX failed: {e}")
        return None


def bench_mnist(name: str, d: Path) -> dict[str, Any]:
    torch.set_num_threads(1)
    model = zoo.teacher(name, progress=False).eval()
    splits = data.load("mnist_5k", batch_size=100, seed=0)
    calib = [x for x, _ in splits.train][:5]  # 500 samples for every calibrating method
    x1 = torch.zeros(1, 1, 28, 28)
    fp32_path = export_onnx(model, d / f"{name}.onnx", x1)
    out: dict[str, Any] = {"model": name}
    t0 = time.perf_counter()
    q = quantize(model, Int8Static(calibration_samples=500), calibration=calib)
    out["torchslim_calibrate_s"] = time.perf_counter() - t0
    ts_path = export_onnx(q, d / f"{name}.ts.onnx", x1)
    q_rr = quantize(model, Int8Static(calibration_samples=500, reduce_range=True), calibration=calib)
    ts_rr_path = export_onnx(q_rr, d / f"{name}.ts_rr.onnx", x1)
    t0 = time.perf_counter()
    ort_static = d / f"{name}.ort_static.onnx"
    quantize_static(str(fp32_path), str(ort_static), _Reader("input", [c.numpy() for c in calib]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    out["ort_static_calibrate_s"] = time.perf_counter() - t0
    ort_dyn = d / f"{name}.ort_dynamic.onnx"
    quantize_dynamic(str(fp32_path), str(ort_dyn), weight_type=QuantType.QInt8)
    ao = _torch_ao_fx(model, calib, x1)
    sessions = {"ort fp32": OrtModel(fp32_path), "torchslim int8": OrtModel(ts_path),
                "torchslim int8 reduce_range": OrtModel(ts_rr_path), "ort quantize_static": OrtModel(ort_static),
                "ort quantize_dynamic": OrtModel(ort_dyn)}
    acc = {"torch fp32": evaluate(model, splits.test), "torchslim sim": evaluate(q, splits.test)}
    acc.update({k: evaluate(s, splits.test) for k, s in sessions.items()})
    if ao is not None:
        acc["torch.ao fx static"] = evaluate(ao, splits.test)
    out["accuracy"] = acc
    out["torchslim_ops"] = optimized_op_counts(ts_path)
    feeds = {k: s.feeds(x1) for k, s in sessions.items()}
    cases = {k: (lambda s=s, f=feeds[k]: s.run_numpy(f)) for k, s in sessions.items()}
    cases["torch fp32"] = lambda: model(x1)
    if ao is not None:
        cases["torch.ao fx static"] = lambda: ao(x1)
    with torch.inference_mode():
        res = side_by_side(cases, rounds=21, inner=50, baseline="ort fp32", title=f"{name} b1 1 thread")
    res.print()
    out["latency_ms"] = {k: c.median_ms for k, c in res.cases.items()}
    gated = quantize(model, Int8Static(calibration_samples=500), calibration=calib, gate="latency", example_inputs=x1)
    out["gate"] = report_of(gated).to_dict()
    print(name, "accuracy", {k: round(v, 4) for k, v in acc.items()})
    print(name, "gate", out["gate"]["table"], out["gate"]["kept_float"])
    return out


SUBJECTS = ["The cat", "A young engineer", "Our team", "The old bridge", "My neighbour", "The stock market",
            "A small startup", "The orchestra", "The river", "This recipe"]
VERBS = ["quietly crossed", "announced", "repaired", "painted", "ignored", "celebrated", "measured",
         "described", "rebuilt", "sold"]
OBJECTS = ["the wooden fence at dawn.", "a new quantization library for phones.", "the broken violin.",
           "three hundred tickets before noon.", "the results of the election.", "an enormous chocolate cake.",
           "the flooded basement after the storm.", "a poem about distant mountains.",
           "the quarterly revenue figures.", "its plans to expand into Asia."]


def sentences(n: int = 320) -> list[str]:
    """``n`` varied sentences from templates (subject x verb x object, rotated)."""
    out = []
    for i in range(n):
        s, v, o = SUBJECTS[i % 10], VERBS[(i // 10) % 10], OBJECTS[(i * 7 + i // 100) % 10]
        out.append(f"{s} {v} {o}" + (" Nobody expected it." if i % 3 == 0 else ""))
    return out


class _Encoder(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.m(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, 384)


def _embed(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()  # (B, L, 1)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1), dim=-1)  # (B, 384)


def bench_minilm(d: Path) -> dict[str, Any]:
    torch.set_num_threads(2)
    model, tok = zoo.minilm()
    enc = _Encoder(model).eval()
    texts = sentences()
    batches = [tok(texts[i:i + 32], padding="max_length", truncation=True, max_length=128, return_tensors="pt")
               for i in range(0, len(texts), 32)]
    pairs = [(b["input_ids"], b["attention_mask"]) for b in batches]
    fp32_path = export_onnx(enc, d / "minilm.onnx", pairs[0])
    variants = {
        "torchslim dynamic": Int8Dynamic(target={"include": ["type:Linear"], "exclude": ["m.pooler"]}),
        "torchslim dynamic (FFN out float)": Int8Dynamic(target={"include": ["type:Linear"],
                                                                 "exclude": ["m.pooler", r"re:m\.encoder\.layer\.\d+\.output\.dense"]}),
    }
    paths = {"ort fp32": fp32_path}
    for k, cfg in variants.items():
        paths[k] = export_onnx(quantize(enc, cfg), d / f"minilm_{len(paths)}.onnx", pairs[0])
    ort_dyn = d / "minilm.ort_dynamic.onnx"
    quantize_dynamic(str(fp32_path), str(ort_dyn), weight_type=QuantType.QInt8)
    paths["ort quantize_dynamic"] = ort_dyn
    sessions = {k: OrtModel(p, threads=2) for k, p in paths.items()}
    ref = [_embed(sessions["ort fp32"](i, m), m) for i, m in pairs]
    cos = {}
    for k, s in sessions.items():
        embs = [_embed(s(i, m), m) for i, m in pairs]
        cos[k] = float(torch.cat([(a * b).sum(1) for a, b in zip(embs, ref, strict=True)]).mean())
    feeds = {k: s.feeds(*pairs[0]) for k, s in sessions.items()}
    cases = {k: (lambda s=s, f=feeds[k]: s.run_numpy(f)) for k, s in sessions.items()}
    res = side_by_side(cases, rounds=7, inner=1, baseline="ort fp32", title="MiniLM-L6 b32 s128 2 threads")
    res.print()
    calib = pairs[:4]  # 128 sentences
    t0 = time.perf_counter()
    quantize(enc, Int8Static(calibration_samples=128), calibration=calib)
    ts_cal = time.perf_counter() - t0
    t0 = time.perf_counter()
    names = [i.name for i in ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"]).get_inputs()]
    reader = _Reader(names[0], [])
    reader.it = iter([{names[0]: i.numpy(), names[1]: m.numpy()} for i, m in calib])
    quantize_static(str(fp32_path), str(d / "minilm.ort_static.onnx"), reader, quant_format=QuantFormat.QDQ, per_channel=True)
    ort_cal = time.perf_counter() - t0
    out = {"cosine": cos, "latency_ms": {k: c.median_ms for k, c in res.cases.items()},
           "calibrate_128_s": {"torchslim Int8Static": ts_cal, "ort quantize_static": ort_cal}}
    print("minilm", out)
    return out


def main(out_dir: Path) -> dict[str, Any]:
    chosen = os.environ.get("QUANT_BENCH_MODELS", ",".join((*MNIST_MODELS, "minilm"))).split(",")
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in chosen:
            try:
                result[name] = bench_minilm(d) if name == "minilm" else bench_mnist(name, d)
            except Exception as e:  # noqa: BLE001 - report and continue with the other models
                print(f"{name} failed: {type(e).__name__}: {e}")
                result[name] = {"error": f"{type(e).__name__}: {e}"}
    return result
