"""The latency gate: keep float where int8 is not faster on ONNX Runtime, and say why.

Per model: the float graph, the quantized model and its integer variants are timed interleaved
(medians) at the example inputs' batch, and the fastest is kept. The variants of a static int8
model (:func:`static_variants`): one weight scale per tensor instead of per channel (ONNX
Runtime's QGemm / QLinearConv requantize faster with one scale), in every layer or in Linear
layers only; and Linear layers as dynamic int8 (per-channel or per-tensor weights), which ONNX
Runtime often runs faster on small MLPs.

A variant is timed only if it passes the accuracy guard (:mod:`torchslim.quant.fidelity`): run in
ONNX Runtime on the calibration data, it must agree with float on the top-1 class as often as
the static int8 model does (0.2% of the samples slack) and keep its relative output error within
1.5x static's. So an equally accurate, faster variant wins, and one that loses accuracy is not
even timed; the figures of every candidate go in the report.

Per layer group (``groups=True``, the default): each group of quantized layers (a block such as
``layer1.0``, or a top-level layer) in turn is flipped, int8 to float or back (when float won,
a group goes back to int8 as the fastest integer variant has it); the flip is kept if it makes
the model faster by more than ``margin``. The returned model carries a report
(``torchslim.quant.report.report_of(model)``): ``variant`` names the candidate picked, the
table holds every timing, ``kept_float`` what stayed float and why.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchslim.quant.api import quantize
    >>> from torchslim.quant.configs import Int8Static
    >>> from torchslim.quant.report import report_of
    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    >>> q = quantize(net, Int8Static(), calibration=[torch.randn(16, 8)], gate="latency",
    ...              example_inputs=torch.randn(1, 8), gate_groups=False)
    >>> sorted(report_of(q).table[0])
    ['fidelity', 'float_ms', 'int8_ms', 'kept', 'ms', 'what']
    >>> report_of(q).variant in report_of(q).table[0]["ms"]
    True
"""

from __future__ import annotations

import copy
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchslim.core.errors import ConfigError
from torchslim.core.inputs import as_tuple, first_tensor
from torchslim.core.modules import set_module
from torchslim.export.onnx import OrtModel, export_onnx
from torchslim.quant.calibrate import calibration_batches
from torchslim.quant.fake_quant import QuantInput, QuantModule
from torchslim.quant.fidelity import accept, fidelity
from torchslim.quant.report import QuantReport, attach_report, report_of

GATES = ("latency",)


def interleaved_ms(models: list[OrtModel], inputs: tuple[Any, ...], rounds: int = 21, target_ms: float = 2.0) -> list[float]:
    """Median ms per call of each ONNX Runtime model, timed round-robin in one process; each
    sample averages enough calls to last about ``target_ms``."""
    calls = [m.prepared(*inputs) for m in models]
    inner = []
    for call in calls:
        for _ in range(2):
            call()
        t0 = time.perf_counter()
        call()
        one = (time.perf_counter() - t0) * 1e3
        inner.append(max(1, min(200, int(target_ms / max(one, 1e-3)))))
    times: list[list[float]] = [[] for _ in models]
    for r in range(rounds):
        order = list(range(len(models)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            t0 = time.perf_counter()
            for _ in range(inner[i]):
                calls[i]()
            times[i].append((time.perf_counter() - t0) * 1e3 / inner[i])
    return [statistics.median(t) for t in times]


def group_of(name: str) -> str:
    """The layer group of a quantized layer: its name up to the first numeric part (a block
    of a Sequential / ModuleList), else its top-level module.

    Example:
        >>> group_of("layer1.0.conv1"), group_of("m.encoder.layer.3.attention.self.query"), group_of("fc1")
        ('layer1.0', 'm.encoder.layer.3', 'fc1')
    """
    parts = name.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return parts[0]


def _quantized(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantModule, QuantInput))]


