"""Float32 torch eager against float32 ONNX Runtime on every zoo model, side by side.

Run: ``python -m benchmarks runtimes``. Prints median latency per model and runtime and the
ratio, at batch 1 / 1 thread (the edge-device case) and batch 32 / 2 threads; writes JSON to
``benchmarks/results/runtimes.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchmarks.harness import side_by_side
from torchslim import zoo
from torchslim.export import OrtModel, export_onnx
from torchslim.measure import measure


def bench_model(name: str, batch: int, threads: int, workdir: Path, rounds: int) -> dict[str, object]:
    model = zoo.model(name).eval()
    x = torch.cat([zoo.example_inputs(name, batch_size=1)] * batch)  # (B, ...)
    onnx_path = export_onnx(model, workdir / f"{name}.onnx", x)
    ort_model = OrtModel(onnx_path, threads=threads)
    torch.set_num_threads(threads)

    def run_torch() -> None:
        with torch.inference_mode():
            model(x)

    res = side_by_side(
        {"torch eager": run_torch, "onnxruntime": ort_model.prepared(x)},
        rounds=rounds, inner=max(1, 20 // batch),
        title=f"{name}  batch {batch}, {threads} thread(s)",
    )
    macs = measure(model, x, latency=False, memory=False).macs
    res.cases["torch eager"].extra["MACs"] = macs
    res.print()
    return res.to_dict()


def main(out_dir: Path, rounds: int = 31) -> dict[str, object]:
    results: dict[str, object] = {}
    previous = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in zoo.names():
                for batch, threads in ((1, 1), (32, 2)):
                    results[f"{name}/b{batch}/t{threads}"] = bench_model(name, batch, threads, Path(tmp), rounds)
    finally:
        torch.set_num_threads(previous)
    return results
