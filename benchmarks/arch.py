"""Efficient architecture: LeNet-300-100 on MNIST-5k factorized to at most 1/3 of its
parameters (low rank, fc3 kept), fine-tuned briefly, and timed in torch and ONNX Runtime;
plus the MACs and parameter ratios of the small ResNet with depthwise-separable convolutions.

Run: ``python -m benchmarks arch``. Latency: ``harness.side_by_side``, 1 thread, batch 1 and
64, teacher and factorized model interleaved in each runtime. Accuracy: test split (1,000).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.harness import side_by_side
from torchslim import data, zoo
from torchslim.arch import LowRank, factorize, replace_depthwise
from torchslim.export import OrtModel, export_onnx
from torchslim.measure import evaluate, measure
from torchslim.train import fit

FT_EPOCHS = 3
CONFIG = LowRank(param_ratio=0.3, target={"exclude": ["fc3"]})


def _latency(models: dict[str, nn.Module], batch: int, workdir: Path, rounds: int) -> dict[str, Any]:
    x = torch.cat([zoo.example_inputs("lenet300-mnist", batch_size=1)] * batch)  # (B, 1, 28, 28)
    cases = {}
    for name, model in models.items():
        ort = OrtModel(export_onnx(model, workdir / f"{name}-b{batch}.onnx", x), threads=1)
        feeds = ort.feeds(x)

        def run_torch(model: nn.Module = model) -> None:
            with torch.inference_mode():
                model(x)

        cases[f"{name} torch"] = run_torch
        cases[f"{name} ort"] = lambda ort=ort, feeds=feeds: ort.run_numpy(feeds)
    res = side_by_side(cases, rounds=rounds, inner=max(1, 20 // batch), title=f"LeNet-300-100 low rank, batch {batch}, 1 thread")
    res.print()
    return res.to_dict()


def main(out_dir: Path, rounds: int = 31) -> dict[str, Any]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        teacher = zoo.teacher("lenet300-mnist", progress=False).eval()
        splits = data.load("mnist_5k", batch_size=64, seed=0)
        x = zoo.example_inputs("lenet300-mnist", batch_size=1)
        small = factorize(teacher, CONFIG).eval()
        before, after = measure(teacher, x, latency=False, memory=False), measure(small, x, latency=False, memory=False)
        result: dict[str, Any] = {
            "config": CONFIG.to_dict(),
            "replaced": [vars(r) for r in small.arch_report],
            "params": {"teacher": before.params_total, "factorized": after.params_total,
                       "ratio": after.params_total / before.params_total},
            "macs": {"teacher": before.macs, "factorized": after.macs, "ratio": after.macs / before.macs},
            "accuracy": {"teacher": evaluate(teacher, splits.test), "factorized_no_ft": evaluate(small, splits.test)},
        }
        train = data.load("mnist_5k", batch_size=64, seed=0, shift=1).train  # the teacher's augmentation
        fit(small, train, epochs=FT_EPOCHS, lr=1e-3, progress=False)
        result["accuracy"][f"factorized_ft{FT_EPOCHS}"] = evaluate(small.eval(), splits.test)
        with tempfile.TemporaryDirectory() as tmp:
            result["latency"] = {
                f"b{b}": _latency({"teacher": teacher, "factorized": small}, b, Path(tmp), rounds) for b in (1, 64)
            }
        resnet = zoo.model("resnet-mnist").eval()
        rx = zoo.example_inputs("resnet-mnist", batch_size=1)
        dw = replace_depthwise(resnet)
        r0, r1 = measure(resnet, rx, latency=False, memory=False), measure(dw, rx, latency=False, memory=False)
        result["resnet_depthwise"] = {"macs_ratio": r1.macs / r0.macs, "params_ratio": r1.params_total / r0.params_total,
                                      "replaced": len(dw.arch_report)}
        print(result["params"], result["macs"], result["accuracy"], result["resnet_depthwise"])
        return result
    finally:
        torch.set_num_threads(previous)