def with_float_groups(qmodel: nn.Module, groups: set[str]) -> nn.Module:
    """A copy of ``qmodel`` whose quantized layers in ``groups`` are back in float. A static
    layer whose output scale an int8 layer outside ``groups`` reuses keeps quantizing its output
    (``float_compute``), so that reader, and a residual add beside it, stay integer.

    Example:
        >>> import torch
        >>> from torchslim.quant.fake_quant import QuantModule
        >>> q = torch.nn.Sequential(QuantModule(torch.nn.Linear(4, 4)), QuantModule(torch.nn.Linear(4, 2)))
        >>> q[1].shares_input_with = "0"
        >>> half = with_float_groups(q, {"0"})
        >>> half[0].float_compute, type(with_float_groups(q, {"0", "1"})[0]).__name__
        (True, 'Linear')
    """
    out = copy.deepcopy(qmodel)
    int8_readers = {m.shares_input_with for n, m in _quantized(out) if group_of(n) not in groups}
    for name, m in _quantized(out):
        if group_of(name) not in groups:
            continue
        if isinstance(m, QuantModule) and m.mode == "static" and m.quantize_output and name in int8_readers:
            m.float_compute = True
        else:
            set_module(out, name, m.module)
    return out


def _per_channel(m: nn.Module) -> bool:
    return isinstance(m, QuantModule) and m.w_scale.numel() > 1 and not bool((m.w_scale == m.w_scale[0]).all())


def per_tensor_variant(qmodel: nn.Module, linear_only: bool = False, mode: str = "static") -> nn.Module | None:
    """A copy of ``qmodel`` whose ``mode`` layers (Linear only, with ``linear_only``) use one
    weight scale per tensor (the largest channel's); None when none of them is per-channel.

    Example:
        >>> import torch
        >>> from torchslim.quant.fake_quant import QuantModule
        >>> q = torch.nn.Sequential(QuantModule(torch.nn.Linear(4, 3)))
        >>> per_tensor_variant(q)[0].w_scale.unique().numel()
        1
    """
    out = copy.deepcopy(qmodel)
    chosen = [m for _, m in _quantized(out) if _per_channel(m) and m.mode == mode and (m.kind == "Linear" or not linear_only)]
    for m in chosen:
        m.w_scale.fill_(float(m.w_scale.max()))
    return out if chosen else None


def dynamic_variant(qmodel: nn.Module, per_channel: bool = True) -> nn.Module | None:
    """A copy of a static int8 model whose Linear layers are dynamic int8 (activations
    quantized on the fly; ``per_channel=False``: one weight scale per layer, which ONNX Runtime's
    DynamicQuantizeMatMul runs faster); None when it has no static Linear layer."""
    out = copy.deepcopy(qmodel)
    linears = [m for _, m in _quantized(out) if isinstance(m, QuantModule) and m.kind == "Linear" and m.mode == "static"]
    if not linears:
        return None
    names = {n for n, m in _quantized(out) if m in linears}
    for m in linears:
        m.mode, m.quantize_output, m.fused_act, m.calibrated = "dynamic", False, None, True
        if not per_channel:
            m.w_scale.fill_(float(m.w_scale.max()))
        m.shares_input_with = m.same_input_as = None
    for _, m in _quantized(out):
        if m.shares_input_with in names:
            m.shares_input_with = None  # keeps the copied scale, quantizes its own input
    return out


def static_variants(qmodel: nn.Module) -> dict[str, nn.Module]:
    """The integer variants of a static int8 model that the gate may time instead of it:
    per-tensor weights (everywhere; and Linear only, when there are other layers), then dynamic
    Linear layers with per-channel and per-tensor weights. Only those that differ from the model.

    Example:
        >>> import torch
        >>> from torchslim.quant.fake_quant import QuantModule
        >>> sorted(static_variants(torch.nn.Sequential(QuantModule(torch.nn.Linear(4, 3)))))
        ['int8 dynamic Linear', 'int8 dynamic Linear per-tensor', 'int8 per-tensor']
    """
    layers = [m for _, m in _quantized(qmodel) if isinstance(m, QuantModule) and m.mode == "static"]
    cands: dict[str, nn.Module | None] = {"int8 per-tensor": per_tensor_variant(qmodel)}
    if any(_per_channel(m) and m.kind != "Linear" for m in layers):
        cands["int8 per-tensor Linear"] = per_tensor_variant(qmodel, linear_only=True)
    cands["int8 dynamic Linear"] = dynamic_variant(qmodel, per_channel=True)
    if any(_per_channel(m) and m.kind == "Linear" for m in layers):
        cands["int8 dynamic Linear per-tensor"] = dynamic_variant(qmodel, per_channel=False)
    return {k: v for k, v in cands.items() if v is not None}


