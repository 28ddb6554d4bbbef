"""Calibration plumbing shared by the quantizers: read calibration batches, wrap layers,
find fusions on the graph, run observers.

Calibration data is a DataLoader or any iterable whose items are a tensor, a tuple of input
tensors (``(input_ids, attention_mask)``), or an ``(inputs, targets)`` pair (recognised when the
second element is a 1-D tensor and the first is not).

Example:
    >>> import torch
    >>> from torchslim.quant.calibrate import calibration_batches
    >>> [tuple(t.shape) for b in calibration_batches([torch.zeros(4, 3)], 8) for t in b]
    [(4, 3)]
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from torchslim.core.errors import ConfigError, InputError
from torchslim.core.modules import get_module, set_module
from torchslim.core.targets import Target, check_names_exist, select
from torchslim.quant.fake_quant import QUANTIZABLE, QuantInput, QuantModule

# Ops that keep a uint8 grid unchanged: a layer reading their output can reuse its producer's scale.
GRID_PRESERVING_MODULES = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
GRID_PRESERVING_CALLS = {"relu", "flatten", "view", "reshape", "max_pool2d", "max_pool1d", "dropout", "contiguous"}
PASS_THROUGH = (nn.Identity, nn.Dropout)  # what a folded BatchNorm leaves behind
AVG_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d)


def _inputs_of(item: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(item, torch.Tensor):
        return (item,)
    if isinstance(item, (tuple, list)) and item:
        if len(item) == 2 and isinstance(item[1], torch.Tensor) and item[1].dim() <= 1:
            first = item[0]
            if isinstance(first, torch.Tensor) and first.dim() > 1:
                return (first,)
            if isinstance(first, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in first):
                return tuple(first)
        if all(isinstance(t, torch.Tensor) for t in item):
            return tuple(item)
    raise InputError(
        f"a calibration item must be a tensor, a tuple of tensors or (inputs, targets); got {type(item).__name__}"
    )


def calibration_batches(calibration: Iterable[Any] | None, samples: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield input tuples until ``samples`` rows were given; empty or NaN data is an InputError."""
    if calibration is None:
        raise InputError("this quantization needs calibration data: pass calibration=<DataLoader or list of inputs>")
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    seen = 0
    for item in calibration:
        inputs = _inputs_of(item)
        for t in inputs:
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise InputError("calibration data contains NaN or inf values")
        yield inputs
        seen += int(inputs[0].shape[0]) if inputs[0].dim() > 0 else 1
        if seen >= samples:
            break
    if seen == 0:
        raise InputError("the calibration data is empty: it yielded no batches")


def wrap_layers(model: nn.Module, target: Target, kinds: tuple[type[nn.Module], ...], **kw: Any) -> list[str]:
    """Replace every targeted layer of ``kinds`` by a :class:`QuantModule`; returns their names.
    A model with no such layer is a ConfigError."""
    check_names_exist(model, target)
    chosen = [n for n, m in select(model, target, kinds=kinds) if not isinstance(m, QuantModule)]
    chosen = [n for n in chosen if not any(n.startswith(f"{o}.") for o in chosen)]
    if not chosen:
        kinds_s = "/".join(k.__name__ for k in kinds)
        raise ConfigError(f"{type(model).__name__} has no quantizable layer ({kinds_s}) selected by the target {target.include}")
    for name in chosen:
        set_module(model, name, QuantModule(get_module(model, name), **kw))
    return chosen


def wrap_avg_pools(model: nn.Module, observer: str = "minmax") -> list[str]:
    """Put a :class:`QuantInput` around every average pool, so its input (often a residual add)
    is quantized and ONNX Runtime keeps that tensor integer; returns their names."""
    names = [n for n, m in model.named_modules() if isinstance(m, AVG_POOLS) and n]
    for name in names:
        set_module(model, name, QuantInput(get_module(model, name), observer=observer))
    return names


def _call_name(node: fx.Node) -> str:
    return str(getattr(node.target, "__name__", node.target))


def _module(node: fx.Node, model: nn.Module) -> nn.Module | None:
    return get_module(model, str(node.target)) if node.op == "call_module" else None


def _activation(node: fx.Node, model: nn.Module) -> str | None:
    """"relu" / "relu6" when ``node`` applies one of them, else None."""
    m = _module(node, model)
    if m is not None:
        return "relu" if isinstance(m, nn.ReLU) else "relu6" if isinstance(m, nn.ReLU6) else None
    if node.op in ("call_function", "call_method"):
        name = _call_name(node)
        if name in ("relu", "relu_"):
            return "relu"
        if name == "relu6" or (name == "hardtanh" and tuple(node.args[1:3]) == (0.0, 6.0)):
            return "relu6"
    return None


def _passes(node: fx.Node, model: nn.Module) -> bool:
    return isinstance(_module(node, model), PASS_THROUGH)


def _preserves_grid(node: fx.Node, model: nn.Module) -> bool:
    m = _module(node, model)
    if m is not None:
        return isinstance(m, GRID_PRESERVING_MODULES)
    return node.op in ("call_function", "call_method") and _call_name(node) in GRID_PRESERVING_CALLS


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (QuantModule, QuantInput)) or super().is_leaf_module(m, qualname)


