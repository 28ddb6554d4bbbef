"""Peak memory of an inference process: the model loaded and run in a fresh child process.

One child per measurement (``_probe.py``): it imports the runtime, reads the resident-memory
high-water mark (baseline), loads the model, runs it, reads it again (peak). The model's
footprint is peak - baseline. What the child loads is what would be deployed:

- ``onnxruntime``: the ONNX file, in an ``InferenceSession`` set up like ``OrtModel``;
- ``torch``: a ``torch.export`` archive (``torch.export.save``), run through ``.module()``.

If ``torch.export`` cannot capture the model (data-dependent control flow, say), the
footprint is *estimated* in-process instead: bytes of parameters and buffers plus the peak
of the activations that ``torch.profiler`` (``profile_memory=True``) sees in one forward
pass; ``method`` is then ``"estimate"`` and baseline/peak are ``None``.

Example:
    >>> import torch
    >>> from torchslim.measure.memory import probe_torch
    >>> mem = probe_torch(torch.nn.Linear(8, 8).eval(), (torch.zeros(1, 8),), runs=1)
    >>> mem.peak_bytes >= mem.baseline_bytes
    True
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from torchslim.core.errors import TorchslimError

PROBE = Path(__file__).with_name("_probe.py")
PROBE_TIMEOUT_S = 600


@dataclass
class Memory:
    """Peak resident memory of an inference process (bytes).

    ``footprint_bytes`` = ``peak_bytes`` - ``baseline_bytes`` (interpreter + runtime imported);
    ``method`` is ``"VmHWM"`` or ``"ru_maxrss"`` (child process) or ``"estimate"``.
    """

    footprint_bytes: int
    baseline_bytes: int | None
    peak_bytes: int | None
    method: str
    runtime: str
    runs: int
    note: str = ""


def _save_inputs(inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    tensors = {f"input_{i}": t.detach().cpu().contiguous() for i, t in enumerate(inputs)}
    safetensors.torch.save_file(tensors, str(path))


def _spawn(runtime: str, model_path: Path, inputs_path: Path, runs: int, threads: int) -> dict[str, object]:
    cmd = [
        sys.executable, str(PROBE), "--runtime", runtime, "--model", str(model_path),
        "--inputs", str(inputs_path), "--runs", str(runs), "--threads", str(threads),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TorchslimError(f"memory probe ({runtime}) failed with status {proc.returncode}: {tail}")
    return json.loads(lines[-1])


def _memory(result: dict[str, object], runtime: str, note: str = "") -> Memory:
    baseline, peak = int(result["baseline_bytes"]), int(result["peak_bytes"])  # type: ignore[arg-type]
    return Memory(
        footprint_bytes=peak - baseline, baseline_bytes=baseline, peak_bytes=peak,
        method=str(result["method"]), runtime=runtime, runs=int(result["runs"]), note=note,  # type: ignore[arg-type]
    )


def probe_onnx(path: str | os.PathLike[str], inputs: tuple[torch.Tensor, ...], *, threads: int = 1, runs: int = 3) -> Memory:
    """Peak RSS of a fresh process that loads the ONNX file in ONNX Runtime and runs it.

    Example:
        >>> import tempfile, torch
        >>> from torchslim.export.onnx import export_onnx
        >>> p = export_onnx(torch.nn.Linear(4, 2), tempfile.mkdtemp() + "/m.onnx", torch.zeros(1, 4))
        >>> probe_onnx(p, (torch.zeros(1, 4),), runs=1).runtime
        'onnxruntime'
    """
    with tempfile.TemporaryDirectory(prefix="torchslim-mem-") as tmp:
        inputs_path = Path(tmp) / "inputs.safetensors"
        _save_inputs(inputs, inputs_path)
        return _memory(_spawn("onnxruntime", Path(path), inputs_path, runs, threads), "onnxruntime")


def probe_torch(model: nn.Module, inputs: tuple[torch.Tensor, ...], *, threads: int = 1, runs: int = 3) -> Memory:
    """Peak RSS of a fresh process that ``torch.export.load``s the model and runs it; falls
    back to :func:`estimate_torch` if ``torch.export`` cannot capture the model.

    Example:
        >>> import torch
        >>> probe_torch(torch.nn.Linear(4, 2).eval(), (torch.zeros(1, 4),), runs=1).method in ("VmHWM", "ru_maxrss")
        True
    """
    with tempfile.TemporaryDirectory(prefix="torchslim-mem-") as tmp:
        model_path = Path(tmp) / "model.pt2"
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                warnings.simplefilter("ignore")
                program = torch.export.export(model, inputs)
                torch.export.save(program, str(model_path))
        except Exception as e:  # noqa: BLE001 - any capture failure: estimate instead, say why
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return estimate_torch(model, inputs, note=f"torch.export failed ({type(e).__name__}: {reason[:200]})")
        inputs_path = Path(tmp) / "inputs.safetensors"
        _save_inputs(inputs, inputs_path)
        return _memory(_spawn("torch", model_path, inputs_path, runs, threads), "torch")


def _tensor_bytes(model: nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def activation_peak_bytes(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Peak of the bytes allocated (minus freed) during one forward pass, from the profiler.

    Example:
        >>> import torch
        >>> activation_peak_bytes(torch.nn.Linear(4, 1000), (torch.zeros(2, 4),)) >= 2 * 1000 * 4
        True
    """
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(*inputs)
    timeline: list[tuple[float, int]] = []
    for e in prof.events():
        if e.name == "[memory]":  # a free (or allocation) outside any op
            timeline.append((e.time_range.start, int(e.cpu_memory_usage)))
        elif e.self_cpu_memory_usage:
            timeline.append((e.time_range.end, int(e.self_cpu_memory_usage)))
    current = peak = 0
    for _, delta in sorted(timeline):
        current += delta
        peak = max(peak, current)
    return peak


def estimate_torch(model: nn.Module, inputs: tuple[torch.Tensor, ...], *, note: str = "") -> Memory:
    """In-process estimate: parameter + buffer bytes + profiler activation peak.

    Example:
        >>> import torch
        >>> estimate_torch(torch.nn.Linear(4, 2), (torch.zeros(1, 4),)).footprint_bytes >= 40
        True
    """
    footprint = _tensor_bytes(model) + activation_peak_bytes(model, inputs)
    return Memory(
        footprint_bytes=footprint, baseline_bytes=None, peak_bytes=None, method="estimate",
        runtime="torch", runs=1, note=note or "weights + torch.profiler activation peak",
    )