def _session(model: nn.Module, inputs: tuple[Any, ...], d: str, tag: str, threads: int) -> OrtModel:
    slug = re.sub(r"[^a-z0-9]+", "_", tag.lower()).strip("_")
    return OrtModel(export_onnx(model, Path(d) / f"{slug}.onnx", inputs), threads=threads)


@torch.no_grad()
def _outputs(cands: dict[str, nn.Module], sessions: dict[str, OrtModel], batches: list[tuple[torch.Tensor, ...]]
             ) -> dict[str, list[torch.Tensor]]:
    try:
        return {k: [first_tensor(sessions[k](*b)) for b in batches] for k in cands}
    except Exception:  # noqa: BLE001 - e.g. a graph with a fixed batch: compare the torch simulations instead
        return {k: [first_tensor(m.eval()(*b)) for b in batches] for k, m in cands.items()}


def _guard(cands: dict[str, nn.Module], sessions: dict[str, OrtModel], data: Any, samples: int,
           report: QuantReport) -> dict[str, dict[str, Any]]:
    """Drop (from ``cands`` and ``sessions``) every variant less accurate than "int8"."""
    outs = _outputs(cands, sessions, list(calibration_batches(data, samples)))
    ref = outs.pop("float")
    base = fidelity(outs["int8"], ref)
    table: dict[str, dict[str, Any]] = {"int8": base.to_dict()}
    report.notes.append(f"accuracy guard on the runtime, against float: int8 {base}")
    for name in [k for k in cands if k not in ("float", "int8")]:
        f = fidelity(outs[name], ref)
        ok, why = accept(f, base)
        table[name] = {**f.to_dict(), "accepted": ok}
        report.notes.append(f"gate variant {name!r}: {f} -> {'timed' if ok else 'not timed, ' + why}")
        if not ok:
            del cands[name], sessions[name]
    return table


def apply_gate(qmodel: nn.Module, float_model: nn.Module, gate: str, example_inputs: Any, threads: int = 1,
               variants: dict[str, nn.Module] | None = None, groups: bool = True, margin: float = 0.05,
               guard_data: Any = None, guard_samples: int = 512) -> nn.Module:
    """Return whichever of ``float_model``, ``qmodel``, the ``variants`` and (with ``groups``)
    their per-group mixtures ONNX Runtime runs fastest; the choice and timings go in the report.
    With ``guard_data`` (calibration inputs, up to ``guard_samples`` rows) a variant is timed
    only if it is as accurate as ``qmodel`` on them (see :func:`torchslim.quant.fidelity.accept`)."""
    if gate not in GATES:
        raise ConfigError(f"unknown gate {gate!r}; known: {', '.join(GATES)}")
    if example_inputs is None:
        raise ConfigError("gate='latency' needs example_inputs= (the batch to time on the runtime)")
    inputs = as_tuple(example_inputs)
    report = report_of(qmodel) or QuantReport(config="quantized")
    cands = {"float": float_model.eval(), "int8": qmodel, **(variants or {})}
    with tempfile.TemporaryDirectory() as d:
        sessions = {k: _session(m, inputs, d, k, threads) for k, m in cands.items()}
        fid = _guard(cands, sessions, guard_data, guard_samples, report) if guard_data is not None and len(cands) > 2 else {}
        names = list(sessions)
        ms = dict(zip(names, interleaved_ms([sessions[k] for k in names], inputs), strict=True))
        best_int = min((k for k in names if k != "float"), key=ms.__getitem__)
        winner = best_int if ms[best_int] < ms["float"] else "float"
        report.table.append({"what": "whole model", "float_ms": round(ms["float"], 4), "int8_ms": round(ms[best_int], 4),
                             "kept": winner, "ms": {k: round(v, 4) for k, v in ms.items()}, "fidelity": fid})
        report.variant = winner
        if winner == "float":
            report.kept_float["(model)"] = (f"fastest integer variant ({best_int}) {ms[best_int]:.3f} ms >= float "
                                            f"{ms['float']:.3f} ms on onnxruntime, {threads} thread(s)")
        elif winner != "int8":
            report.notes.append(f"latency gate chose the variant {winner!r}: {ms[winner]:.3f} ms against "
                                f"{ms['int8']:.3f} ms for static int8")
        base = cands[best_int]  # from float, groups go back to int8 as the fastest integer variant has them
        result = float_model if winner == "float" else base
        if groups:
            before = copy.deepcopy(report)
            mixed, mixed_session = _gate_groups(base, best_int, winner == "float", result, sessions[winner], inputs, d,
                                                threads, margin, report)
            if mixed is not result:
                result, report = _confirm(result, mixed, sessions[winner], mixed_session, inputs, margin, before, report)
    attach_report(result, report)
    return result