def _fuse_activation(node: fx.Node, model: nn.Module) -> str | None:
    """The activation a layer's output reaches through single-reader pass-through modules."""
    cur = node
    while len(cur.users) == 1:
        nxt = next(iter(cur.users))
        act = _activation(nxt, model)
        if act is not None:
            return act
        if not _passes(nxt, model):
            return None
        cur = nxt
    return None


def _source(node: fx.Node, model: nn.Module, qnames: set[str]) -> tuple[fx.Node | None, bool]:
    """The node a layer's input comes from, skipping grid-preserving ops; and whether that walk
    went through a ReLU6 (which keeps the grid only when the producer fused one)."""
    src, relu6 = node.args[0] if node.args else None, False
    while isinstance(src, fx.Node) and src.args and not (src.op == "call_module" and src.target in qnames):
        if _activation(src, model) == "relu6":
            relu6 = True
        elif not _preserves_grid(src, model):
            break
        src = src.args[0]
    return (src if isinstance(src, fx.Node) else None), relu6


def plan_fusions(model: nn.Module) -> str:
    """On an fx trace: fuse a ReLU/ReLU6 that is a quantized layer's only reader into it (also
    behind a folded BatchNorm's Identity); let a layer whose input comes from another quantized
    layer through grid-preserving ops reuse that layer's output scale; give layers reading the
    same tensor one input scale; leave a Linear's output float unless a quantized layer reads
    it (ONNX Runtime's QGemm / MatMulIntegerToFloat then write float). Returns what was done."""
    quant = {n: m for n, m in model.named_modules() if isinstance(m, (QuantModule, QuantInput)) and m.mode == "static"}
    linears = [m for m in quant.values() if isinstance(m, QuantModule) and m.kind == "Linear"]
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001 - untraceable: every layer keeps its own scales
        for m in linears:  # readers unknown: a float output is always right (QGemm / MatMulIntegerToFloat)
            m.quantize_output = False
        return f"fx trace failed ({type(e).__name__}); no fusions; {len(linears)} Linear layer(s) write float output"
    fused = shared = siblings = 0
    for node in graph.nodes:
        qm = quant.get(str(node.target)) if node.op == "call_module" else None
        if isinstance(qm, QuantModule):
            qm.fused_act = _fuse_activation(node, model)
            fused += qm.fused_act is not None
    readers: dict[fx.Node, str] = {}
    for node in graph.nodes:
        me = quant.get(str(node.target)) if node.op == "call_module" else None
        if me is None:
            continue
        src, relu6 = _source(node, model, set(quant))
        producer = quant.get(str(src.target)) if src is not None and src.op == "call_module" else None
        if isinstance(producer, QuantModule) and producer.quantize_output and (not relu6 or producer.fused_act == "relu6"):
            me.shares_input_with = str(src.target)
            shared += 1
        elif src is not None and isinstance(me, QuantModule):
            if src in readers:
                me.same_input_as = readers[src]
                siblings += 1
            else:
                readers[src] = str(node.target)
    read = {m.shares_input_with for m in quant.values()}
    float_out = 0
    for name, m in quant.items():
        if m in linears and name not in read:  # nothing integer reads it: QGemm writes float
            m.quantize_output = False
            float_out += 1
    return (f"fused {fused} activation(s); {shared} layer(s) reuse their producer's output scale; "
            f"{siblings} share a sibling's input scale; {float_out} Linear layer(s) write float output")


@torch.no_grad()
def calibrate(model: nn.Module, calibration: Iterable[Any] | None, samples: int) -> int:
    """Run calibration batches through ``model`` with observers attached, then freeze scales.
    Returns the number of samples used."""
    qms = [m for m in model.modules() if isinstance(m, (QuantModule, QuantInput)) and m.mode == "static"]
    for m in qms:
        m.calibrated = False
        m.observe()
    model.eval()
    used = 0
    for inputs in calibration_batches(calibration, samples):
        model(*inputs)
        used += int(inputs[0].shape[0]) if inputs[0].dim() > 0 else 1
    for m in qms:
        for obs in (m.in_obs, getattr(m, "out_obs", None)):
            if obs is not None and obs.count == 0:
                raise InputError("a quantized layer saw no activations during calibration (is it used in forward?)")
        m.freeze()
    for m in qms:
        src = m.shares_input_with or getattr(m, "same_input_as", None)
        if src:
            other = get_module(model, src)
            scale, zp = (other.out_scale, other.out_zp) if m.shares_input_with else (other.in_scale, other.in_zp)
            m.in_scale.copy_(scale)
            m.in_zp.copy_(zp)
    return used


def cpu_has_vnni() -> bool:
    """True when this x86 CPU advertises VNNI (then u8s8 int8 kernels cannot saturate).

    Example:
        >>> isinstance(cpu_has_vnni(), bool)
        True
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine().lower() not in ("x86_64", "amd64")
    return "avx512_vnni" in flags or "avx_vnni" in flags or platform.machine().lower() not in ("x86_64", "amd64")


__all__ = ["QUANTIZABLE", "calibrate", "calibration_batches", "cpu_has_vnni", "plan_fusions", "wrap_avg_pools", "wrap_layers"]
