"""Child process of the peak-memory measurement: load a model, run it, report peak RSS.

Run by :mod:`torchslim.measure.memory` as a script (``python _probe.py ...``), so it
imports nothing from torchslim and its baseline holds only the interpreter and the runtime.
It reads the high-water mark of resident memory (``VmHWM`` in ``/proc/self/status``;
fallback ``resource.getrusage(...).ru_maxrss``) once the runtime is imported (baseline) and
again after loading the model and running it ``--runs`` times (peak), and prints one JSON
line: ``{"baseline_bytes", "peak_bytes", "method", "runs"}``.

Inputs come as a safetensors file (no pickle); the model as a ``torch.export`` archive
(``--runtime torch``) or an ONNX file (``--runtime onnxruntime``).

Example (shell):
    python src/torchslim/measure/_probe.py --runtime onnxruntime --model m.onnx \
        --inputs x.safetensors --runs 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys


def peak_rss() -> tuple[int, str]:
    """(high-water mark of this process's resident memory in bytes, how it was read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024), "ru_maxrss"


def _run_torch(model_path: str, inputs_path: str, runs: int, threads: int) -> dict[str, object]:
    import safetensors.torch
    import torch
    import torch._dynamo  # noqa: F401 - the loader's machinery (sympy, dynamo, serde) is part
    import torch._export.serde.serialize  # noqa: F401 - of the runtime, so of the baseline,
    import torch.export  # noqa: F401 - not of the model's footprint
    import torch.fx.experimental.symbolic_shapes  # noqa: F401

    torch.set_num_threads(threads)
    baseline, method = peak_rss()
    loaded = safetensors.torch.load_file(inputs_path)
    inputs = [loaded[f"input_{i}"] for i in range(len(loaded))]
    module = torch.export.load(model_path).module()
    with torch.inference_mode():
        for _ in range(runs):
            module(*inputs)
    peak, _ = peak_rss()
    return {"baseline_bytes": baseline, "peak_bytes": peak, "method": method, "runs": runs}


def _run_ort(model_path: str, inputs_path: str, runs: int, threads: int) -> dict[str, object]:
    import onnxruntime as ort
    import safetensors.numpy

    baseline, method = peak_rss()
    loaded = safetensors.numpy.load_file(inputs_path)
    opts = ort.SessionOptions()  # the same settings as torchslim.export.onnx.OrtModel
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = {n: loaded[f"input_{i}"] for i, n in enumerate(names)}
    for _ in range(runs):
        session.run(None, feeds)
    peak, _ = peak_rss()
    return {"baseline_bytes": baseline, "peak_bytes": peak, "method": method, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print the JSON line; exit status 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["torch", "onnxruntime"], required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    run = _run_torch if args.runtime == "torch" else _run_ort
    result = run(args.model, args.inputs, max(1, args.runs), max(1, args.threads))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
