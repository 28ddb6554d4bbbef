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
from torchslim.quant.fake_quant import QUANTIZABLE, QuantModule, quant_modules

# Ops that keep a uint8 grid unchanged: a layer reading their output can reuse its producer's scale.
GRID_PRESERVING_MODULES = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)
GRID_PRESERVING_CALLS = {"relu", "flatten", "view", "reshape", "max_pool2d", "max_pool1d", "dropout", "contiguous"}


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


def _is_relu(node: fx.Node, model: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(get_module(model, str(node.target)), nn.ReLU)
    return node.op in ("call_function", "call_method") and getattr(node.target, "__name__", node.target) == "relu"


def _preserves_grid(node: fx.Node, model: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(get_module(model, str(node.target)), GRID_PRESERVING_MODULES)
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target)) in GRID_PRESERVING_CALLS
    return False


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, QuantModule) or super().is_leaf_module(m, qualname)


def plan_fusions(model: nn.Module) -> str:
    """On an fx trace: fuse a ReLU that is a quantized layer's only reader into it, and let a
    layer whose input comes from another quantized layer through grid-preserving ops (ReLU,
    max-pool, flatten, reshape) reuse that layer's output scale. Returns what was done."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001 - untraceable: every layer keeps its own scales
        return f"fx trace failed ({type(e).__name__}); no fusions"
    qnames = {n for n, _ in quant_modules(model)}
    fused, shared = 0, 0
    for node in graph.nodes:
        if node.op == "call_module" and node.target in qnames:
            users = list(node.users)
            qm = get_module(model, str(node.target))
            if qm.mode == "static" and len(users) == 1 and _is_relu(users[0], model):
                qm.fused_relu = True
                fused += 1
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in qnames or not node.args:
            continue
        src = node.args[0]
        while isinstance(src, fx.Node) and _preserves_grid(src, model) and src.args:
            src = src.args[0]
        if isinstance(src, fx.Node) and src.op == "call_module" and src.target in qnames:
            me, producer = get_module(model, str(node.target)), get_module(model, str(src.target))
            if me.mode == producer.mode == "static" and producer.quantize_output:
                me.shares_input_with = str(src.target)
                shared += 1
    return f"fused {fused} ReLU(s); {shared} layer(s) reuse their producer's output scale"


@torch.no_grad()
def calibrate(model: nn.Module, calibration: Iterable[Any] | None, samples: int) -> int:
    """Run calibration batches through ``model`` with observers attached, then freeze scales.
    Returns the number of samples used."""
    qms = [m for _, m in quant_modules(model) if m.mode == "static"]
    for m in qms:
        m.calibrated = False
        m.observe()
    model.eval()
    used = 0
    for inputs in calibration_batches(calibration, samples):
        model(*inputs)
        used += int(inputs[0].shape[0]) if inputs[0].dim() > 0 else 1
    for m in qms:
        for obs in (m.in_obs, m.out_obs):
            if obs is not None and obs.count == 0:
                raise InputError("a quantized layer saw no activations during calibration (is it used in forward?)")
        m.freeze()
    for _, m in quant_modules(model):
        if m.shares_input_with:
            producer = get_module(model, m.shares_input_with)
            m.in_scale.copy_(producer.out_scale)
            m.in_zp.copy_(producer.out_zp)
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


__all__ = ["QUANTIZABLE", "calibrate", "calibration_batches", "cpu_has_vnni", "plan_fusions", "wrap_layers"]