def _confirm(plain: nn.Module, mixed: nn.Module, plain_session: OrtModel, mixed_session: OrtModel, inputs: tuple[Any, ...],
             margin: float, plain_report: QuantReport, mixed_report: QuantReport) -> tuple[nn.Module, QuantReport]:
    """Time the per-group mixture against the whole-model winner once more, twice as long, and
    keep the mixture only if it is still faster by ``margin``: single flips of a few percent
    can add up to nothing on a noisy machine."""
    plain_ms, mixed_ms = interleaved_ms([plain_session, mixed_session], inputs, rounds=41)
    row = {"what": "per-group mixture vs whole model", "float_ms": None, "int8_ms": None,
           "ms": {"whole model": round(plain_ms, 4), "mixture": round(mixed_ms, 4)}}
    if mixed_ms < plain_ms * (1 - margin):
        mixed_report.table.append({**row, "kept": "mixture"})
        return mixed, mixed_report
    plain_report.table.extend(mixed_report.table[len(plain_report.table):])
    plain_report.table.append({**row, "kept": "whole model"})
    plain_report.notes.append(f"per-group flips not confirmed: {mixed_ms:.3f} ms against {plain_ms:.3f} ms for the "
                              f"whole-model choice; kept that")
    return plain, plain_report


def _gate_groups(base: nn.Module, base_name: str, start_float: bool, current: nn.Module, cur_session: OrtModel,
                 inputs: tuple[Any, ...], d: str, threads: int, margin: float,
                 report: QuantReport) -> tuple[nn.Module, OrtModel]:
    """Greedy: flip one layer group at a time (int8 <-> float) on top of the current best;
    returns the result and its ONNX Runtime session."""
    names = list(dict.fromkeys(group_of(n) for n, _ in _quantized(base)))
    floats = set(names) if start_float else set()
    for k, grp in enumerate(names):
        trial = floats ^ {grp}
        cand = with_float_groups(base, trial)
        cand_session = _session(cand, inputs, d, f"g{k}", threads)
        cur_ms, cand_ms = interleaved_ms([cur_session, cand_session], inputs)
        better = cand_ms < cur_ms * (1 - margin)
        now_float = grp in trial
        report.table.append({"what": grp, "float_ms": round(cand_ms if now_float else cur_ms, 4),
                             "int8_ms": round(cur_ms if now_float else cand_ms, 4),
                             "kept": ("float" if now_float else "int8") if better else ("int8" if now_float else "float")})
        if better:
            floats, current, cur_session = trial, cand, cand_session
    if start_float and floats == set(names):
        return current, cur_session  # nothing paid: the float model, "(model)" in the report says why
    report.kept_float.pop("(model)", None)
    for grp in sorted(floats):
        report.kept_float[grp] = "int8 was not faster for this layer group on onnxruntime"
    report.layers = [n for n, m in _quantized(current) if isinstance(m, QuantModule) and not m.float_compute]
    if start_float:
        report.variant = f"{base_name} in {', '.join(g for g in names if g not in floats)}; rest float"
    elif floats:
        report.variant = f"{report.variant}; float: {', '.join(g for g in names if g in floats)}"
    return current, cur_session
