"""The latency gate: keep float where int8 is not faster on ONNX Runtime, and say why.

Per model: the float and the int8 graphs are timed interleaved (medians) at the example
inputs' batch; if int8 is slower the float model is returned. Per layer (``layers=True``):
each quantized layer in turn is put back in float; if that makes the model faster by more
than ``margin`` it stays float. The returned model carries a report
(``torchslim.quant.report.report_of(model)``) with the timings.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import Int8Static
    >>> from torchslim.quant.report import report_of
    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    >>> q = quantize(net, Int8Static(), calibration=[torch.randn(16, 8)], gate="latency",
    ...              example_inputs=torch.randn(1, 8))
    >>> sorted(report_of(q).table[0])
    ['float_ms', 'int8_ms', 'kept', 'what']
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.inputs import as_tuple
from torchslim.core.modules import set_module
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.quant.fake_quant import quant_modules
from torchslim.quant.report import QuantReport, attach_report, report_of

GATES = ("latency",)


def interleaved_ms(models: list[OrtModel], inputs: tuple[Any, ...], rounds: int = 15, inner: int = 20) -> list[float]:
    """Median ms per call of each ONNX Runtime model, timed round-robin in one process."""
    feeds = [m.feeds(*inputs) for m in models]
    times: list[list[float]] = [[] for _ in models]
    for m, f in zip(models, feeds, strict=True):
        for _ in range(3):
            m.run_numpy(f)
    for r in range(rounds):
        order = list(range(len(models)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            t0 = time.perf_counter()
            for _ in range(inner):
                models[i].run_numpy(feeds[i])
            times[i].append((time.perf_counter() - t0) * 1e3 / inner)
    return [statistics.median(t) for t in times]


def _session(model: nn.Module, inputs: tuple[Any, ...], d: str, tag: str, threads: int) -> OrtModel:
    return OrtModel(export_onnx(model, Path(d) / f"{tag}.onnx", inputs), threads=threads)


def apply_gate(qmodel: nn.Module, float_model: nn.Module, gate: str, example_inputs: Any, threads: int = 1,
               layers: bool = False, margin: float = 0.05) -> nn.Module:
    """Return ``qmodel``, ``float_model`` or ``qmodel`` with some layers back in float,
    whichever ONNX Runtime runs fastest; the choice and timings go in the report."""
    if gate not in GATES:
        raise ConfigError(f"unknown gate {gate!r}; known: {', '.join(GATES)}")
    if example_inputs is None:
        raise ConfigError("gate='latency' needs example_inputs= (the batch to time on the runtime)")
    inputs = as_tuple(example_inputs)
    report = report_of(qmodel) or QuantReport(config="quantized")
    with tempfile.TemporaryDirectory() as d:
        f_ms, q_ms = interleaved_ms([_session(float_model.eval(), inputs, d, "float", threads),
                                     _session(qmodel, inputs, d, "int8", threads)], inputs)
        keep_int8 = q_ms < f_ms
        report.table.append({"what": "whole model", "float_ms": round(f_ms, 4), "int8_ms": round(q_ms, 4),
                             "kept": "int8" if keep_int8 else "float"})
        if not keep_int8:
            report.kept_float["(model)"] = f"int8 {q_ms:.3f} ms >= float {f_ms:.3f} ms on onnxruntime, {threads} thread(s)"
            attach_report(float_model, report)
            return float_model
        if layers:
            qmodel = _gate_layers(qmodel, inputs, d, threads, margin, report, q_ms)
    attach_report(qmodel, report)
    return qmodel


def _gate_layers(qmodel: nn.Module, inputs: tuple[Any, ...], d: str, threads: int, margin: float,
                 report: QuantReport, best_ms: float) -> nn.Module:
    best = qmodel
    for name, _ in quant_modules(qmodel):
        cand = copy.deepcopy(best)
        layer = dict(quant_modules(cand))[name]
        set_module(cand, name, layer.module)
        cur_ms, cand_ms = interleaved_ms([_session(best, inputs, d, "cur", threads),
                                          _session(cand, inputs, d, "cand", threads)], inputs)
        better = cand_ms < cur_ms * (1 - margin)
        report.table.append({"what": name, "float_ms": round(cand_ms, 4), "int8_ms": round(cur_ms, 4),
                             "kept": "float" if better else "int8"})
        if better:
            report.kept_float[name] = f"model {cand_ms:.3f} ms with it float vs {cur_ms:.3f} ms int8"
            best = cand
    return best
